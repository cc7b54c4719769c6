"""Job states, reasons and exit codes judged by real SLURM: completed,
exit 3, killed by a signal, timed out, requeued from inside, cancelled while
running, pending on a dependency that can never be satisfied, on --begin,
held. sacct cannot run against the oracle (no slurmdbd): fleetslurm's sacct
must agree with real SLURM's ``scontrol show job`` instead."""

from __future__ import annotations

import pytest

from .batch import JOBS, Snap
from .shape import parse_show

LABELS = [label for label, kind, _ in JOBS if kind != "held"] + ["h1"]
KEYS = ("JobState", "Reason", "ExitCode", "Restarts")


def _fields(snap: Snap, label: str, view: str = "live") -> dict[str, dict]:
    """{ArrayTaskId or "-": {key: value}} from ``scontrol show job``."""
    out = {}
    for rec in parse_show(getattr(snap, view)[f"job_{label}"].out):
        values = dict(pair for line in rec for pair in line)
        out[values.get("ArrayTaskId", "-")] = {k: values.get(k) for k in KEYS}
    return out


@pytest.mark.parametrize("label", LABELS)
def test_state_reason_exit_code(batch, label):
    s, f = batch.pair()
    view = "idle" if label == "sleep" else "live"
    assert _fields(f, label, view) == _fields(s, label, view)


def test_requeued_job_ran_twice(batch):
    for snap in batch.pair():
        assert snap.files["rq.out"].decode().count("run restart=") == 2, snap.side.label
        assert "done restart=1\n" in snap.files["rq.out"].decode(), snap.side.label


def _sacct(batch, labels) -> dict[str, tuple[str, str]]:
    """{token or token.batch: (State, ExitCode)} from fleetslurm's sacct."""
    f = batch.fleet
    res = f.side.run("sacct", "-P", "-n", "-o", "JobID,State,ExitCode", "-j", f.ids_of(*labels))
    assert res.rc == 0 and res.err == "", res
    out = {}
    for line in res.out.splitlines():
        jid, state, code = line.split("|")
        base, dot, step = jid.partition(".")
        out[f.tokens.token(base) + dot + step] = (state, code)
    return out


FINISHED = [label for label, kind, _ in JOBS if kind == "run" and label not in ("arr", "parr")]


def test_sacct_agrees_with_slurm_scontrol(batch):
    """fleetslurm's accounting says what real SLURM's job record says: the
    job's State (``CANCELLED by <uid>`` in sacct, SLURM_COMPAT.md) and, on
    the batch step, its ExitCode. sacct's job row of a job SLURM ended
    (TIMEOUT, CANCELLED) reads 0:0, the signal shows on the batch step."""
    s = batch.slurm
    labels = FINISHED + ["sleep"]
    got = _sacct(batch, labels)
    want = {}
    for label in labels:
        values = _fields(s, label, "idle" if label == "sleep" else "live")["-"]
        state, code = values["JobState"], values["ExitCode"]
        if state == "CANCELLED":
            state = "CANCELLED by 0"
        job_code = "0:0" if state in ("TIMEOUT", "CANCELLED by 0") else code
        want[f"<{label}>"] = (state, job_code)
        want[f"<{label}>.batch"] = (got.get(f"<{label}>.batch", ("?",))[0], code)
    # the steps job ran two sruns (SLURM's own step files name step 0, its
    # batch output says "step 1"): sacct lists each step as N.0, N.1
    step_files = [n for n in s.files if n.startswith("step-") and n.endswith(".out")]
    assert step_files and all(n.split("-")[2] == "0" for n in step_files), sorted(s.files)
    assert any(b"step 1" in data for data in s.files.values()), sorted(s.files)
    for step in ("0", "1"):
        want[f"<steps>.{step}"] = ("COMPLETED", "0:0")
    assert got == want


@pytest.mark.parametrize("label", ["dep", "begin", "h1"])
def test_pending_has_not_run(batch, label):
    for snap in batch.pair():
        values = dict(pair for rec in parse_show(snap.live[f"job_{label}"].out)
                      for line in rec for pair in line)
        assert values["RunTime"] == "00:00:00", snap.side.label

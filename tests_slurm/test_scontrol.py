"""``scontrol show job|node|partition`` judged by real SLURM: for every job of
the batch (running, finished in each state, pending for each reason, held,
arrays) the same keys on the same lines in the same order, and the same
values once ids, times and paths are normalised."""

from __future__ import annotations

import pytest

from .batch import JOBS, Batch, Snap
from .rules import deliberate_job, job_value, node_value
from .shape import parse_show

LABELS = [label for label, _, _ in JOBS]


def _layout(text: str) -> list[str]:
    """Where the blank and the spaces-only lines are: records' framing."""
    return ["" if line == "" else ("   " if line.strip() == "" else "x")
            for line in text.split("\n")]


def _by_task(records: list) -> dict[str, list]:
    """Records keyed by ArrayTaskId (``-`` for a job that is no array)."""
    out = {}
    for rec in records:
        first = dict(rec[0])
        out[first.get("ArrayTaskId", "-")] = rec
    return out


def _job(snap: Snap, record: list) -> list:
    return [[(k, job_value(snap, k, v)) for k, v in line] for line in record]


def _expected(label: str, record: list, real_memory_mb: int) -> list:
    out = []
    for line in record:
        row = []
        for key, value in line:
            fleet_value = deliberate_job(label, key, value, real_memory_mb)
            row.append((key, value if fleet_value is None else fleet_value))
        out.append(row)
    return out


def _compare_jobs(batch: Batch, view: dict, key: str, label: str, real_memory_mb: int) -> None:
    s, f = batch.pair()
    want, got = getattr(s, view)[key], getattr(f, view)[key]
    assert want.rc == 0 and want.err == "", want
    assert (got.rc, got.err) == (0, ""), got
    assert _layout(got.out) == _layout(want.out), f"framing:\n{want.out!r}\n{got.out!r}"
    want_recs, got_recs = _by_task(parse_show(want.out)), _by_task(parse_show(got.out))
    assert sorted(got_recs) == sorted(want_recs), "not the same records (array tasks)"
    for task in want_recs:
        expected = _expected(label, _job(s, want_recs[task]), real_memory_mb)
        assert _job(f, got_recs[task]) == expected, f"{label} task {task}"


@pytest.mark.parametrize("label", LABELS)
def test_show_job(batch, oracle, label):
    _compare_jobs(batch, "live", f"job_{label}", label, oracle.real_memory_mb)


def test_show_job_cancelled(batch, oracle):
    """The sleeper after ``scancel``: CANCELLED, ExitCode 0:15."""
    _compare_jobs(batch, "idle", "job_sleep", "sleep", oracle.real_memory_mb)


def _compare_plain(batch: Batch, view: str, key: str) -> None:
    s, f = batch.pair()
    want, got = getattr(s, view)[key], getattr(f, view)[key]
    assert want.rc == 0 and want.err == "", want
    assert (got.rc, got.err) == (0, ""), got
    assert _layout(got.out) == _layout(want.out), f"framing:\n{want.out!r}\n{got.out!r}"

    # when others' jobs ran on real SLURM at that moment, its allocation
    # figures are theirs too: compare those values' presence only
    varies = set() if batch.exclusive(view) else _ALLOCATION_KEYS

    def norm(text: str) -> list:
        return [[[(k, "<varies>" if k in varies else node_value(k, v)) for k, v in line]
                 for line in rec] for rec in parse_show(text)]

    assert norm(got.out) == norm(want.out)


_ALLOCATION_KEYS = {"CPUAlloc", "AllocMem", "State", "AllocTRES"}


@pytest.mark.parametrize("view", ["live", "idle"])
@pytest.mark.parametrize("key", ["show_node", "show_node_one"])
def test_show_node(batch, view, key):
    _compare_plain(batch, view, key)


@pytest.mark.parametrize("key", ["show_partition", "show_partition_one"])
def test_show_partition(batch, key):
    _compare_plain(batch, "live", key)


@pytest.mark.parametrize("args", [
    [], ["--mail-user=bob@x"], ["--mail-type=END"], ["--mail-type=begin,END", "--mail-user=bob"],
    ["--mail-type=ALL"], ["--mail-type=TIME_LIMIT_80,ARRAY_TASKS"], ["--mail-type=NONE"],
    ["--mail-type=FAIL,REQUEUE,TIME_LIMIT,STAGE_OUT,INVALID_DEPEND,TIME_LIMIT_50,TIME_LIMIT_90"],
], ids=lambda a: " ".join(a) or "none")
def test_show_job_mail(slurm, fleet, args):
    """``MailUser=... MailType=...``: only with a mail type, the user defaulting
    to the submitter, the words in SLURM's order (ALL spelled out)."""
    lines = []
    for side in (slurm, fleet):
        job = side.sbatch("--hold", *args, "--wrap", "true")
        res = side.run("scontrol", "show", "job", str(job))
        side.scancel(job)
        assert res.rc == 0, res
        lines.append([line for line in res.out.splitlines() if "Mail" in line])
    assert lines[1] == lines[0]

"""sacct's ReqTRES, AllocTRES and Account judged by real SLURM.

The oracle runs without an accounting database (its sacct says "Slurm
accounting storage is disabled"), so its own sacct cannot print these. What
it can show is the same TRES counts: ``scontrol show job``'s ``TRES=`` is the
job's requested TRES while it pends and its allocated TRES once it runs, in
slurmctld's order (cpu, mem, node, billing). sacct prints the same counts
sorted by name (slurmdb_make_tres_string_from_simple), so fleetslurm's sacct
must print exactly the oracle's items, sorted. A job's ``.batch`` step shows
the allocation without ``billing``; ReqTRES is the job's only.
"""

from __future__ import annotations

import os
import pwd
import re
import time

import pytest

from .sides import Side

HELD = [
    ["-c", "2", "--mem=100"],
    ["-n", "2", "--mem-per-cpu=50"],
    ["--mem=2G"],
]


def _scontrol_tres(side: Side, job: int) -> str:
    res = side.run("scontrol", "show", "job", str(job))
    assert res.rc == 0, res
    found = re.search(r"^\s*TRES=(\S+)$", res.out, re.M)
    assert found, res.out
    return found.group(1)


def _sacct(side: Side, job: int, *fields: str, steps: bool = False) -> list[list[str]]:
    res = side.run("sacct", "-n", "-P", *([] if steps else ["-X"]), "-j", str(job),
                   "-o", ",".join(fields))
    assert res.rc == 0 and res.err == "", res
    return [line.split("|") for line in res.out.splitlines()]


def _sorted(tres: str) -> str:
    return ",".join(sorted(tres.split(",")))


@pytest.mark.parametrize("argv", HELD, ids=[" ".join(a) for a in HELD])
def test_pending_job_req_tres(slurm: Side, fleet: Side, argv: list[str]) -> None:
    want = _scontrol_tres(slurm, slurm.sbatch("--hold", *argv, "--wrap", "true"))
    job = fleet.sbatch("--hold", *argv, "--wrap", "true")
    assert _scontrol_tres(fleet, job) == want  # scontrol agrees already
    user = pwd.getpwuid(os.getuid()).pw_name
    # the job's default account is its user's own (slurm.assoc.account_of)
    assert _sacct(fleet, job, "ReqTRES", "AllocTRES", "Account") == [[_sorted(want), "", user]]
    got = _sacct(fleet, job, "ReqTRES", "AllocTRES", steps=True)
    assert got == [[_sorted(want), ""]]  # no step before it runs


def test_running_job_alloc_tres(slurm: Side, fleet: Side) -> None:
    argv = ["-c", "1", "--mem=100", "--wrap", "sleep 60"]
    jobs = {side.label: side.sbatch(*argv) for side in (slurm, fleet)}
    deadline = time.monotonic() + 60
    for side in (slurm, fleet):
        while side.states([jobs[side.label]]).get(str(jobs[side.label]), ("",))[0] != "RUNNING":
            assert time.monotonic() < deadline, f"{side.label}: job never ran"
            time.sleep(0.5)
    want = _scontrol_tres(slurm, jobs["slurm"])  # allocated, once running
    job = jobs["fleet"]
    rows = _sacct(fleet, job, "JobID", "ReqTRES", "AllocTRES", steps=True)
    fleet.scancel(job)
    slurm.scancel(jobs["slurm"])
    assert rows[0] == [str(job), _sorted(want), _sorted(want)]
    # the batch step: the allocation without billing, nothing requested
    no_billing = ",".join(t for t in _sorted(want).split(",") if not t.startswith("billing="))
    assert rows[1:] == [[f"{job}.batch", "", no_billing]]

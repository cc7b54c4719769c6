"""sstat judged by real SLURM: its messages and exit codes on bad input, an
unknown, a running and a finished job; its shapes for a running batch step
(fleetslurm's figures come from its supervisor's samples, SLURM's from
jobacct_gather: the cells differ, their layout must not)."""

from __future__ import annotations

import time

import pytest

from .sides import Side

UNKNOWN = "999999999"

SAME = [
    ["sstat"],
    ["sstat", "-j", "abc"],
    ["sstat", "-j", UNKNOWN],
    ["sstat", "-j", f"{UNKNOWN}.batch", "-o", "JobID"],
    ["sstat", "-j", "1", "-o", "bogus"],
    ["sstat", "-j"],
    ["sstat", "--bogus"],
    ["sstat", "--par", "-j", "1"],
    ["sstat", "-e"],
    ["sstat", "--usage"],
]


def _norm(text: str) -> str:
    return text.replace("/usr/bin/", "")  # glibc names the program as it was called


@pytest.mark.parametrize("argv", SAME, ids=" ".join)
def test_same_answer(slurm: Side, fleet: Side, argv: list[str]) -> None:
    want, got = slurm.run(*argv), fleet.run(*argv)
    assert (got.rc, got.out, _norm(got.err)) == (want.rc, want.out, _norm(want.err))


def _running(side: Side, job: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while side.states([job]).get(str(job), ("",))[0] != "RUNNING":
        assert time.monotonic() < deadline, f"{side.label}: job {job} never ran"
        time.sleep(0.5)


def test_running_and_finished_job(slurm: Side, fleet: Side) -> None:
    argv = ["-c", "1", "--mem=100", "-o", "/dev/null", "--wrap",
            "python3 -c 'import time\nt = time.time()\nwhile time.time() - t < 40: pass'"]
    jobs = {side.label: side.sbatch(*argv) for side in (slurm, fleet)}
    for side in (slurm, fleet):
        _running(side, jobs[side.label])
    time.sleep(3)  # a sample on each side

    def answers(side: Side) -> list[tuple]:
        job = str(jobs[side.label])
        out = []
        for args in (["-j", job], ["-j", job, "-o", "JobID,NTasks", "-P"],
                     ["-a", "-n", "-p", "-j", job, "-o", "jobid,ntasks"],
                     ["-j", f"{job}.batch", "-P", "-o", "JobID,MaxRSSNode,MaxRSSTask,NTasks"],
                     ["-j", f"{job}.0", "-o", "JobID"]):
            res = side.run("sstat", *args)
            out.append((res.rc, res.out.replace(job, "N"), res.err.replace(job, "N")))
        default = side.run("sstat", "-j", f"{job}.batch", "-P")
        header, row = default.out.splitlines()
        out.append((header, len(row.split("|")), row.split("|")[0].replace(job, "N")))
        fixed = side.run("sstat", "-j", f"{job}.batch").out.splitlines()
        out.append(tuple(fixed[:2]))
        return out

    running = {side.label: answers(side) for side in (slurm, fleet)}
    for side in (slurm, fleet):
        side.scancel(jobs[side.label])
    deadline = time.monotonic() + 60
    for side in (slurm, fleet):
        while side.states([jobs[side.label]]).get(str(jobs[side.label]), ("",))[0] in (
                "RUNNING", "COMPLETING", "PENDING"):
            assert time.monotonic() < deadline, f"{side.label}: job never ended"
            time.sleep(0.5)

    def ended(side: Side) -> list[tuple]:
        job = str(jobs[side.label])
        out = []
        for args in (["-j", job, "-o", "JobID"], ["-j", f"{job}.batch"]):
            res = side.run("sstat", *args)
            out.append((res.rc, res.out, res.err.replace(job, "N")))
        return out

    assert running["fleet"] == running["slurm"]
    assert ended(fleet) == ended(slurm)

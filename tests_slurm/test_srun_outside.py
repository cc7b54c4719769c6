"""``srun CMD`` from the submit host, judged by real SLURM: what srun prints
and its exit status for a task that succeeds, fails, is killed, or cannot
start (fleetslurm's job supervisor starts such a one-task step 0 itself:
ctld/srun_direct.py)."""

from __future__ import annotations

import re

import pytest

from .sides import Side

CASES = [
    ["true"],
    ["sh", "-c", "echo out; echo err >&2; exit 4"],
    ["sh", "-c", "kill -9 $$"],
    ["sh", "-c", "kill -TERM $$"],
    ["no-such-command-here"],
    ["/etc/passwd"],
    ["-J", "named", "sh", "-c",
     "echo $SLURM_STEP_ID $SLURM_PROCID $SLURM_NTASKS $SLURM_STEP_NUM_TASKS $SLURM_JOB_NAME"],
]


def _norm(text: str) -> list[str]:
    """Job ids out; the lines sorted: slurmstepd's and srun's lines reach
    stderr by different ways, in either order."""
    return sorted(re.sub(r"StepId=\d+\.", "StepId=N.", text).splitlines())


@pytest.mark.parametrize("argv", CASES, ids=" ".join)
def test_srun_says_and_exits_as_slurms(slurm: Side, fleet: Side, argv):
    want, got = slurm.run("srun", *argv), fleet.run("srun", *argv)
    assert (got.rc, got.out, _norm(got.err)) == (want.rc, want.out, _norm(want.err)), \
        (str(want), str(got))


def _cancelled_from_outside(side: Side) -> tuple:
    """``srun sleep`` whose job another command cancels: srun's lines and status."""
    import subprocess
    import time

    proc = subprocess.Popen([*side.argv("srun"), "-J", "outside", "sleep", "100"],
                            cwd=str(side.work), env=side.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            ids = side.run("squeue", "-h", "-t", "R", "-n", "outside", "-o", "%A").out.split()
            if ids:
                break
            assert time.monotonic() < deadline, "the srun job never ran"
            time.sleep(0.2)
        time.sleep(1)  # (SLURM: the step has started)
        side.run("scancel", ids[0])
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    err = re.sub(r"\b%s\b" % ids[0], "N", err)
    err = re.sub(r"CANCELLED AT \S+", "CANCELLED AT T", err)
    return proc.returncode, out, sorted(err.splitlines())


def test_srun_whose_job_is_cancelled_from_outside(slurm: Side, fleet: Side):
    assert _cancelled_from_outside(fleet) == _cancelled_from_outside(slurm)

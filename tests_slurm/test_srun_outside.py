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

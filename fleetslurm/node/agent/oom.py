"""A job over its memory limit, as SLURM 22.05 reports a cgroup OOM kill.

slurmstepd (task/cgroup, ``task_cgroup_memory_check_oom``) writes into the
step's stderr::

    slurmstepd-NODE: error: Detected 1 oom-kill event(s) in StepId=12.batch. Some of your
    processes may have been killed by the cgroup out-of-memory handler.

and reports the step's return code as SIG_OOM (253): the job ends
OUT_OF_MEMORY, ``ExitCode`` 0:125 (the status 253 read as "killed by signal
125"), reason OutOfMemory; an srun step's srun prints ``srun: error: NODE:
task 0: Out Of Memory`` and exits 1 (src/slurmd/slurmstepd/mgr.c,
src/slurmctld/job_mgr.c, src/plugins/launch/slurm/launch_slurm.c).

Where the kernel enforces the limit (cgroup v2 ``memory.max``) the whole job
is its OOM group. Where the supervisor's PSS watchdog does (cgroup v1 or no
cgroup), a job over its limit first loses its running srun steps' tasks, as
the kernel's OOM killer takes the largest processes (those of the step, which
srun reports as above); if it is still over at the next sample, or has no
step running, the whole job is killed. Standard library only.
"""
from __future__ import annotations

import os
import signal

from .fsio import append_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Set

#: ``ExitCode`` signal of an OOM-killed job or step: SIG_OOM (253) as a
#: wait status is "signal 125"
OOM_SIGNAL = 125
#: the pgids of srun step tasks killed for memory, one a line: srun reads it
#: to tell an OOM kill from any other SIGKILL (see cli/srun_step.py)
OOM_FILE = "oom_killed"


def oom_line(node: str, job_id: str, step: str) -> str:
    """slurmstepd's line for an OOM kill in step ``step`` (``batch``, ``0``...)."""
    return ("slurmstepd-%s: error: Detected 1 oom-kill event(s) in StepId=%s.%s. Some of your "
            "processes may have been killed by the cgroup out-of-memory handler.\n"
            % (node, job_id, step))


def kill_steps_first(jobdir: str, groups: "List[int]", done: "Set[int]") -> bool:
    """SIGKILL the running srun steps' tasks of a job over its memory limit,
    recording their groups for srun first; False when it has no step
    running that was not already killed (then the whole job is the one to kill)."""
    step_groups = [g for g in groups if g not in done]
    if not step_groups:
        return False
    done.update(step_groups)
    # (srun then reports a plain SIGKILL if the job planted something there:
    # the kill matters more)
    append_line(os.path.join(jobdir, OOM_FILE), "".join("%d\n" % g for g in step_groups),
                create=True)
    for pgid in step_groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    return True


def batch_result(sup: "Any") -> None:
    """The job ended OUT_OF_MEMORY: slurmstepd's line in its stderr (of step
    0 for a job srun made whose task the supervisor ran: srun_direct)."""
    spec = sup.spec
    append_line(spec["stderr"], oom_line(spec["node"], spec["job_id"] or sup.key.split(".")[0],
                                         "0" if spec.get("srun_direct") else "batch"),
                spec["uid"])

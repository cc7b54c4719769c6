"""The environment of one task of a job step, as SLURM 22.05's srun sets it.

Shared by srun inside an allocation (``cli.srun_step``) and by the
controller, which launches step 0 of a one-task job srun made straight
from the job's supervisor (``ctld.srun_direct``): the task sees the same
variables whichever way it was started.
"""

from __future__ import annotations

from typing import Mapping, Optional

__all__ = ["step_task_environment"]


def step_task_environment(job_env: Mapping[str, str], *, step_id: int, rank: int,
                          ntasks: int, node: str, umask: int,
                          cpus_per_task: Optional[int] = None) -> dict[str, str]:
    """The variables task ``rank`` of step ``step_id`` gets on top of the
    job's environment ``job_env`` (a step on one node)."""
    n, s = str(ntasks), str(step_id)
    env = dict(SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank),
               SLURM_NODEID=job_env.get("SLURM_NODEID", "0"),
               SLURM_GTIDS=",".join(str(r) for r in range(ntasks)),
               SLURM_STEP_ID=s, SLURM_STEPID=s, SLURM_NTASKS=n, SLURM_NPROCS=n,
               SLURM_STEP_NUM_TASKS=n, SLURM_STEP_NUM_NODES="1",
               SLURM_STEP_NODELIST=node, SLURM_STEP_TASKS_PER_NODE=n,
               SLURM_TASKS_PER_NODE=n,
               # srun 22.05 on one node: cyclic for one task, block for more
               SLURM_UMASK="%04o" % umask,
               SLURM_DISTRIBUTION="cyclic" if ntasks == 1 else "block")
    if job_env.get("SLURM_JOB_CPUS_PER_NODE"):
        env["SLURM_JOB_CPUS_PER_NODE_PACK_GROUP_0"] = job_env["SLURM_JOB_CPUS_PER_NODE"]
    if cpus_per_task:
        env["SLURM_CPUS_PER_TASK"] = str(cpus_per_task)
    return env

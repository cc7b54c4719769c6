"""Step 0 of a job srun made, started by the job's supervisor itself.

``srun CMD`` outside an allocation makes a job whose only work is step 0.
For one task with no per-task I/O options (``cli.srun_cmd.direct_step``)
the supervisor runs the task in place of a batch script, instead of a
second srun inside the job (a Python start, two requests: some 40 ms of a
command that should take 40 ms in all). The controller keeps the step's
record that srun would have kept: step 0 RUNNING from the job's start, ended
from the run's result as srun ends it (``cli.srun_step.Step.report``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..slurm.stepenv import step_task_environment

if TYPE_CHECKING:
    from .context import Context

__all__ = ["begin", "end"]


def begin(ctx: "Context", task: dict, spec: dict, env: dict, now: float) -> None:
    """Record step 0 (once per run: a launch may be sent again) and add the
    step's variables to the task's environment ``env``."""
    key = task["run_key"]
    name = str(task["req"].get("name") or "")
    cpus = int(task["alloc_cpus"] or 1)
    if ctx.store.step(f"{key}.0") is None:
        ctx.store.add_srun_step(key, task["task_id"], task["node"], now, name, 1, cpus)
        ctx.store.log(task["task_id"], now, "step", f"0 start {name}")
    umask = spec.get("umask")
    cpt = spec.get("cpus_per_task") if spec.get("cpus_per_task_set") else None
    env.update(step_task_environment(env, step_id=0, rank=0, ntasks=1, node=task["node"],
                                     umask=0o022 if umask is None else int(umask),
                                     cpus_per_task=int(cpt) if cpt else None))


def end(ctx: "Context", task: dict, key: str, result: dict, now: float) -> None:
    """The run ``key`` ended: its step 0, when the supervisor ran it, ends with it."""
    step = ctx.store.step(f"{key}.0")
    if step is None or step["end_time"] is not None:
        return  # a batch job's srun step ends itself (or is shown CANCELLED)
    job = ctx.store.job(task["job_id"])
    if job is None or not job["spec"].get("srun_direct"):
        return
    state = str(result.get("state") or "FAILED")
    if state == "LOST":
        return  # the run's fate is unknown: the job's record says it
    code = int(result.get("exit_code") or 0)
    sig = int(result.get("signal") or 0)
    step_state: Optional[str]
    if state == "OUT_OF_MEMORY":
        step_state, code, sig = "OUT_OF_MEMORY", 0, 125  # srun's for SIG_OOM
    elif sig or task["cancelled_by"] is not None or state in ("CANCELLED", "TIMEOUT"):
        step_state = "CANCELLED"
    else:
        step_state = "FAILED" if code else "COMPLETED"
    ctx.store.update_step(f"{key}.0", state=step_state, end_time=result.get("end_time") or now,
                          exit_code=code, exit_signal=sig,
                          user_cpu=result.get("user_cpu"), system_cpu=result.get("system_cpu"),
                          max_rss_kb=result.get("max_rss_kb"))
    ctx.store.log(task["task_id"], now, "step", f"0 end {step_state} {code}:{sig}")

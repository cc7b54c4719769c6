"""What a workstation's policy does to the jobs running there when its owner
comes back (the scheduler's :class:`SuspendJob`, :class:`ResumeJob` and
:class:`EvictJob`, decided in :mod:`fleetslurm.scheduler.workstation`).

Suspend, as ``scontrol suspend`` does in SLURM: the task is SUSPENDED, every
process of the job gets SIGSTOP (through its machine's agent), and its time
limit stops running (the agent's limit is lifted; at the resume it is put
back, moved by the time spent suspended, as SLURM moves a suspended job's
end). Resume: RUNNING again, SIGCONT. Evict: requeued, as ``scontrol
requeue``. Runs inside :meth:`Controller.step`'s transaction.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, Optional, Union

from ..node.agent import protocol
from ..scheduler import EvictJob, ResumeJob, SuspendJob
from .lifecycle import cancel_task, move, requeue_task

if TYPE_CHECKING:
    from .context import Context

__all__ = ["carry_out", "node_limit_s", "reassert"]


def node_limit_s(task: dict) -> Optional[int]:
    """The time limit the agent enforces for a running task: seconds from its
    start, plus the seconds it spent suspended (None: UNLIMITED)."""
    limit = task["req"].get("time_limit")
    if limit is None:
        return None
    return int(limit) * 60 + int(round(task.get("suspended_s") or 0.0))


def carry_out(ctx: "Context", action: Union[SuspendJob, ResumeJob, EvictJob], now: float) -> None:
    """One policy action of the scheduler, on its task's row and its machine."""
    task = ctx.store.task(action.job_id)
    if task is None or task["node"] != action.node or not task["run_key"]:
        return
    key = task["run_key"]
    if isinstance(action, SuspendJob):
        if task["state"] != "RUNNING" or task["cancelled_by"] is not None:
            return  # (a job being cancelled is let die, not frozen mid-way)
        move(ctx, task, "SUSPENDED", suspend_time=now)
        ctx.store.log(task["task_id"], now, "suspend", f"on {action.node}: {action.reason}")
        _stop(ctx, action.node, key)
    elif isinstance(action, ResumeJob):
        if task["state"] != "SUSPENDED":
            return
        held = max(0.0, now - (task["suspend_time"] or now))
        total = float(task["suspended_s"] or 0.0) + held
        # SLURM's SuspendTime is the last suspend or resume
        move(ctx, task, "RUNNING", suspend_time=now, suspended_s=total)
        ctx.store.log(task["task_id"], now, "resume",
                      f"on {action.node} after {held:.0f} s suspended")
        _go_on(ctx, action.node, dict(task, suspended_s=total))
    elif task["state"] in ("RUNNING", "SUSPENDED"):
        if task["cancelled_by"] is not None:
            return  # being cancelled: let it die (a requeue would run it again)
        job = ctx.store.job(task["job_id"])
        if job is not None and not job["spec"].get("requeue", True):
            # --no-requeue: it may not run again; as SLURM's preemption by
            # requeue of such a job, it is cancelled
            why = (f"{action.reason} on {action.node}: cancelled by its workstation policy "
                   "(submitted with --no-requeue, it may not be requeued)")
            ctx.log(f"job {task['task_id']}: {why}")
            ctx.store.log(task["task_id"], now, "evict", why)
            cancel_task(ctx, task, os.getuid(), now, reason="None")
            return
        why = f"{action.reason} on {action.node}: requeued by its workstation policy"
        ctx.log(f"job {task['task_id']}: {why}")
        requeue_task(ctx, task, now, why)


def reassert(ctx: "Context", node: str, task: dict) -> None:
    """At its agent's hello, the machine's side of a running task's
    suspension as the store has it: the signal and limit a suspend or resume
    sends once after its commit are lost with a dropped link or a controller
    killed in between, and the scheduler would never send them again (it
    holds the state it decided). All of it is idempotent."""
    if task["state"] == "SUSPENDED":
        _stop(ctx, node, task["run_key"])
    elif task["state"] == "RUNNING" and task.get("suspend_time") is not None:
        _go_on(ctx, node, task)  # resumed at least once (SIGCONT: a no-op if it runs)


def _stop(ctx: "Context", node: str, key: str) -> None:
    """A suspension on the machine: its limit lifted, every process SIGSTOP."""
    ctx.send(node, protocol.set_limit(key, None))
    ctx.send(node, protocol.signal(key, int(signal.SIGSTOP), "full"))


def _go_on(ctx: "Context", node: str, task: dict) -> None:
    """A resume on the machine: SIGCONT, the limit back (moved by the time
    ``task`` has spent suspended)."""
    ctx.send(node, protocol.signal(task["run_key"], int(signal.SIGCONT), "full"))
    ctx.send(node, protocol.set_limit(task["run_key"], node_limit_s(task)))

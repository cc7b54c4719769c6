"""A task's lifecycle: the only module that changes a task's state.

Every function here runs inside the loop's transaction (see :mod:`.loop`): it
writes the store and queues scheduler events and agent messages through the
:class:`~.context.Context`; nothing is sent before the commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..model import LIVE_STATE_NAMES
from ..scheduler import JobEnded, JobHeld, JobRequeued, JobSubmitted

if TYPE_CHECKING:
    from .context import Context

_LIVE = LIVE_STATE_NAMES
#: the states a run's result may give its task
RESULT_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY"})


def is_array_record(task: dict) -> bool:
    """Whether a task row is an array's own record (indices without a task yet)."""
    return task.get("array_pending") is not None


def final_state(task: dict, step: Optional[dict]) -> str:
    """The state a COMPLETING task ends in, from its run's record."""
    if task["cancelled_by"] is not None:
        return "CANCELLED"
    state = step["state"] if step else "FAILED"
    return state if state in RESULT_STATES else "FAILED"



def finish_collection(ctx: "Context", task_id: int, run_key: str, node: str,
                      now: float, keep: bool = False) -> None:
    """A run's output is home (or, with ``keep``, could not come home: the
    agent moves the run's directory aside instead of deleting it, and no
    longer reports the run): its task may end COMPLETING."""
    task = ctx.store.task(task_id)
    ctx.send(node, {"op": "forget", "key": run_key, "keep": True} if keep
             else {"op": "forget", "key": run_key})
    if task is None:
        return
    if task["run_key"] != run_key:
        return  # an earlier run's output, appended before the current run's
    if task["state"] == "COMPLETING":
        ctx.store.update_task(task_id, collected=1,
                              state=final_state(task, ctx.store.step(run_key)))
    else:
        ctx.store.update_task(task_id, collected=1)



def requeue_task(ctx: "Context", task: dict, now: float, why: str, hold: bool = False,
                 state_note: str = "REQUEUED", signal: int = 9) -> None:
    """Back to PENDING under the same id; a live run gets ``signal`` (SIGTERM:
    SIGKILL follows after KillWait)."""
    if task["state"] == "RUNNING":  # its run so far counts, as in SLURM
        ctx.fairshare.charge_run(ctx, task, now, now)
    if task["state"] in _LIVE and task["run_key"]:
        ctx.send(task["node"], {"op": "cancel", "key": task["run_key"], "signal": signal,
                                "requeue": True})
        step = ctx.store.step(task["run_key"])
        if step and step["end_time"] is None:
            ctx.store.update_step(task["run_key"], state=state_note, end_time=now)
    ctx.store.update_task(task["task_id"], state="PENDING", reason="None", node=None,
                          run_key=None, restart_count=task["restart_count"] + 1,
                          start_time=None, end_time=None, exit_code=None, exit_signal=None,
                          alloc_cpus=None, alloc_mem_mb=None, gpu_ids=None,
                          held=int(hold or task["held"]), cancelled_by=None, collected=0)
    ctx.store.log(task["task_id"], now, "requeue", why)
    if task["task_id"] in ctx.fed and task["state"] == "RUNNING":
        ctx.emit(JobRequeued(task["task_id"]))
        if hold:
            ctx.emit(JobHeld(task["task_id"]))
    else:
        # it had ended (or was finishing) as far as the scheduler knows: new again
        fresh = ctx.store.task(task["task_id"])
        job = ctx.store.job(task["job_id"])
        ctx.emit(JobSubmitted(ctx.request_of(fresh, job)))  # type: ignore[arg-type]
        ctx.mark_fed(fresh, job)  # type: ignore[arg-type]



def node_fail(ctx: "Context", task: dict, now: float, why: str) -> None:
    if task.get("cancelled_by") is not None:
        # cancelled while its machine did not answer: the cancel stands (a
        # requeue would run again what its user cancelled); the run, if it
        # still lives, is named unwanted at the machine's next hello
        if task["run_key"]:
            ctx.store.update_step(task["run_key"], state="CANCELLED", end_time=now)
        finish_cancel(ctx, task, task["cancelled_by"], now)
        return
    job = ctx.store.job(task["job_id"])
    if job and job["spec"].get("requeue", True):
        if task["run_key"]:
            ctx.store.update_step(task["run_key"], state="NODE_FAIL", end_time=now)
        requeue_task(ctx, task, now, f"NODE_FAIL: {why}", state_note="NODE_FAIL")
        return
    ctx.store.update_task(task["task_id"], state="NODE_FAIL", end_time=now, exit_code=0,
                          exit_signal=0, reason="NodeDown")
    if task["run_key"]:
        ctx.store.update_step(task["run_key"], state="NODE_FAIL", end_time=now)
    ctx.store.log(task["task_id"], now, "end", f"NODE_FAIL {why}")
    ctx.emit(JobEnded(task["task_id"], "NODE_FAIL", now))
    ctx.forget_fed(task["task_id"])
    ctx.task_finished(task)



def cancel_task(ctx: "Context", task: dict, uid: int, now: float,
                reason: str = "None") -> None:
    """Cancel a job or task (an array's record: the indices without a task)."""
    if is_array_record(task):
        if task["state"] == "PENDING":
            ctx.arrays.cancel_remainder(task, uid, now, reason)
        return
    if task["state"] in _LIVE:
        ctx.store.update_task(task["task_id"], cancelled_by=uid)
        ctx.store.log(task["task_id"], now, "cancel", f"by {uid}")
        link = ctx.links.get(task["node"])
        if link is not None and link.status == "up":
            ctx.send(task["node"], {"op": "cancel", "key": task["run_key"], "signal": 15})
            if task["node"] not in ctx.nodes.not_responding:
                return
        # the machine is unreachable or not responding: record the cancel now
        # (scancel must not wait node_timeout); a late result is ignored and a
        # still-running process is killed when the machine is back
    finish_cancel(ctx, task, uid, now, reason)



def finish_cancel(ctx: "Context", task: dict, uid: int, now: float,
                  reason: str = "None") -> None:
    """The job is CANCELLED now (it is pending, or its machine cannot be told)."""
    ctx.store.update_task(task["task_id"], state="CANCELLED", cancelled_by=uid, end_time=now,
                          exit_code=0, exit_signal=0, reason=reason)
    ctx.store.log(task["task_id"], now, "end", f"CANCELLED by {uid}")
    if task["task_id"] in ctx.fed:
        ctx.emit(JobEnded(task["task_id"], "CANCELLED", now))
        ctx.forget_fed(task["task_id"])
    ctx.task_finished(task)


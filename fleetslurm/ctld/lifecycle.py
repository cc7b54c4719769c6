"""A task's lifecycle: the only module that writes a task's state.

Every state a task may be in, and every move from one to another, is listed
in :data:`TRANSITIONS`; :func:`move` is the one place that writes a task's
``state`` and refuses a move the table does not list (it raises
:class:`IllegalTransition` with the task's history). :func:`end_task` is the
one sequence that ends a task (its row, its history line, and the scheduler
and its array told). Callers elsewhere in the controller change a task's
state only through the functions here.

Every function here runs inside the loop's transaction (see :mod:`.loop`): it
writes the store and queues scheduler events and agent messages through the
:class:`~.context.Context`; nothing is sent before the commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ..model import ACTIVE_STATE_NAMES, LIVE_STATE_NAMES
from ..node.agent import protocol
from ..scheduler import JobEnded, JobHeld, JobRequeued, JobSubmitted
from . import mail

if TYPE_CHECKING:
    from .context import Context

__all__ = ["TRANSITIONS", "IllegalTransition", "RESULT_STATES", "move", "end_task",
           "start_task", "final_state", "finish_collection", "requeue_task", "node_fail",
           "cancel_task", "finish_cancel", "is_array_record"]

_LIVE = LIVE_STATE_NAMES
#: the states a run's result may give its task
RESULT_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY"})

#: every move a task's state may make (from -> the states it may go to), and why
TRANSITIONS: dict[str, frozenset[str]] = {
    # started by the scheduler; cancelled (or an array record's remainder);
    # a stored record that cannot even be read fails at the controller's start
    "PENDING": frozenset({"RUNNING", "CANCELLED", "FAILED"}),
    # its run's result (at once with a shared filesystem, else COMPLETING while
    # its output comes home); NODE_FAIL; requeued; RUNNING again when an
    # earlier run, given up for lost, turns out to be the job's result
    "RUNNING": frozenset({"RUNNING", "COMPLETING", "NODE_FAIL", "PENDING", "SUSPENDED"})
    | RESULT_STATES,
    # suspended by its workstation's policy (SIGSTOP): resumed, or whatever
    # may end a running task (cancelled, requeued, NODE_FAIL, its result)
    "SUSPENDED": frozenset({"RUNNING", "COMPLETING", "NODE_FAIL", "PENDING"}) | RESULT_STATES,
    # its output is home (or lost): the run's result; requeued; cancelled
    # while its machine is silent
    "COMPLETING": frozenset({"PENDING", "NODE_FAIL"}) | RESULT_STATES,
    # its machine came back: still running, or its result arrived; requeued
    "NODE_FAIL": frozenset({"RUNNING", "COMPLETING", "PENDING"}) | RESULT_STATES,
    # scontrol requeue of a finished job (or of a cancelled array remainder)
    **{s: frozenset({"PENDING"}) for s in RESULT_STATES},
}


#: a task whose run is on its machine and not over (suspended: stopped there)
_RUNS = ("RUNNING", "SUSPENDED")


def _wake_if_suspended(ctx: "Context", task: dict) -> None:
    """A stopped (suspended) job gets SIGCONT after a cancel's signal, or the
    signal waits for KillWait's SIGKILL (slurmstepd does the same)."""
    if task["state"] == "SUSPENDED" and task["run_key"]:
        import signal as _signal

        ctx.send(task["node"], protocol.signal(task["run_key"], int(_signal.SIGCONT), "full"))


class IllegalTransition(RuntimeError):
    """A move of a task's state that :data:`TRANSITIONS` does not list: a bug."""


def move(ctx: "Context", task: dict, new: str, **fields: Any) -> None:
    """Write ``new`` as the state of ``task`` (the row as the caller read it),
    with ``fields``; raises :class:`IllegalTransition` for a move the table
    does not list, naming the task's history."""
    old = task["state"]
    if new not in TRANSITIONS.get(old, frozenset()):
        history = "; ".join(f"{h['time']:.3f} {h['event']} {h['detail']}".rstrip()
                            for h in ctx.store.history(task["task_id"]))
        raise IllegalTransition(f"job {task['task_id']}: {old} -> {new} is not a move a "
                                f"task may make (history: {history or 'none'})")
    ctx.store.update_task(task["task_id"], state=new, **fields)
    if task["req"].get("mail"):  # --mail-type: its mail goes after the commit
        mail.on_move(ctx, task, old, new, fields)
    if new not in ACTIVE_STATE_NAMES:
        ctx.tasks_ended += 1  # the loop then answers who waits for it (waiters)


def end_task(ctx: "Context", task: dict, state: str, now: float, why: str, *,
             exit_code: Optional[int] = 0, exit_signal: Optional[int] = 0,
             end_time: Optional[float] = None, ended_as: Optional[str] = None,
             tell_scheduler: bool = True, only_if_fed: bool = False, **fields: Any) -> None:
    """A task ends ``state`` (COMPLETING: its output still to come home):
    its row and the history line ``end`` (``why``), then the scheduler is
    told it ended (``ended_as``, by default ``state``) and its array may hand
    out the next tasks. ``tell_scheduler=False`` for a task the scheduler no
    longer has; ``only_if_fed``: tell it only if it has the task (the array
    is told in any case)."""
    end = end_time or now
    move(ctx, task, state, end_time=end, exit_code=exit_code, exit_signal=exit_signal,
         **fields)
    ctx.store.log(task["task_id"], now, "end", why)
    if not tell_scheduler:
        return
    if not only_if_fed or task["task_id"] in ctx.fed:
        ctx.emit(JobEnded(task["task_id"], ended_as or state, end))
        ctx.forget_fed(task["task_id"])
    ctx.task_finished(task)


def start_task(ctx: "Context", task: dict, **fields: Any) -> None:
    """A pending task starts (its node, allocation and run key in ``fields``)."""
    move(ctx, task, "RUNNING", **fields)


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
                      now: float, keep: bool = False,
                      current: Optional[dict] = None) -> None:
    """A run's output is home (or, with ``keep``, could not come home: the
    agent moves the run's directory aside instead of deleting it, and no
    longer reports the run): its task may end COMPLETING. ``current``: the
    task's row as the caller just read it in this transaction (not read again)."""
    task = current if current is not None else ctx.store.task(task_id)
    ctx.send(node, protocol.forget(run_key, keep=keep))
    if task is None:
        return
    if task["run_key"] != run_key:
        return  # an earlier run's output, appended before the current run's
    if task["state"] == "COMPLETING":
        move(ctx, task, final_state(task, ctx.store.step(run_key)), collected=1)
    else:
        ctx.store.update_task(task_id, collected=1)


def requeue_task(ctx: "Context", task: dict, now: float, why: str, hold: bool = False,
                 state_note: str = "REQUEUED", signal: int = 9) -> None:
    """Back to PENDING under the same id; a live run gets ``signal`` (SIGTERM:
    SIGKILL follows after KillWait)."""
    if task["state"] in _RUNS:  # its run so far counts, as in SLURM
        ctx.fairshare.charge_run(ctx, task, now, now)
    if task["state"] in _LIVE and task["run_key"]:
        ctx.send(task["node"], protocol.cancel(task["run_key"], signal, requeue=True))
        _wake_if_suspended(ctx, task)
        step = ctx.store.step(task["run_key"])
        if step and step["end_time"] is None:
            ctx.store.update_step(task["run_key"], state=state_note, end_time=now)
    move(ctx, task, "PENDING", reason="None", node=None, run_key=None, suspend_time=None,
         suspended_s=0.0, restart_count=task["restart_count"] + 1, start_time=None, end_time=None,
         exit_code=None, exit_signal=None, alloc_cpus=None, alloc_mem_mb=None, gpu_ids=None,
         held=int(hold or task["held"]), cancelled_by=None, collected=0)
    ctx.store.log(task["task_id"], now, "requeue", why)
    if task["task_id"] in ctx.fed and task["state"] in _RUNS:
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
    if task["run_key"]:
        ctx.store.update_step(task["run_key"], state="NODE_FAIL", end_time=now)
    end_task(ctx, task, "NODE_FAIL", now, f"NODE_FAIL {why}", reason="NodeDown")


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
            ctx.send(task["node"], protocol.cancel(task["run_key"], 15))
            _wake_if_suspended(ctx, task)
            if task["node"] not in ctx.nodes.not_responding:
                return
        # the machine is unreachable or not responding: record the cancel now
        # (scancel must not wait node_timeout); a late result is ignored and a
        # still-running process is killed when the machine is back
    finish_cancel(ctx, task, uid, now, reason)


def finish_cancel(ctx: "Context", task: dict, uid: int, now: float,
                  reason: str = "None") -> None:
    """The job is CANCELLED now (it is pending, or its machine cannot be told)."""
    end_task(ctx, task, "CANCELLED", now, f"CANCELLED by {uid}", only_if_fed=True,
             cancelled_by=uid, reason=reason)


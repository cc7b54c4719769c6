"""``fleetslurm explain JOB``: why a job waits, runs or ended, in words."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ...errors import InvalidJobId
from ...jobids import resolve
from ...model import LIVE_STATE_NAMES as _LIVE
from ...slurm.arrays import IndexSet
from .common import shown_id

if TYPE_CHECKING:
    from ..context import Context


def op_explain(ctx: "Context", args: dict, uid: int, now: float) -> str:
    """``fleetslurm explain JOB``: the scheduler's view, in words."""
    tasks, picks = resolve(ctx.store, str(args.get("id")))
    if not tasks and not picks:
        raise InvalidJobId(f"Invalid job id specified: {args.get('id')}")
    lines = []
    for pick in picks[:1]:
        tasks.insert(0, pick.record)
    for task in tasks:
        job = ctx.store.job(task["job_id"])
        shown = shown_id(task, job)  # type: ignore[arg-type]
        if task["array_pending"] is not None:
            rest = IndexSet.from_text(task["array_pending"]).format()
            shown = f"{task['job_id']}_[{rest}]"
            if task["state"] == "PENDING":
                lines.append(f"job {shown} is pending ({task['reason']}): these tasks get their "
                             "own job ids as the array hands them to the scheduler; see the "
                             "array's other tasks for why they wait")
                continue
        if task["state"] == "PENDING" and task["task_id"] in ctx.fed:
            lines.append(ctx.sched.explain(task["task_id"]))
        elif task["state"] == "PENDING":
            lines.append(f"job {shown} is pending (JobArrayTaskLimit): its array's %N "
                         "throttle (or its window of tasks handed to the scheduler) holds it back")
        elif task["state"] == "SUSPENDED" and task["task_id"] in ctx.fed:
            # the scheduler says why (its workstation's owner) and until when
            lines.append(ctx.sched.explain(task["task_id"]))
        elif task["state"] in _LIVE:
            lines.append(f"job {shown} is running on {task['node']} since "
                         f"{time_text(task['start_time'])}")
        else:
            lines.append(f"job {shown} ended {task['state']} "
                         f"({task['exit_code']}:{task['exit_signal']}) at "
                         f"{time_text(task['end_time'])}")
    return "\n".join(lines)


def time_text(ts: Optional[float]) -> str:
    import time as _time

    return "Unknown" if ts is None else _time.strftime("%Y-%m-%dT%H:%M:%S", _time.localtime(ts))


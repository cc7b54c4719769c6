"""What the client requests share: finding a request's tasks by id, checking
their owner, and naming them as SLURM does."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import AccessDenied, InvalidJobId, UsageError
from ...jobids import resolve

if TYPE_CHECKING:
    from ..context import Context


def check_owner(ctx: "Context", task: dict, uid: int) -> dict:
    job = ctx.store.job(task["job_id"])
    assert job is not None
    if uid not in (0, job["uid"]):
        raise AccessDenied("Access/permission denied")
    return job


def shown_id(task: dict, job: dict) -> str:
    if task["array_index"] is not None:
        return f"{job['job_id']}_{task['array_index']}"
    return str(task["task_id"])


def each_task(ctx: "Context", args: dict, uid: int,
          split: bool = True) -> list[tuple[dict, dict, bool]]:
    """(task, job, named as part of an array) for every id; pending indices of an
    array that have no task yet are split out into tasks first (``split``)."""
    out = []
    for text in args.get("ids") or []:
        try:
            found, picks = resolve(ctx.store, text)
        except InvalidJobId:
            found, picks = [], []
        if not found and not picks:
            raise InvalidJobId(f"Invalid job id specified for job {text}")
        for pick in picks:
            try:
                check_owner(ctx, pick.record, uid)
            except AccessDenied:
                raise AccessDenied(f"Access/permission denied for job {text}") from None
            record = ctx.store.task(pick.record["task_id"])
            if split and record is not None and record["state"] == "PENDING":
                found.append(ctx.arrays.split(record, pick.index))
        several = len(found) > 1
        for task in found:
            try:
                out.append((task, check_owner(ctx, task, uid), several))
            except AccessDenied:
                raise AccessDenied(f"Access/permission denied for job {text}") from None
    if not out:
        raise UsageError("No job identification provided", prog="scontrol")
    return out


def in_scheduler(ctx: "Context", task: dict) -> list[int]:
    """The scheduler's ids for a task: its own if it has it, and for an array's
    record the tasks of its window (they have no row until they start)."""
    ids = [task["task_id"]] if task["task_id"] in ctx.fed else []
    if task["array_pending"] is not None:
        ids.extend(ctx.arrays.window_tasks(task["task_id"]))
    return ids


def refill_arrays(ctx: "Context", pairs: list[tuple[dict, dict, bool]]) -> None:
    """Arrays whose tasks changed may hand out more (or other) tasks now."""
    for job_id in {t["job_id"] for t, _, _ in pairs if t["array_index"] is not None
                   or t["array_pending"] is not None}:
        ctx.arrays.refill(job_id)


"""Client requests on existing jobs: cancel (and signal), hold, release,
requeue, and the controller's shutdown."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterator

from ...node.agent import protocol
from ... import errors
from ...errors import AccessDenied, InvalidJobId
from ...jobids import Pick, resolve
from ...model import ACTIVE_STATE_NAMES, LIVE_STATE_NAMES
from ...scheduler import JobHeld, JobReleased, JobUpdated
from ..lifecycle import cancel_task, move, requeue_task
from .common import check_owner, each_task, in_scheduler, refill_arrays, shown_id

if TYPE_CHECKING:
    from ..context import Context

_LIVE = LIVE_STATE_NAMES
_ACTIVE = ACTIVE_STATE_NAMES


# -- cancel / signal ---------------------------------------------------------------
def op_cancel(ctx: "Context", args: dict, uid: int, now: float) -> dict:
    """scancel. Returns {"errors": [...]}: SLURM goes on after a bad id."""
    ids = list(args.get("ids") or [])
    signal = args.get("signal")
    batch_only = bool(args.get("batch"))
    errs: list[str] = []
    failed = False
    code = 1
    targets: list[tuple[str, dict]] = []
    picks: list[tuple[str, Pick]] = []
    for text in ids:
        try:
            found, picked = resolve(ctx.store, text)
        except InvalidJobId:
            found, picked = [], []
        if not found and not picked:
            # SLURM 22.05 says this only with -v, and still exits 0 (with
            # --signal it says so always, and fails)
            if args.get("verbose") or signal is not None:
                errs.append(f"Kill job error on job id {text}: Invalid job id specified")
                failed = failed or signal is not None
            continue
        targets.extend((text, t) for t in found)
        picks.extend((text, p) for p in picked)
    if not ids:
        for t in ctx.store.active_tasks():
            targets.append((str(t["task_id"]), t))
    targets = [(s, t) for s, t in targets if _matches(ctx, t, args)]
    for shown, pick in picks:
        # an index of a pending array that has no task yet
        record = ctx.store.task(pick.record["task_id"])
        if record is None or record["array_pending"] is None or not _matches(ctx, record, args):
            continue
        try:
            check_owner(ctx, record, uid)
        except AccessDenied as exc:
            errs.append(f"Kill job error on job id {shown}: {exc}")
            continue
        if record["state"] != "PENDING":
            continue
        if signal is not None:
            errs.append(f"Kill job error on job id {shown}: Job is pending execution")
            continue
        ctx.arrays.drop_index(record, pick.index, uid, now)
    for shown, task in targets:
        try:
            check_owner(ctx, task, uid)
        except AccessDenied as exc:
            if ids:
                errs.append(f"Kill job error on job id {shown}: {exc}")
            continue
        if task["state"] not in _ACTIVE:
            if signal is not None and ids:
                # a signal for a finished job: SLURM 22.05 refuses it
                errs.append(f"Kill job error on job id {shown}: Invalid job id specified")
                failed = True
            continue  # finished but remembered: silent, exit 0
        if signal is not None:
            if task["state"] in _LIVE:
                if args.get("abort"):
                    # srun's second Ctrl-C: the job is cancelled by this signal,
                    # recorded before it is sent, so a task that exits at once
                    # of it ends CANCELLED, not FAILED (srun's cancel follows)
                    ctx.store.update_task(task["task_id"], cancelled_by=uid)
                    ctx.store.log(task["task_id"], now, "cancel", f"by {uid} (srun abort)")
                # SLURM: srun steps only by default, -b the batch shell, -f everything
                scope = "full" if args.get("full") else "batch" if batch_only else "steps"
                ctx.send(task["node"], protocol.signal(task["run_key"], int(signal), scope))
            elif ids:
                # SLURM 22.05's words, and its exit status (the error number's low byte)
                errs.append(f"Kill job error on job id {shown}: Job can not be altered now, "
                            "try again later")
                failed, code = True, 228
            continue
        cancel_task(ctx, task, uid, now)
    failed = failed or any("Invalid job id" not in e for e in errs)
    return {"errors": errs, "failed": failed, "code": code if failed else 0}


def _matches(ctx: "Context", task: dict, args: dict) -> bool:
    job = ctx.store.job(task["job_id"])
    assert job is not None
    users = args.get("users")
    if users and job["user"] not in users and str(job["uid"]) not in users:
        return False
    if args.get("name") and task["req"]["name"] not in args["name"]:
        return False
    states = args.get("states")
    if states and task["state"] not in states:
        return False
    if args.get("partition") and task["req"]["partition"] not in args["partition"]:
        return False
    return True


# -- hold / release / requeue ------------------------------------------------------
def _pending_of(pairs: list) -> Iterator[tuple[dict, str]]:
    """The pending tasks hold and release change, with their shown ids: a
    running one is left alone (exit 0, as SLURM's), a finished one is an
    error unless it is one of an array's tasks that already ran."""
    for task, job, several in pairs:
        if task["state"] not in _ACTIVE:
            if several:
                continue
            raise errors.JobError(f"Job has already finished for job {shown_id(task, job)}")
        if task["state"] == "PENDING":
            yield task, shown_id(task, job)


def op_hold(ctx: "Context", args: dict, uid: int, now: float) -> dict:
    """scontrol hold/uhold. As SLURM 22.05: root's ``hold`` is an admin hold
    (JobHeldAdmin, which only root releases), ``uhold`` and anyone else's a
    user hold (JobHeldUser); a running job is left alone (exit 0), a finished
    one is an error (an array's tasks that already ran are skipped)."""
    reason = "JobHeldAdmin" if uid == 0 and not args.get("user") else "JobHeldUser"
    pairs = each_task(ctx, args, uid)
    for task, _shown in _pending_of(pairs):
        ctx.store.update_task(task["task_id"], held=1,
                              req={**task["req"], "held_reason": reason})
        ctx.store.log(task["task_id"], now, "hold", f"by {uid}")
        for task_id in in_scheduler(ctx, task):
            ctx.emit(JobHeld(task_id))
    refill_arrays(ctx, pairs)
    return {}


def op_release(ctx: "Context", args: dict, uid: int, now: float) -> dict:
    pairs = each_task(ctx, args, uid)
    for task, shown in _pending_of(pairs):
        if task["req"].get("held_reason") == "JobHeldAdmin" and uid != 0:
            raise AccessDenied(f"Access/permission denied for job {shown}")
        req = {k: v for k, v in task["req"].items() if k != "held_reason"}
        ctx.store.update_task(task["task_id"], held=0, req=req)
        ctx.store.log(task["task_id"], now, "release", f"by {uid}")
        for task_id in in_scheduler(ctx, task):
            ctx.emit(JobReleased(task_id))
    refill_arrays(ctx, pairs)
    return {}


def op_requeue(ctx: "Context", args: dict, uid: int, now: float) -> dict:
    """scontrol requeue / requeuehold: the job goes back to PENDING under the
    same id (its restart count up). As SLURM does, a running job's processes
    get SIGTERM, then SIGKILL after KillWait, and the job may start again only
    after that (reason BeginTime meanwhile); whatever the old run then exits
    with is not its result."""
    hold = bool(args.get("hold"))
    pairs = each_task(ctx, args, uid, split=False)
    for task, job, several in pairs:
        shown = shown_id(task, job)
        if task["state"] == "PENDING":
            if several:
                continue  # the tasks of an array that have not run
            raise errors.JobError(f"Job is pending execution for job {shown}")
        if not job["spec"].get("requeue", True):
            raise errors.JobError(f"Requested operation is presently disabled for job {shown}")
        if task["array_pending"] is not None:
            # a cancelled array remainder: its indices are pending again
            move(ctx, task, "PENDING", end_time=None, cancelled_by=None,
                 held=int(hold or task["held"]))
            ctx.store.log(task["task_id"], now, "requeue", f"scontrol requeue by {uid}")
            ctx.arrays.revive(ctx.store.task(task["task_id"]), job)  # type: ignore[arg-type]
            continue
        live = task["state"] == "RUNNING"
        requeue_task(ctx, task, now, f"scontrol requeue by {uid}", hold=hold,
                     signal=15 if live else 9)
        req = dict(ctx.store.task(task["task_id"])["req"])  # type: ignore[index]
        if hold:
            req["held_reason"] = "job requeued in held state"
        if live:
            # SLURM holds a requeued job back until its old run is surely gone
            req["begin_time"] = now + ctx.config.kill_wait + 1
            if task["task_id"] in ctx.fed:
                ctx.emit(JobUpdated(task["task_id"], begin_time=req["begin_time"]))
        ctx.store.update_task(task["task_id"], req=req)
    return {}


def op_shutdown(ctx: "Context", args: dict, uid: int, now: float) -> dict:
    if uid not in (0, os.getuid()):
        raise AccessDenied("Access/permission denied")
    ctx.stop()
    return {}



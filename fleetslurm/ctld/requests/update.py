"""``scontrol update JobId=...``: the request that changes a job's request or
spec (slurm/job_update.py parses the keys). Runs inside the controller's
transaction like every request (see requests/__init__.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...node.agent import protocol
from ... import errors
from ...errors import AccessDenied, InvalidJobId, UsageError
from ...model import ACTIVE_STATE_NAMES as _ACTIVE
from ...model import LIVE_STATE_NAMES as _LIVE
from ...jobids import resolve
from ...scheduler import JobUpdated
from ..limits import check_update
from ..dependencies import announce, check
from ..jobrequest import job_request
from .common import in_scheduler, shown_id

if TYPE_CHECKING:
    from ..context import Context


def op_update_job(ctx: "Context", args: dict, uid: int, now: float) -> dict:
    """``scontrol update JobId=N KEY=VALUE...``: TimeLimit, Partition, Nice,
    Dependency, StartTime, JobName, Comment... (slurm/job_update.py), with
    SLURM's refusals: a running job takes only some keys, a finished one none,
    only root raises a running job's limit or lowers nice below 0."""
    from ...slurm.job_update import RUNNING_OK, SPEC_FIELDS, check_dependency, parse_job_update

    fields: dict[str, str] = dict(args.get("fields") or {})
    changes = parse_job_update(fields, now)
    texts = [str(t) for t in args.get("ids") or []]
    if not texts:
        raise UsageError("No job identification provided", prog="scontrol")
    if "dependency" in changes and changes["dependency"]:
        # the jobs it names must exist (dependencies.check), as at submission
        try:
            check(ctx.store, changes["dependency"])
        except errors.SubmitError:
            raise errors.JobError(f"Job dependency problem for job {texts[0]}") from None
        announce(ctx, [changes["dependency"]])
    touched: list[dict] = []
    for text in texts:
        try:
            found, picks = resolve(ctx.store, text)
        except InvalidJobId:
            found, picks = [], []
        if not found and not picks:
            raise InvalidJobId(f"{text}: Invalid job id specified" if "_" in text
                               else f"Invalid job id specified for job {text}")
        for pick in picks:
            # an index of a pending array without a task yet: it gets its own now
            record = ctx.store.task(pick.record["task_id"])
            if record is not None and record["state"] == "PENDING":
                if uid not in (0, ctx.store.job(record["job_id"])["uid"]):  # type: ignore[index]
                    raise AccessDenied(f"Invalid user id for job {text}")
                found.append(ctx.arrays.split(record, pick.index))
        several = len(found) > 1
        for task in found:
            if _update_task(ctx, task, text, changes, uid, now, RUNNING_OK, SPEC_FIELDS,
                            check_dependency, several):
                touched.append(task)
    # arrays whose tasks changed may hand out more (or other) tasks now
    for job_id in {t["job_id"] for t in touched if t["array_index"] is not None
                   or t["array_pending"] is not None}:
        ctx.arrays.refill(job_id)
    return {}


def _update_task(ctx: "Context", task: dict, text: str, changes: dict, uid: int,
                 now: float, running_ok: frozenset, spec_fields: frozenset,
                 check_dependency: Any, several: bool = False) -> bool:
    """Apply ``changes`` to one task; False when it was skipped (an array's
    task that already ended, named with its array)."""
    job = ctx.store.job(task["job_id"])
    assert job is not None
    shown = shown_id(task, job)
    if uid not in (0, job["uid"]):
        raise AccessDenied(f"Invalid user id for job {shown}")
    if task["state"] not in _ACTIVE:
        if several:
            return False  # an array's tasks that already ended
        raise errors.JobError(f"Job has already finished for job {shown}")
    running = task["state"] in _LIVE
    req_changes = {k: v for k, v in changes.items() if k not in spec_fields}
    if running:
        if req_changes.get("partition", task["req"]["partition"]) == task["req"]["partition"]:
            req_changes.pop("partition", None)  # the same partition: nothing to change
        if set(req_changes) - running_ok:
            raise errors.JobError(f"Job is no longer pending execution for job {shown}")
    if "partition" in req_changes:
        if req_changes["partition"] not in ctx.config.partitions:
            raise errors.JobError(f"Invalid partition name specified for job {shown}")
        probe = job_request(task["task_id"], job["user"], task["submit_time"],
                            {**task["req"], **req_changes}, False)
        if ctx.sched.can_ever_run(probe) is not None:
            raise errors.JobError("Requested node configuration is not available "
                                  f"for job {shown}")
    if "dependency" in req_changes:
        try:
            check_dependency(req_changes["dependency"])
        except errors.InvalidValue:
            raise errors.JobError(f"Job dependency problem for job {shown}") from None
        from ...slurm.deps import parse_dependency

        dep = req_changes["dependency"]
        if dep and task["task_id"] in parse_dependency(dep).job_ids:
            raise errors.JobError(f"Job dependency problem for job {shown}")
    if req_changes.get("nice", 0) < 0 and uid != 0:
        raise AccessDenied(f"Access/permission denied for job {shown}")
    if running and "time_limit" in req_changes and uid != 0:
        old, new = task["req"]["time_limit"], req_changes["time_limit"]
        if new is None or (old is not None and new > old):
            raise AccessDenied(f"Access/permission denied for job {shown}")
    if not running and ("qos" in changes or "account" in changes):
        # the scheduler's QOS and account (its limits) change with the job's
        req_changes.update(check_update(ctx, job, task, changes, shown))
    if req_changes:
        ctx.store.update_task(task["task_id"], req={**task["req"], **req_changes})
    spec_changes = {k: v for k, v in changes.items() if k in spec_fields}
    if spec_changes:
        ctx.store.set_job_spec(job["job_id"], {**job["spec"], **spec_changes})
    if "mail_type" in spec_changes:  # what lifecycle.move looks at (mail.on_move)
        fresh = ctx.store.task(task["task_id"]) or task
        ctx.store.update_task(task["task_id"], req={**fresh["req"],
                                                    "mail": spec_changes["mail_type"]})
        ctx.time_limit_mail = True  # a running job may now want TIME_LIMIT* mail
    ctx.store.log(task["task_id"], now, "update", repr(sorted(changes.items())))
    sched = {k: (frozenset(v) if k in ("exclude", "nodelist") else v)
             for k, v in req_changes.items()}
    for task_id in in_scheduler(ctx, task) if sched else ():
        ctx.emit(JobUpdated(task_id, **sched))
    if running and "time_limit" in req_changes and task["state"] != "SUSPENDED":
        # (a suspended job has no limit on its machine: its resume sets the new one)
        limit = req_changes["time_limit"]
        ctx.send(task["node"], protocol.set_limit(
            task["run_key"], None if limit is None
            else limit * 60 + int(round(task.get("suspended_s") or 0.0))))
    return True

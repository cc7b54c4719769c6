"""Client requests that change state: submit, cancel, hold, release, requeue,
update. Each runs inside the controller's transaction under a savepoint, so a
refused request leaves nothing behind."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

from . import errors
from .errors import AccessDenied, InvalidJobId, SubmitError, UsageError
from .model import ACTIVE_STATE_NAMES, LIVE_STATE_NAMES
from .scheduler import JobEnded, JobHeld, JobRequest, JobReleased, JobSubmitted, JobUpdated
from .views import user_name
# srun's requests (steps, standard input) and job updates live in their own modules
from .ops_steps import op_step_begin, op_step_end, op_stdin  # noqa: F401
from .ops_update import op_update_job  # noqa: F401

if TYPE_CHECKING:
    from .controller import Controller

_LIVE = LIVE_STATE_NAMES
_ACTIVE = ACTIVE_STATE_NAMES


# -- submit -----------------------------------------------------------------
def op_submit(ctl: "Controller", args: dict, uid: int, now: float) -> dict:
    from .dependencies import announce, check, first_shown
    from .slurm.arrays import parse_array_set
    from .slurm.jobspec import build_spec

    token = args.get("token")
    if token:
        made = ctl.store.job_of_token(uid, token)
        if made is not None:  # sent again after a lost connection: the same job
            return {"job_id": made, "cluster": ctl.config.cluster_name}

    spec = build_spec(args.get("options") or {}, script=args["script"],
                      script_args=list(args.get("script_args") or []),
                      env=args.get("env") or {}, cwd=args["cwd"],
                      submit_host=args.get("submit_host") or "", now=now)
    if args.get("stage"):
        from .staging import check_stage

        spec["stage"] = check_stage(args["stage"], uid)
    cfg = ctl.config
    partition = spec["partition"] or cfg.default_partition
    if "," in partition:
        partition = partition.split(",")[0]
    if partition not in cfg.partitions:
        raise SubmitError(f"invalid partition specified: {partition}\n"
                          "Batch job submission failed: Invalid partition name specified")
    pcfg = cfg.partitions[partition]
    time_limit = spec["time_limit"]
    if not spec["time_set"]:
        time_limit = pcfg.default_minutes() if pcfg.default_time else pcfg.max_minutes()
    # the submitter's group and nice value (SLURM_JOB_GID, SLURM_PRIO_PROCESS)
    # (a gid the caller is not a member of is not taken: the request is not trusted)
    gid = args.get("gid")
    spec["gid"] = gid if gid is not None and _may_use_gid(uid, gid) else _primary_gid(uid)
    spec["prio_process"] = int(args.get("prio_process") or 0)
    name = spec["name"] or args.get("script_name") or "sbatch"
    spec["name"] = name
    spec["command"] = args.get("command") or ""
    pending: Optional[str] = None
    if args.get("srun"):
        # srun outside an allocation: no batch step of its own, stdin streamed
        spec["srun_job"] = True
        spec["stdin_stream"] = bool(args.get("stdin_stream"))
    if spec["array"] is not None:
        try:
            indices, throttle = parse_array_set(spec["array"], cfg.max_array_size)
        except errors.InvalidValue:
            raise SubmitError("Batch job submission failed: Invalid job array specification") \
                from None
        # SLURM_ARRAY_TASK_MIN/MAX/COUNT/STEP; the indices themselves stay ranges
        spec.update(array_throttle=throttle, array_min=indices.first(), array_max=indices.last(),
                    array_count=len(indices), array_step=indices.step())
        pending = indices.to_text()
    check(ctl.store, spec["dependency"])  # an unknown job id: Job dependency problem
    unknown = [n for n in spec["nodelist"] + spec["exclude"] if n not in cfg.machines]
    if unknown:
        raise SubmitError("Batch job submission failed: Invalid node name specified")
    req = {
        "name": name, "partition": partition, "cpus": spec["cpus"],
        "mem_mb": spec["req_mem_mb"], "gpus": spec["gpus"], "time_limit": time_limit,
        "nice": spec["nice"], "nodelist": spec["nodelist"], "exclude": spec["exclude"],
        "constraint": spec["constraint"], "begin_time": spec["begin_time"],
        "dependency": spec["dependency"], "exclusive": spec["exclusive"], "priority": 0,
    }
    if spec["nice"] < 0 and uid != 0:
        raise SubmitError("Batch job submission failed: Access/permission denied "
                          "(only root may give a negative --nice)")
    user = user_name(uid)
    probe = job_request(0, user, now, req, spec["hold"])
    why = ctl.sched.can_ever_run(probe)
    if why is not None:
        specs = [ctl.node_spec(n) for n in cfg.partition_nodes(partition)]
        if req["gpus"] and not any(s.gpu_ids for s in specs):
            raise SubmitError("Invalid generic resource (gres) specification")
        lines = []
        if req["mem_mb"] and specs and all(req["mem_mb"] > s.mem_mb for s in specs):
            lines.append("Memory specification can not be satisfied")
        lines.append("Batch job submission failed: Requested node configuration is not "
                     "available")
        raise SubmitError("\n".join(lines))
    # one id for the job, or for the whole array: its tasks get theirs as they start
    job_id = ctl.store.allocate_ids(1)
    ctl.store.add_job(job_id, uid, user, now, spec, args["script"], spec["array"])
    if token:
        ctl.store.add_token(uid, token, job_id)
    ctl.store.add_task(job_id, job_id, None, req, now, spec["hold"], array_pending=pending)
    if spec["dependency"]:
        ctl.store.update_task(job_id, dep_shown=first_shown(ctl.store, spec["dependency"]))
    announce(ctl, [spec["dependency"]])
    job = ctl.store.job(job_id)
    record = ctl.store.task(job_id)
    if pending is None:
        ctl.emit(JobSubmitted(ctl.request_of(record, job)))  # type: ignore[arg-type]
        ctl.mark_fed(record, job)  # type: ignore[arg-type]
    else:
        ctl.arrays.submit(record, job)  # type: ignore[arg-type]
    return {"job_id": job_id, "cluster": cfg.cluster_name}


def _may_use_gid(uid: int, gid: int) -> bool:
    """Whether the user ``uid`` may run a job as group ``gid`` (root: any)."""
    import pwd

    if uid == 0:
        return True
    try:
        pw = pwd.getpwuid(uid)
        return gid in os.getgrouplist(pw.pw_name, pw.pw_gid)
    except (KeyError, OSError):
        return False


def _primary_gid(uid: int) -> int:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid


def job_request(task_id: int, user: str, submit_time: float, req: dict, held: bool,
                array_index: Optional[int] = None, array_job_id: Optional[int] = None
                ) -> JobRequest:
    """The scheduler's view of a task, from its stored request (``array_index``
    for a task of array ``array_job_id``, whose id is the task's own row's
    ``job_id``: callers pass it when they have it)."""
    _check_request(task_id, req)
    return JobRequest(
        job_id=task_id, user=user, partition=req["partition"], submit_time=submit_time,
        cpus=req["cpus"], mem_mb=req["mem_mb"], gpus=req["gpus"], time_limit=req["time_limit"],
        nice=req["nice"], nodelist=frozenset(req["nodelist"]), exclude=frozenset(req["exclude"]),
        constraint=req["constraint"], begin_time=req["begin_time"], held=held,
        dependency=req["dependency"], name=req["name"], exclusive=req["exclusive"],
        priority=req.get("priority", 0), array_job_id=array_job_id, array_task_id=array_index)


_REQ_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "partition": (str,), "cpus": (int,), "mem_mb": (int,), "gpus": (int,),
    "time_limit": (int, type(None)), "nice": (int,), "nodelist": (list,),
    "exclude": (list,), "constraint": (str,), "begin_time": (int, float, type(None)),
    "dependency": (str,), "exclusive": (bool, int),
}


def _check_request(task_id: int, req: dict) -> None:
    """A stored request the scheduler can compare and sum: a record from an
    older version or a hand-edited store must fail its own job, not the
    scheduler (which would stop the controller at every start)."""
    for key, types in _REQ_TYPES.items():
        if not isinstance(req.get(key), types) or isinstance(req.get(key), bool) and \
                bool not in types:
            raise errors.StoreError(f"job {task_id}: its stored request is malformed "
                                    f"({key}={req.get(key)!r})")


# -- finding jobs by id ------------------------------------------------------------
from .jobids import Pick, find_tasks, resolve  # noqa: E402,F401  (find_tasks: re-exported)


def _check_owner(ctl: "Controller", task: dict, uid: int) -> dict:
    job = ctl.store.job(task["job_id"])
    assert job is not None
    if uid not in (0, job["uid"]):
        raise AccessDenied("Access/permission denied")
    return job


def _shown_id(task: dict, job: dict) -> str:
    if task["array_index"] is not None:
        return f"{job['job_id']}_{task['array_index']}"
    return str(task["task_id"])


# -- cancel / signal ---------------------------------------------------------------
def op_cancel(ctl: "Controller", args: dict, uid: int, now: float) -> dict:
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
            found, picked = resolve(ctl.store, text)
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
        for t in ctl.store.active_tasks():
            targets.append((str(t["task_id"]), t))
    targets = [(s, t) for s, t in targets if _matches(ctl, t, args)]
    for shown, pick in picks:
        # an index of a pending array that has no task yet
        record = ctl.store.task(pick.record["task_id"])
        if record is None or record["array_pending"] is None or not _matches(ctl, record, args):
            continue
        try:
            _check_owner(ctl, record, uid)
        except AccessDenied as exc:
            errs.append(f"Kill job error on job id {shown}: {exc}")
            continue
        if record["state"] != "PENDING":
            continue
        if signal is not None:
            errs.append(f"Kill job error on job id {shown}: Job is pending execution")
            continue
        ctl.arrays.drop_index(record, pick.index, uid, now)
    for shown, task in targets:
        try:
            _check_owner(ctl, task, uid)
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
                # SLURM: srun steps only by default, -b the batch shell, -f everything
                scope = "full" if args.get("full") else "batch" if batch_only else "steps"
                ctl.send(task["node"], {"op": "signal", "key": task["run_key"],
                                        "signal": int(signal), "scope": scope})
            elif ids:
                # SLURM 22.05's words, and its exit status (the error number's low byte)
                errs.append(f"Kill job error on job id {shown}: Job can not be altered now, "
                            "try again later")
                failed, code = True, 228
            continue
        cancel_task(ctl, task, uid, now)
    failed = failed or any("Invalid job id" not in e for e in errs)
    return {"errors": errs, "failed": failed, "code": code if failed else 0}


def _matches(ctl: "Controller", task: dict, args: dict) -> bool:
    job = ctl.store.job(task["job_id"])
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


def cancel_task(ctl: "Controller", task: dict, uid: int, now: float,
                reason: str = "None") -> None:
    """Cancel a job or task (an array's record: the indices without a task)."""
    from .arrayfeed import is_array_record

    if is_array_record(task):
        if task["state"] == "PENDING":
            ctl.arrays.cancel_remainder(task, uid, now, reason)
        return
    if task["state"] in _LIVE:
        ctl.store.update_task(task["task_id"], cancelled_by=uid)
        ctl.store.log(task["task_id"], now, "cancel", f"by {uid}")
        link = ctl.links.get(task["node"])
        if link is not None and link.status == "up":
            ctl.send(task["node"], {"op": "cancel", "key": task["run_key"], "signal": 15})
            if task["node"] not in ctl._not_responding:
                return
        # the machine is unreachable or not responding: record the cancel now
        # (scancel must not wait node_timeout); a late result is ignored and a
        # still-running process is killed when the machine is back
    finish_cancel(ctl, task, uid, now, reason)


def finish_cancel(ctl: "Controller", task: dict, uid: int, now: float,
                  reason: str = "None") -> None:
    """The job is CANCELLED now (it is pending, or its machine cannot be told)."""
    ctl.store.update_task(task["task_id"], state="CANCELLED", cancelled_by=uid, end_time=now,
                          exit_code=0, exit_signal=0, reason=reason)
    ctl.store.log(task["task_id"], now, "end", f"CANCELLED by {uid}")
    if task["task_id"] in ctl._fed:
        ctl.emit(JobEnded(task["task_id"], "CANCELLED", now))
        ctl.forget_fed(task["task_id"])
    ctl.task_finished(task)


# -- hold / release / requeue ------------------------------------------------------
def _each(ctl: "Controller", args: dict, uid: int,
          split: bool = True) -> list[tuple[dict, dict, bool]]:
    """(task, job, named as part of an array) for every id; pending indices of an
    array that have no task yet are split out into tasks first (``split``)."""
    out = []
    for text in args.get("ids") or []:
        try:
            found, picks = resolve(ctl.store, text)
        except InvalidJobId:
            found, picks = [], []
        if not found and not picks:
            raise InvalidJobId(f"Invalid job id specified for job {text}")
        for pick in picks:
            try:
                _check_owner(ctl, pick.record, uid)
            except AccessDenied:
                raise AccessDenied(f"Access/permission denied for job {text}") from None
            record = ctl.store.task(pick.record["task_id"])
            if split and record is not None and record["state"] == "PENDING":
                found.append(ctl.arrays.split(record, pick.index))
        several = len(found) > 1
        for task in found:
            try:
                out.append((task, _check_owner(ctl, task, uid), several))
            except AccessDenied:
                raise AccessDenied(f"Access/permission denied for job {text}") from None
    if not out:
        raise UsageError("No job identification provided", prog="scontrol")
    return out


def _in_scheduler(ctl: "Controller", task: dict) -> list[int]:
    """The scheduler's ids for a task: its own if it has it, and for an array's
    record the tasks of its window (they have no row until they start)."""
    ids = [task["task_id"]] if task["task_id"] in ctl._fed else []
    if task["array_pending"] is not None:
        ids.extend(ctl.arrays.window_tasks(task["task_id"]))
    return ids


def _refill(ctl: "Controller", pairs: list[tuple[dict, dict, bool]]) -> None:
    """Arrays whose tasks changed may hand out more (or other) tasks now."""
    for job_id in {t["job_id"] for t, _, _ in pairs if t["array_index"] is not None
                   or t["array_pending"] is not None}:
        ctl.arrays.refill(job_id)


def op_hold(ctl: "Controller", args: dict, uid: int, now: float) -> dict:
    """scontrol hold/uhold. As SLURM 22.05: root's ``hold`` is an admin hold
    (JobHeldAdmin, which only root releases), ``uhold`` and anyone else's a
    user hold (JobHeldUser); a running job is left alone (exit 0), a finished
    one is an error (an array's tasks that already ran are skipped)."""
    reason = "JobHeldAdmin" if uid == 0 and not args.get("user") else "JobHeldUser"
    pairs = _each(ctl, args, uid)
    for task, job, several in pairs:
        if task["state"] not in _ACTIVE:
            if several:
                continue  # an array's tasks that already ran
            raise errors.JobError(f"Job has already finished for job {_shown_id(task, job)}")
        if task["state"] != "PENDING":
            continue
        ctl.store.update_task(task["task_id"], held=1,
                              req={**task["req"], "held_reason": reason})
        ctl.store.log(task["task_id"], now, "hold", f"by {uid}")
        for task_id in _in_scheduler(ctl, task):
            ctl.emit(JobHeld(task_id))
    _refill(ctl, pairs)
    return {}


def op_release(ctl: "Controller", args: dict, uid: int, now: float) -> dict:
    pairs = _each(ctl, args, uid)
    for task, job, several in pairs:
        shown = _shown_id(task, job)
        if task["state"] not in _ACTIVE:
            if several:
                continue  # an array's tasks that already ran
            raise errors.JobError(f"Job has already finished for job {shown}")
        if task["state"] != "PENDING":
            continue
        if task["req"].get("held_reason") == "JobHeldAdmin" and uid != 0:
            raise AccessDenied(f"Access/permission denied for job {shown}")
        req = {k: v for k, v in task["req"].items() if k != "held_reason"}
        ctl.store.update_task(task["task_id"], held=0, req=req)
        ctl.store.log(task["task_id"], now, "release", f"by {uid}")
        for task_id in _in_scheduler(ctl, task):
            ctl.emit(JobReleased(task_id))
    _refill(ctl, pairs)
    return {}


def op_requeue(ctl: "Controller", args: dict, uid: int, now: float) -> dict:
    """scontrol requeue / requeuehold: the job goes back to PENDING under the
    same id (its restart count up). As SLURM does, a running job's processes
    get SIGTERM, then SIGKILL after KillWait, and the job may start again only
    after that (reason BeginTime meanwhile); whatever the old run then exits
    with is not its result."""
    from .handlers import requeue_task

    hold = bool(args.get("hold"))
    pairs = _each(ctl, args, uid, split=False)
    for task, job, several in pairs:
        shown = _shown_id(task, job)
        if task["state"] == "PENDING":
            if several:
                continue  # the tasks of an array that have not run
            raise errors.JobError(f"Job is pending execution for job {shown}")
        if not job["spec"].get("requeue", True):
            raise errors.JobError(f"Requested operation is presently disabled for job {shown}")
        if task["array_pending"] is not None:
            # a cancelled array remainder: its indices are pending again
            ctl.store.update_task(task["task_id"], state="PENDING", end_time=None,
                                  cancelled_by=None, held=int(hold or task["held"]))
            ctl.store.log(task["task_id"], now, "requeue", f"scontrol requeue by {uid}")
            ctl.arrays.revive(ctl.store.task(task["task_id"]), job)  # type: ignore[arg-type]
            continue
        live = task["state"] == "RUNNING"
        requeue_task(ctl, task, now, f"scontrol requeue by {uid}", hold=hold,
                     signal=15 if live else 9)
        req = dict(ctl.store.task(task["task_id"])["req"])  # type: ignore[index]
        if hold:
            req["held_reason"] = "job requeued in held state"
        if live:
            # SLURM holds a requeued job back until its old run is surely gone
            req["begin_time"] = now + ctl.config.kill_wait + 1
            if task["task_id"] in ctl._fed:
                ctl.emit(JobUpdated(task["task_id"], begin_time=req["begin_time"]))
        ctl.store.update_task(task["task_id"], req=req)
    return {}


def op_update_node(ctl: "Controller", args: dict, uid: int, now: float) -> dict:
    from .handlers import mark_down
    from .scheduler import NodeDrain, NodeResume
    from .slurm.hostlist import expand

    if uid not in (0, os.getuid()):
        raise AccessDenied("Access/permission denied")
    names = expand(str(args.get("nodes") or ""))
    unknown = [n for n in names if n not in ctl.config.machines]
    if unknown or not names:
        raise errors.JobError("Invalid node name specified")
    state = str(args.get("state") or "").upper()
    reason = str(args.get("reason") or "")
    if state in ("DRAIN", "DOWN") and not reason:
        raise UsageError("You must specify a reason when DOWNING or DRAINING a node. "
                         "Request denied", prog="scontrol")
    for name in names:
        if state == "DRAIN":
            ctl.store.set_node(name, admin_state="drain", reason=reason, reason_time=now)
            ctl.emit(NodeDrain(name, reason))
        elif state == "DOWN":
            ctl.store.set_node(name, admin_state="down", reason=reason, reason_time=now)
            mark_down(ctl, name, reason, now)
        elif state in ("RESUME", "IDLE", "UNDRAIN"):
            was = ctl.store.node(name)["admin_state"]
            ctl.store.set_node(name, admin_state="resume", reason="", reason_time=None)
            if was == "down":
                # back when its agent answers again
                link = ctl.links[name]
                link.last_heard = None
                link.connect(now)
            elif name not in ctl._node_down and name not in ctl._not_responding:
                ctl.emit(NodeResume(name))  # (a silent one resumes when it answers)
        elif state:
            raise UsageError("Invalid node state specified", prog="scontrol")
    return {}


def op_shutdown(ctl: "Controller", args: dict, uid: int, now: float) -> dict:
    if uid not in (0, os.getuid()):
        raise AccessDenied("Access/permission denied")
    ctl.stop()
    return {}


def op_explain(ctl: "Controller", args: dict, uid: int, now: float) -> str:
    """``fleetslurm explain JOB``: the scheduler's view, in words."""
    from .slurm.arrays import IndexSet

    tasks, picks = resolve(ctl.store, str(args.get("id")))
    if not tasks and not picks:
        raise InvalidJobId(f"Invalid job id specified: {args.get('id')}")
    lines = []
    for pick in picks[:1]:
        tasks.insert(0, pick.record)
    for task in tasks:
        job = ctl.store.job(task["job_id"])
        shown = _shown_id(task, job)  # type: ignore[arg-type]
        if task["array_pending"] is not None:
            rest = IndexSet.from_text(task["array_pending"]).format()
            shown = f"{task['job_id']}_[{rest}]"
            if task["state"] == "PENDING":
                lines.append(f"job {shown} is pending ({task['reason']}): these tasks get their "
                             "own job ids as the array hands them to the scheduler; see the "
                             "array's other tasks for why they wait")
                continue
        if task["state"] == "PENDING" and task["task_id"] in ctl._fed:
            lines.append(ctl.sched.explain(task["task_id"]))
        elif task["state"] == "PENDING":
            lines.append(f"job {shown} is pending (JobArrayTaskLimit): its array's %N "
                         "throttle (or its window of tasks handed to the scheduler) holds it back")
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

"""``sbatch`` (and ``srun`` outside an allocation): a new job, or a whole
array under one id, checked against the config and the scheduler first."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

from ... import errors
from ...errors import SubmitError
from ...scheduler import JobSubmitted
from ...slurm.arrays import parse_array_set
from ...slurm.jobspec import build_spec
from ...views import login_name
from ..dependencies import announce, check, first_shown
from ..jobrequest import job_request
from ..limits import check_submit as check_limits
from ..staging import check_stage

if TYPE_CHECKING:
    from ..context import Context


def op_submit(ctx: "Context", args: dict, uid: int, now: float) -> dict:
    token = args.get("token")
    if token:
        made = ctx.store.job_of_token(uid, token)
        if made is not None:  # sent again after a lost connection: the same job
            return {"job_id": made, "cluster": ctx.config.cluster_name}

    spec = build_spec(args.get("options") or {}, script=args["script"],
                      script_args=list(args.get("script_args") or []),
                      env=args.get("env") or {}, cwd=args["cwd"],
                      submit_host=args.get("submit_host") or "", now=now)
    if args.get("stage"):
        spec["stage"] = check_stage(args["stage"], uid)
    cfg = ctx.config
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
        # one task, no per-task I/O: the supervisor runs it as step 0 (ctld.srun_direct)
        spec["srun_direct"] = bool(args.get("srun_direct"))
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
    check(ctx.store, spec["dependency"])  # an unknown job id: Job dependency problem
    unknown = [n for n in spec["nodelist"] + spec["exclude"] if n not in cfg.machines]
    if unknown:
        raise SubmitError("Batch job submission failed: Invalid node name specified")
    # QOS, account, partition access and submit limits (SLURM's messages)
    # the owner's name as the user database has it now: machines run the job as it
    user = login_name(uid)
    limits = check_limits(ctx, uid, user, spec, partition, time_limit,
                          spec.get("array_count") or 1)
    time_limit = limits.pop("time_limit")
    if not spec.get("account") and limits["account"] != user:
        # a DefaultAccount other than the user's own (sacctmgr): sacct and
        # scontrol show the account the job is charged to
        spec["account"] = limits["account"]
    if not spec.get("qos") and limits["qos"] != "normal":
        spec["qos"] = limits["qos"]  # the association's DefaultQOS
    req = {
        **limits, "name": name, "partition": partition, "cpus": spec["cpus"],
        "mem_mb": spec["req_mem_mb"], "gpus": spec["gpus"], "time_limit": time_limit,
        "nice": spec["nice"], "nodelist": spec["nodelist"], "exclude": spec["exclude"],
        "constraint": spec["constraint"], "begin_time": spec["begin_time"],
        "dependency": spec["dependency"], "exclusive": spec["exclusive"], "priority": 0,
    }
    warning = None
    if spec["mail_type"]:
        # --mail-type: the words in the request, so a task's moves know at
        # once (lifecycle.move -> mail.on_move); MailUser defaults to the owner
        req["mail"] = spec["mail_type"]
        spec["mail_user"] = spec["mail_user"] or user
        if cfg.mail_program() is None:
            warning = ("no mail program: this job's mail (--mail-type) is not sent; set "
                       "mail_prog in the config (SLURM's MailProg)")
    if spec["nice"] < 0 and uid != 0:
        raise SubmitError("Batch job submission failed: Access/permission denied "
                          "(only root may give a negative --nice)")
    probe = job_request(0, user, now, req, spec["hold"])
    why = ctx.sched.can_ever_run(probe)
    if why is not None:
        specs = [ctx.node_spec(n) for n in cfg.partition_nodes(partition)]
        if req["gpus"] and not any(s.gpu_ids for s in specs):
            raise SubmitError("Invalid generic resource (gres) specification")
        lines = []
        if req["mem_mb"] and specs and all(req["mem_mb"] > s.mem_mb for s in specs):
            lines.append("Memory specification can not be satisfied")
        lines.append("Batch job submission failed: Requested node configuration is not "
                     "available")
        raise SubmitError("\n".join(lines))
    if (args.get("options") or {}).get("test_only"):
        return _test_only(ctx, probe, now)
    # one id for the job, or for the whole array: its tasks get theirs as they start
    job_id = ctx.store.allocate_ids(1)
    ctx.store.add_job(job_id, uid, user, now, spec, args["script"], spec["array"])
    if token:
        ctx.store.add_token(uid, token, job_id)
    ctx.store.add_task(job_id, job_id, None, req, now, spec["hold"], array_pending=pending)
    if spec["dependency"]:
        ctx.store.update_task(job_id, dep_shown=first_shown(ctx.store, spec["dependency"]))
    announce(ctx, [spec["dependency"]])
    job = ctx.store.job(job_id)
    record = ctx.store.task(job_id)
    if pending is None:
        ctx.emit(JobSubmitted(ctx.request_of(record, job)))  # type: ignore[arg-type]
        ctx.mark_fed(record, job)  # type: ignore[arg-type]
    else:
        ctx.arrays.submit(record, job)  # type: ignore[arg-type]
    reply = {"job_id": job_id, "cluster": cfg.cluster_name}
    if warning:
        reply["warning"] = warning
    return reply


def _test_only(ctx: "Context", probe: object, now: float) -> dict:
    """``sbatch --test-only``: the job checked as for a submission and its
    expected start, with nothing stored but the job id it uses up (SLURM's
    test-only takes one too: the next job gets the id after it)."""
    plan = ctx.sched.will_run(probe, now)  # type: ignore[arg-type]
    if plan is None:  # can_ever_run said a node fits: only a down fleet gets here
        raise SubmitError("Batch job submission failed: Requested node configuration is not "
                          "available")
    job_id = ctx.store.allocate_ids(1)
    return {"job_id": job_id, "cluster": ctx.config.cluster_name, "test_only": True,
            "start": plan.start, "node": plan.node, "cpus": plan.cpus,
            "partition": plan.partition}


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


"""``fleetslurm explain JOB``: a pure function from the scheduler's state to text."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Optional

from fleetslurm.errors import InvalidValue
from fleetslurm.scheduler import eligibility, workstation
from fleetslurm.scheduler import deps
from fleetslurm.scheduler.deps import NEVER
from fleetslurm.slurm.deps import ALL_TASKS, DepTerm
from fleetslurm.scheduler.lifecycle import ENDED, RUNNING
from fleetslurm.scheduler.policy import need_of, parse_constraint, static_misfit

if TYPE_CHECKING:  # pragma: no cover
    from fleetslurm.scheduler.records import JobEntry, NodeEntry
    from fleetslurm.scheduler.view import SchedulerView

__all__ = ["explain", "format_time"]


def format_time(t: Optional[float]) -> str:
    """SLURM's timestamp form, ``2026-01-31T09:05:00`` (local time); ``Unknown`` for None."""
    if t is None:
        return "Unknown"
    return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%dT%H:%M:%S")


def _limit(minutes: Optional[int]) -> str:
    return "UNLIMITED" if minutes is None else f"{minutes} min"


def _request(job: "JobEntry") -> str:
    req, shape = job.req, job.shape
    assert shape is not None
    parts = [f"{shape[1]} CPUs", f"{shape[2]} MB"]
    if shape[3]:
        parts.append(f"{shape[3]} GPUs")
    if req.exclusive:
        parts.append("a whole node (exclusive)")
    if req.constraint:
        parts.append(f"features {req.constraint!r}")
    if req.nodelist:
        parts.append(f"one of nodes {','.join(sorted(req.nodelist))}")
    if req.exclude:
        parts.append(f"not nodes {','.join(sorted(req.exclude))}")
    return f"needs {', '.join(parts)} in partition {shape[0] or '(none)'} for {_limit(req.time_limit)}"


def explain(st: "SchedulerView", job_id: int) -> str:
    """Why a job is pending (with per-node detail and its planned start), or where it runs."""
    job = st._jobs.get(job_id)
    if job is None:
        return f"job {job_id} is unknown to the scheduler (never submitted, or forgotten)"
    if job.phase == RUNNING:
        limit = job.req.time_limit
        start = job.start_time or 0.0
        end = "" if limit is None else f", expected end {format_time(start + limit * 60)}"
        gpus = f", GPUs {','.join(map(str, job.gpu_ids))}" if job.gpu_ids else ""
        held = workstation.suspended_for(job, st._pass_now)
        if held and limit is not None:  # its limit's clock stood while suspended
            end = f", expected end {format_time(start + limit * 60 + held)}"
        text = (f"job {job_id} is running on node {job.node} since {format_time(job.start_time)} "
                f"with {job.cpus} CPUs, {job.mem_mb} MB{gpus}; time limit {_limit(limit)}{end}")
        if job.suspended_at is not None:
            node = st._nodes[job.node]  # type: ignore[index]
            text += (f"\nit is suspended since {format_time(job.suspended_at)}: "
                     f"{workstation.describe(node) or 'its owner was back'}; it resumes when "
                     "the owner leaves")
        return text
    if job.phase == ENDED:
        where = f" (last ran on node {job.node})" if job.node else ""
        return f"job {job_id} ended {job.final} at {format_time(job.end_time)}{where}"
    reason = st.reason(job_id)
    head = f"job {job_id} is pending ({reason}): {_request(job)}"
    lines = [head] + _detail(st, job, reason) + _barred(st, job)
    planned = st._expected.get(job_id)
    if planned is not None:
        lines.append(f"earliest start {format_time(planned[0])} on node {planned[1]} (backfill plan)")
    elif reason in ("Resources", "Priority"):
        lines.append("no planned start: the nodes it needs are held by jobs without a time limit, "
                     "or too many jobs are ahead of it to plan")
    return "\n".join(lines)


def _detail(st: "SchedulerView", job: "JobEntry", reason: str) -> list[str]:
    req, jid = job.req, job.req.job_id
    part = job.shape[0] if job.shape else ""
    if reason == "JobHeldUser":
        return [f"it is held; release it with: scontrol release {jid}"]
    if reason == "BeginTime":
        return [f"it may not start before {format_time(req.begin_time)}"]
    if reason in ("Dependency", "DependencyNeverSatisfied"):
        return _dependency(st, job)
    if reason == "PartitionConfig":
        return [f"partition {part!r} does not exist (known: {', '.join(sorted(st._parts)) or 'none'})"]
    if reason == "PartitionDown":
        return [f"partition {part} is down; it starts when an administrator brings it up"]
    if reason == "PartitionTimeLimit":
        spec = st._parts[part]
        return [f"its time limit {_limit(req.time_limit)} exceeds partition {part}'s MaxTime "
                f"{_limit(spec.max_time)}; lower it with: scontrol update JobId={jid} TimeLimit=..."]
    if reason.startswith(("QOS", "Assoc")):
        hit = eligibility.limit_hit(st, job)
        if hit is not None:
            return [f"held by a limit: {hit[1]}; it starts when running jobs free enough "
                    "(sacctmgr show qos / show assoc lists the limits)"]
    if reason == "BadConstraints":
        return ["no node could ever run it:"] + _misfits(st, job)
    if reason.startswith("ReqNodeNotAvail"):
        out = ["every node that could run it is unavailable:"]
        for name in eligibility.static_nodes(st, job.shape):  # type: ignore[arg-type]
            node = st._nodes[name]
            out.append(f"  node {name} is {node.state()} ({_unavailable(node)})")
        return out
    out = []
    if reason == "Priority":
        ahead = [j for j, r in st._reasons().items()
                 if r in ("Resources", "Priority") and st._jobs[j].key < job.key
                 and st._jobs[j].shape[0] == part][:5]  # type: ignore[index]
        if ahead:
            ids = ", ".join(map(str, ahead))
            out.append(f"higher-priority jobs in partition {part} wait first: {ids}")
            if job.computed or any(st._jobs[j].computed for j in ahead):
                # multifactor: the numbers, and where to see their factors
                theirs = ", ".join(f"{j}: {st._jobs[j].computed}" for j in ahead)
                out.append(f"  its multifactor priority is {job.computed} (sprio -j "
                           f"{job.req.job_id} shows the factors); theirs: {theirs}")
    cands, _ = eligibility.placement(st, job)
    for name in cands:
        node = st._nodes[name]
        spec, (fc, fm, fg) = node.spec, node.free_now()
        gpus = f", {fg}/{len(spec.gpu_ids)} GPUs" if spec.gpu_ids or job.shape[3] else ""  # type: ignore[index]
        out.append(f"  node {name} ({node.state()}) has {fc}/{spec.cpus} CPUs, "
                   f"{fm}/{spec.mem_mb} MB{gpus} free")
    roomy = [n for n in cands if all(
        f >= w for f, w in zip(st._nodes[n].free_now(), need_of(job.shape, st._nodes[n].spec)))]  # type: ignore[arg-type]
    if roomy:
        out.append(f"  room now on {','.join(roomy)} is kept for higher-priority jobs' planned starts: "
                   f"running it there for {_limit(job.req.time_limit)} would delay them")
    for name in eligibility.static_nodes(st, job.shape):  # type: ignore[arg-type]
        if name in cands:
            continue
        node = st._nodes[name]
        out.append(f"  node {name} is {node.state()} ({_unavailable(node)})")
    return out


def _unavailable(node: "NodeEntry") -> str:
    """Why a node takes no new job: down, drained, or its workstation policy."""
    if node.down_reason or node.drain_reason:
        return node.down_reason or node.drain_reason  # type: ignore[return-value]
    if node.busy_reason:
        return f"no new jobs by its workstation policy: {workstation.describe(node)}"
    return "available"


def _barred(st: "SchedulerView", job: "JobEntry") -> list[str]:
    """The machines the job's user is unknown on: none of their jobs goes there."""
    barred = st._user_excluded.get(job.req.user) or {}
    return [f"  node {name} is not used for {job.req.user}'s jobs: {why} (cleared when the "
            f"machine's agent reconnects or: scontrol update NodeName={name} State=RESUME)"
            for name, why in sorted(barred.items())]


def _misfits(st: "SchedulerView", job: "JobEntry") -> list[str]:
    try:
        alts = parse_constraint(job.req.constraint)
    except InvalidValue as exc:
        return [f"  {exc}"]
    default = st._default_partition()
    barred = st._user_excluded.get(job.req.user) or {}
    out = []
    for name, node in st._nodes.items():
        if name in barred and name not in job.req.exclude:
            continue  # listed by _barred
        why = static_misfit(job.shape, node.spec, default, alts)  # type: ignore[arg-type]
        out.append(f"  node {name}: {why or 'fits'}")
    return out or ["  there are no nodes"]


def _dependency(st: "SchedulerView", job: "JobEntry") -> list[str]:
    jid = job.req.job_id
    if job.dep_error:
        return [f"its dependency is invalid: {job.dep_error}",
                f"it can never start; cancel it with: scancel {jid}, or change it with: "
                f"scontrol update JobId={jid} Dependency=..."]
    if job.dep is None:  # pragma: no cover - reason would not be Dependency
        return []
    text = job.req.dependency.strip()
    out = [f"dependency {text} ({'any of' if job.dep.any_of else 'all of'}):"]
    now = st._pass_now
    statuses = [deps.term_status(st, job, t, now) for t in job.dep.terms]
    for term, status in zip(job.dep.terms, statuses):
        out.append(f"  {_term_text(term)}: {_target_state(st, job, term)} -> {status}")
    if NEVER in statuses and st.reason(jid) == "DependencyNeverSatisfied":
        out.append(f"it can never start; cancel it with: scancel {jid}, or change it with: "
                   f"scontrol update JobId={jid} Dependency=...")
    return out


def _term_text(term: DepTerm) -> str:
    if term.kind == "singleton":
        return "singleton"
    task = "" if term.array_task is None else "_*" if term.array_task == ALL_TASKS \
        else f"_{term.array_task}"
    return f"{term.kind}:{term.job_id}{task}{f'+{term.minutes}' if term.minutes else ''}"


def _target_state(st: "SchedulerView", job: "JobEntry", term: DepTerm) -> str:
    """What the term waits on, in words."""
    if term.kind == "singleton":
        other = deps.singleton_blocker(st, job)
        if other is None:
            return "no other job of that name"
        return f"job {other} of user {job.req.user} named {job.req.name!r} is {st.job_state(other)}"
    assert term.job_id is not None
    array = st._arrays.get(term.job_id)
    if array is not None and term.array_task in (None, ALL_TASKS):
        return (f"array {term.job_id}: {array.unsubmitted + array.pending} tasks pending, "
                f"{array.running} running, {array.ended_ok + array.base_ok} completed, "
                f"{array.ended_bad + array.base_bad} ended otherwise")
    name = f"job {term.job_id}" if term.array_task in (None, ALL_TASKS) \
        else f"task {term.job_id}_{term.array_task}"
    fact = deps.facts(st, term.job_id, term.array_task)
    if fact is None:
        return f"{name} is unknown (lifted)"
    state = st.job_state(term.job_id) if term.array_task is None else None
    if state is None:
        state = ("PENDING" if fact.pending else "COMPLETED" if fact.ok
                 else "ended (not COMPLETED)" if fact.finished else "RUNNING")
    return f"{name} is {state}"

"""Whether and why a pending job may start: hold, begin time, dependencies,
partition, and which nodes could run it at all.

Functions over :class:`~fleetslurm.scheduler.state.SchedulerState`; the caches
they fill (``_static``, ``_avail``, ``_singleton_cache``) live on the state and
are cleared when nodes or partitions change and at the start of every pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from fleetslurm.errors import InvalidValue
from fleetslurm.scheduler import deps, limits
from fleetslurm.scheduler.deps import NEVER, WAITING, parse_dependency, singleton_blocker
from fleetslurm.scheduler.events import JobRequest
from fleetslurm.scheduler.policy import Shape, compress_hostlist, parse_constraint, shape_of, static_misfit

if TYPE_CHECKING:  # pragma: no cover
    from fleetslurm.scheduler.records import JobEntry
    from fleetslurm.scheduler.view import SchedulerView

#: internal reason marker for "waiting for resources"; shown as Resources or Priority
BLOCKED = "<blocked>"

#: distinct job shapes whose candidate nodes are remembered before the cache starts over
STATIC_CACHE_SIZE = 50_000

__all__ = ["BLOCKED", "STATIC_CACHE_SIZE", "singleton_blocker", "wait_reason", "limit_hit", "static_nodes",
           "placement", "all_reasons", "can_ever_run"]


def wait_reason(st: "SchedulerView", job: "JobEntry", now: float) -> Optional[str]:
    """The reason a pending job may not start whatever the load, or None."""
    req = job.req
    if req.held:
        return "JobHeldUser"
    if req.begin_time is not None and req.begin_time > now:
        return "BeginTime"
    if job.dep_error is not None:
        return "DependencyNeverSatisfied"
    if job.dep is not None:
        status = deps.evaluate(st, job, now)
        if status == WAITING:
            return "Dependency"
        if status == NEVER:
            return "DependencyNeverSatisfied"
    part = st._parts.get(job.shape[0])  # type: ignore[index]
    if part is None:
        return "PartitionConfig"
    if not part.up:
        return "PartitionDown"
    if req.time_limit is not None and part.max_time is not None and req.time_limit > part.max_time:
        return "PartitionTimeLimit"
    if st._qos or st._assoc:
        hit = limit_hit(st, job)
        if hit is not None:
            return hit[0]
    return None


def limit_hit(st: "SchedulerView", job: "JobEntry",
              vec: Optional[tuple[int, int, int]] = None) -> Optional[tuple[str, str]]:
    """The QOS or association limit that starting the job (holding ``vec``, by
    default what it asks for) would break now: (reason, the limit in words)."""
    if vec is None:
        vec = (job.shape[1], job.shape[2], job.shape[3])  # type: ignore[index]
    return limits.held_by(st._qos.get(job.req.qos), st._assoc, st._usage, job, vec)


def static_nodes(st: "SchedulerView", shape: Shape) -> tuple[str, ...]:
    """Nodes that could ever run a job of this shape (load and up/down ignored)."""
    names = st._static.get(shape)
    if names is None:
        # two levels: where the job may go at all (few distinct answers), then size
        where = (shape[0], shape[4], shape[5], shape[6])
        base = st._static_base.get(where)
        if base is None:
            try:
                alts = parse_constraint(shape[6])
            except InvalidValue:
                base = ()
            else:
                default = st._default_partition()
                anywhere = (shape[0], 0, 0, 0, shape[4], shape[5], shape[6], False)
                base = tuple(node.spec for node in st._nodes.values()
                             if static_misfit(anywhere, node.spec, default, alts) is None)
            st._static_base[where] = base
        _, cpus, mem, gpus = shape[:4]
        names = tuple(s.name for s in base if cpus <= s.cpus and mem <= s.mem_mb and gpus <= len(s.gpu_ids))
        if len(st._static) >= STATIC_CACHE_SIZE:
            st._static.clear()
        st._static[shape] = names
    return names


def placement(st: "SchedulerView", job: "JobEntry") -> tuple[list[str], Optional[str]]:
    """Available nodes that could run the job, or a reason why there are none."""
    shape = job.shape
    hit = st._avail.get(shape)  # type: ignore[arg-type]
    if hit is None:
        names = static_nodes(st, shape)  # type: ignore[arg-type]
        avail = [n for n in names if st._nodes[n].available]
        if not names:
            hit = ([], "BadConstraints")
        elif not avail:
            hit = ([], "ReqNodeNotAvail, UnavailableNodes:" + compress_hostlist(names))
        else:
            hit = (avail, None)
        st._avail[shape] = hit  # type: ignore[index]
    return hit


def all_reasons(st: "SchedulerView") -> dict[int, str]:
    """The reason of every pending job, in priority order, as of the last pass.

    Jobs the pass examined keep its verdict; the others (skipped because they
    could not start anyway) are classified now, which gives the same answer
    because nothing changes between passes. Of the jobs waiting for resources,
    the first of each partition shows ``Resources`` and the rest ``Priority``.
    """
    out: dict[int, str] = {}
    blocked_parts: set[str] = set()
    now = st._pass_now
    for key in st._order:
        jid = key[-1]
        job = st._jobs[jid]
        reason = st._pass_reasons.get(jid)
        if reason is None:
            reason = wait_reason(st, job, now) or placement(st, job)[1] or BLOCKED
        if reason == BLOCKED:
            part = job.shape[0]  # type: ignore[index]
            reason = "Priority" if part in blocked_parts else "Resources"
            blocked_parts.add(part)
        out[jid] = reason
    return out


def can_ever_run(st: "SchedulerView", job: JobRequest) -> Optional[str]:
    """None if some node of the job's partition could run it (load, down and drain
    ignored); else SLURM's refusal text (``Requested node configuration is not available``...)."""
    part = st._partition_of(job)
    if not part:
        return "No partition specified or system default partition"
    if part not in st._parts:
        return "Invalid partition name specified"
    try:
        dep = parse_dependency(job.dependency)
    except InvalidValue:
        return "Job dependency problem"
    if dep is not None and any(t.job_id == job.job_id for t in dep.terms):
        return "Job dependency problem"
    try:
        parse_constraint(job.constraint)
    except InvalidValue:
        return "Invalid feature specification"
    if job.nodelist - set(st._nodes):
        return "Invalid node name specified"
    if job.cpus < 1 or job.mem_mb < 0 or job.gpus < 0:
        return "Requested node configuration is not available"
    if not static_nodes(st, shape_of(job, part)):
        return "Requested node configuration is not available"
    return None

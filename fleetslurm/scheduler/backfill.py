"""One scheduling pass: priority order plus backfill that uses time limits.

Pending jobs are walked in priority order. Each node gets a
:class:`~fleetslurm.scheduler.profile.Profile` of its free resources over
time (running jobs end at start + time limit; UNLIMITED never ends). A job
that is eligible starts now on the best node where it fits *for its whole
time limit* in that profile; because every start and every reservation is
taken out of the profile, a later job can only start now if it ends before
a higher-priority job's reservation begins, or if the node keeps room for
that reservation anyway. A job blocked only by resources reserves its
earliest start (on the node where that is soonest); only the first
``max_reservations`` blocked jobs are planned, as SLURM's ``bf_max_job_test``
bounds its backfill.

Cost: after the planned jobs, a job is skipped without evaluation if it is
larger than the largest free amounts on any node, or at least as large and
as long as a job with the same placement constraints that already failed to
fit in this pass; its reason is worked out only if someone asks
(:meth:`SchedulerState.pending_reasons`). With no free CPU anywhere, the pass
stops after the planned jobs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from fleetslurm.scheduler import eligibility, workstation
from fleetslurm.scheduler.eligibility import BLOCKED
from fleetslurm.scheduler.events import StartJob
from fleetslurm.scheduler.policy import Shape, need_of, placement_key
from fleetslurm.scheduler.profile import Profile

if TYPE_CHECKING:  # pragma: no cover
    from fleetslurm.scheduler.records import JobEntry, NodeEntry
    from fleetslurm.scheduler.view import SchedulerView

__all__ = ["run_pass", "OVERDUE_GRACE_S", "node_profile"]

#: a running job past its time limit is expected to end this many seconds from now
OVERDUE_GRACE_S = 1.0

#: (max free cpus, max free mem, max free gpus, some node idle) over available nodes
_MaxFree = tuple[int, int, int, bool]


def node_profile(st: "SchedulerView", node: "NodeEntry", now: float) -> Profile:
    """The node's free resources from ``now`` on, given its running jobs' time limits."""
    spec_ids = set(node.spec.gpu_ids)
    releases = []
    exclusive_until = -math.inf
    for jid in node.jobs:
        job = st._jobs[jid]
        # a suspended job's limit does not run while it is suspended
        end = job.start_time + job.dur + workstation.suspended_for(job, now)  # type: ignore[operator]
        if end <= now:
            end = now + OVERDUE_GRACE_S
        gpus = len(spec_ids.intersection(job.gpu_ids)) if job.gpu_ids else 0
        releases.append((end, (job.cpus, job.mem_mb, gpus)))
        if job.req.exclusive:
            exclusive_until = max(exclusive_until, end)
    free = node.free_now()
    prof = Profile.build(now, free, releases)
    if exclusive_until > now:
        # an exclusive job owns the whole node, even resources added after it started
        prof.take(now, exclusive_until - now, (max(0, free[0]), max(0, free[1]), max(0, free[2])))
    return prof


def _max_free(st: "SchedulerView", profiles: dict[str, Profile]) -> _MaxFree:
    c = m = g = 0
    idle = False
    for name, prof in profiles.items():
        f = prof.free[0]
        c, m, g = max(c, f[0]), max(m, f[1]), max(g, f[2])
        node = st._nodes[name]
        idle = idle or (not node.jobs and not node.shrunk)
    return (c, m, g, idle)


def _may_fit_now(shape: Shape, mf: _MaxFree) -> bool:
    if shape[7]:
        return mf[3]
    return shape[1] <= mf[0] and shape[2] <= mf[1] and shape[3] <= mf[2]


class _Misfits:
    """Requests that did not fit now in this pass, per placement key (partition, nodelist,
    exclude, constraint, exclusive), kept as a Pareto frontier of (cpus, mem, gpus, duration).

    Profiles only lose free resources during a pass, and a larger request has
    fewer candidate nodes, so a request at least as large and as long as one
    that did not fit does not fit either: it is skipped without evaluation.
    """

    __slots__ = ("_by_where", "_exact")

    def __init__(self) -> None:
        self._by_where: dict[tuple, list[tuple[int, int, int, float]]] = {}
        self._exact: set[tuple] = set()  # fit keys known not to fit (fast path)

    def covers(self, job: "JobEntry") -> bool:
        if job.fit_key in self._exact:
            return True
        frontier = self._by_where.get(job.where)
        if frontier:
            _, c, m, g = job.fit_key[:4]
            d = job.dur
            for fc, fm, fg, fd in frontier:
                if fc <= c and fm <= m and fg <= g and fd <= d:
                    self._exact.add(job.fit_key)
                    return True
        return False

    def add(self, job: "JobEntry") -> None:
        _, c, m, g = job.fit_key[:4]
        d = job.dur
        frontier = [f for f in self._by_where.get(job.where, ())
                    if not (c <= f[0] and m <= f[1] and g <= f[2] and d <= f[3])]
        frontier.append((c, m, g, d))
        self._by_where[job.where] = frontier
        self._exact.add(job.fit_key)


def run_pass(st: "SchedulerView", now: float, full: bool = True) -> list[StartJob]:
    """Start what can start now, plan the first blocked jobs, record reasons.

    ``full=False`` (a pass for a few events between full ones): once no
    available node has a free CPU, nothing further can start in this pass,
    so it stops there instead of planning the blocked jobs after it (their
    planned starts stay the last full pass's, their reasons are worked out
    on demand: eligibility.all_reasons). The plans it skips could only keep
    a later job from starting now, and none can."""
    st._begin_pass(now)
    nodes, jobs = st._nodes, st._jobs
    profiles = {name: node_profile(st, node, now) for name, node in nodes.items() if node.available}
    mf = _max_free(st, profiles)
    cap = st.max_reservations
    reasons: dict[int, str] = {}
    expected: dict[int, tuple[float, str]] = {}
    failed = _Misfits()
    actions: list[StartJob] = []
    started: list[int] = []
    blocked = 0
    partial = False
    for key in st._order:
        jid = key[-1]
        job = jobs[jid]
        if not full and mf[0] < 1:
            partial = True
            break
        if blocked >= cap:
            if mf[0] < 1:
                break  # no free CPU on any available node: nothing more can start
            if not _may_fit_now(job.shape, mf) or failed.covers(job):  # type: ignore[arg-type]
                continue
        reason = eligibility.wait_reason(st, job, now)
        cands: list[str] = []
        if reason is None:
            cands, reason = eligibility.placement(st, job)
        if reason is not None:
            reasons[jid] = reason
            continue
        shape: Shape = job.shape  # type: ignore[assignment]
        dur = job.dur
        needs_gpus = shape[3] > 0
        best = None
        part = st._parts.get(shape[0])
        spread = part is not None and part.placement == "spread"
        if _may_fit_now(shape, mf) and not failed.covers(job):
            for name in cands:
                prof, spec = profiles[name], nodes[name].spec
                need = need_of(shape, spec)
                if prof.fits_now(need, dur):
                    pk = placement_key(spec, needs_gpus, prof.free[0][0] - need[0])
                    if spread:  # least loaded first, then as pack would
                        pk = (spec.weight, pk[1], workstation.spread_load(nodes[name])) + pk[2:]
                    if best is None or pk < best[0]:
                        best = (pk, name, need)
        if best is not None and shape[7] and (st._qos or st._assoc):
            # an exclusive job holds the whole node: the limits count that
            hit = eligibility.limit_hit(st, job, best[2])
            if hit is not None:
                reasons[jid] = hit[0]
                continue
        if best is not None:
            _, name, need = best
            actions.append(st._start(job, name, need, now))
            profiles[name].take(now, dur, need)
            started.append(jid)
            mf = _max_free(st, profiles)
            continue
        failed.add(job)
        reasons[jid] = BLOCKED
        if blocked < cap:
            plan = None
            for name in cands:
                prof, spec = profiles[name], nodes[name].spec
                need = need_of(shape, spec)
                at = prof.earliest(need, dur)
                if at is not None:
                    pk = (at, placement_key(spec, needs_gpus, 0))
                    if plan is None or pk < plan[0]:
                        plan = (pk, name, need)
            if plan is not None:
                (at, _), name, need = plan
                profiles[name].take(at, dur, need)
                expected[jid] = (at, name)
        blocked += 1
    st._end_pass(reasons, expected, started, partial)
    return actions

"""The scheduler: cluster state that events change and a pass turns into actions.

``SchedulerState.handle(events, now)`` applies events in order, then runs one
scheduling pass (:mod:`fleetslurm.scheduler.backfill`) and returns the
actions. It never reads the clock, the disk or the network: ``now`` and every
fact come in as arguments, so tests drive it directly.
"""

from __future__ import annotations

import dataclasses
import math
from bisect import bisect_left, insort
from typing import Callable, Iterable, Optional

from fleetslurm.errors import InvalidValue
from fleetslurm.scheduler import (arrays, backfill, deps, eligibility, explain as _explain, invariants,
                                  limits, willrun)
from fleetslurm.scheduler import workstation
from fleetslurm.scheduler.deps import parse_dependency
from fleetslurm.scheduler.events import (
    Action, ArrayTasks, Event, JobEnded, JobHeld, JobReleased, JobRequest, JobRequeued, JobRestored,
    JobSubmitted, JobUpdated, LimitsSet, NodeDown, NodeDrain, NodeMeasured, NodeResume, NodeUp,
    PartitionSet,
    PrioritiesSet, NodeSpec, PartitionSpec, StartJob, AssocLimits, QosLimits, UserNodeExcluded,
    UserNodesCleared,
)
from fleetslurm.scheduler.lifecycle import ENDED, PENDING, RUNNING, InvalidTransition, next_phase
from fleetslurm.scheduler.policy import Shape, Vec, duration_s, priority_key, shape_of
from fleetslurm.scheduler.records import JobEntry, NodeEntry
from fleetslurm.scheduler.willrun import WillRun
from fleetslurm.slurm.deps import Facts

__all__ = ["SchedulerState"]


class SchedulerState:
    """Nodes, partitions and jobs as the scheduler sees them.

    ``max_reservations`` caps how many resource-blocked jobs get a backfill
    reservation per pass (the highest-priority ones), which keeps a pass
    O(pending + max_reservations * nodes).
    """

    def __init__(self, max_reservations: int = 100) -> None:
        self.max_reservations = max_reservations
        self._jobs: dict[int, JobEntry] = {}
        self._nodes: dict[str, NodeEntry] = {}
        self._parts: dict[str, PartitionSpec] = {}
        self._order: list[tuple] = []           # priority keys of pending jobs, sorted
        self._groups: dict[tuple[str, str], set[int]] = {}  # (user, name) -> pending/running ids
        self._static: dict[Shape, tuple[str, ...]] = {}     # shape -> nodes that could ever run it
        self._static_base: dict[tuple, tuple[NodeSpec, ...]] = {}  # placement part of a shape -> specs
        self._avail: dict[Shape, tuple[list[str], Optional[str]]] = {}  # per pass
        self._singleton_cache: dict[tuple[str, str], tuple[Optional[int], Optional[int]]] = {}
        self._pass_now = -math.inf
        self._pass_reasons: dict[int, str] = {}
        self._expected: dict[int, tuple[float, str]] = {}
        self._reason_cache: Optional[dict[int, str]] = None
        self._arrays: dict[int, arrays.ArrayEntry] = {}   # array job id -> counts over its tasks
        self._ended_tasks: dict[int, Facts] = {}           # ended array tasks, entries dropped
        self._qos: dict[str, QosLimits] = {}                # QOS name -> its limits (LimitsSet)
        # (account, user or "") -> its limits (LimitsSet)
        self._assoc: dict[tuple[str, str], AssocLimits] = {}
        self._usage = limits.Usage()                        # what running jobs hold, per pass
        # user -> {node: why}: machines that user's jobs are not placed on (unknown there)
        self._user_excluded: dict[str, dict[str, str]] = {}

    # ------------------------------------------------------------------ entry point

    def handle(self, events: Iterable[Event], now: float, full: bool = True) -> list[Action]:
        """Apply ``events`` in order, then run one scheduling pass; return its actions.

        A returned :class:`StartJob` is already counted as running. An invalid
        event raises :class:`InvalidTransition` and changes nothing itself;
        the events before it stay applied. ``full=False`` (a pass for a few
        events, another full one due soon): when no available node has a
        free CPU, nothing can start, and the pass's walk over the pending
        jobs (their reasons and planned starts, up to max_reservations of
        them) is left to the next full pass; the reasons of jobs it has not
        seen are worked out on demand meanwhile (eligibility.all_reasons).
        So a full fleet's submissions cost no walk each.
        """
        try:
            for ev in events:
                handler = self._HANDLERS.get(type(ev))
                if handler is None:
                    raise TypeError(f"not a scheduler event: {ev!r}")
                handler(self, ev, now)
        except BaseException:
            # no pass will run: forget what the last one concluded
            self._pass_reasons, self._expected, self._reason_cache = {}, {}, None
            self._avail.clear()
            self._singleton_cache.clear()
            raise
        policy: list[Action] = list(workstation.apply(self, now))
        if not full and not policy and not self._room_now():
            self._reason_cache = None  # new jobs: their reasons on demand
            return policy
        return policy + backfill.run_pass(self, now, full)  # type: ignore[operator]

    def _room_now(self) -> bool:
        """Whether some available node has a free CPU (every job needs one;
        the pass itself stops at the same test: backfill.run_pass)."""
        return any(n.available and n.free_now()[0] >= 1 for n in self._nodes.values())

    # ------------------------------------------------------------------ node events

    def _node(self, name: str, what: str) -> NodeEntry:
        node = self._nodes.get(name)
        if node is None:
            known = ", ".join(sorted(self._nodes)) or "none"
            raise InvalidTransition(f"{what} for unknown node {name!r} (known nodes: {known})",
                                    subject=f"node {name}")
        return node

    def _on_node_up(self, ev: NodeUp, now: float) -> None:
        spec = ev.node
        node = self._nodes.get(spec.name)
        if node is None:
            node = self._nodes[spec.name] = NodeEntry(spec)
        elif node.spec != spec:
            node.spec = spec
        node.down_reason = None
        node.shrunk = node.over_capacity()
        node.history.add(now, f"NodeUp cpus={spec.cpus} mem={spec.mem_mb} gpus={list(spec.gpu_ids)}"
                              f" -> {node.state()}{' (shrunk below its jobs)' if node.shrunk else ''}")
        self._static_cleared()

    def _on_node_down(self, ev: NodeDown, now: float) -> None:
        node = self._node(ev.name, "NodeDown")
        node.down_reason = ev.reason or "Not responding"
        node.history.add(now, f"NodeDown ({node.down_reason}) -> down")

    def _on_node_drain(self, ev: NodeDrain, now: float) -> None:
        node = self._node(ev.name, "NodeDrain")
        node.drain_reason = ev.reason or "drained"
        node.history.add(now, f"NodeDrain ({node.drain_reason}) -> {node.state()}")

    def _on_node_resume(self, ev: NodeResume, now: float) -> None:
        node = self._node(ev.name, "NodeResume")
        node.down_reason = node.drain_reason = None
        node.history.add(now, f"NodeResume -> {node.state()}")

    def _on_node_measured(self, ev: NodeMeasured, now: float) -> None:
        # no history line: one arrives with every heartbeat
        node = self._node(ev.name, "NodeMeasured")
        if ev.foreign_load is None and node.measured is not None:
            # a new agent's first reading has no interval yet: the last stands
            ev = dataclasses.replace(ev, foreign_load=node.measured.foreign_load)
        node.measured = ev

    def _on_user_node_excluded(self, ev: UserNodeExcluded, now: float) -> None:
        node = self._node(ev.node, "UserNodeExcluded")
        mine = self._user_excluded.setdefault(ev.user, {})
        if ev.node in mine:
            return
        mine[ev.node] = ev.reason or f"user {ev.user} is unknown on machine {ev.node}"
        node.history.add(now, f"UserNodeExcluded {ev.user}")
        self._user_changed({ev.user})

    def _on_user_nodes_cleared(self, ev: UserNodesCleared, now: float) -> None:
        users = {u for u, nodes in self._user_excluded.items() if nodes.pop(ev.node, None)}
        for u in users:
            if not self._user_excluded[u]:
                del self._user_excluded[u]
        if users:
            self._node(ev.node, "UserNodesCleared").history.add(
                now, f"UserNodesCleared {','.join(sorted(users))}")
            self._user_changed(users)

    def _user_changed(self, users: set[str]) -> None:
        """Where these users' jobs may go changed: their shapes are recomputed."""
        self._static_cleared()
        for job in self._jobs.values():
            if job.phase != ENDED and job.req.user in users:
                self._prepare(job)  # the sort key does not depend on it: no reorder

    def _on_partition_set(self, ev: PartitionSet, now: float) -> None:
        self._parts[ev.partition.name] = ev.partition
        self._static_cleared()
        # priorities, the default partition and so every key may have changed
        for job in self._jobs.values():
            if job.phase != ENDED:
                self._prepare(job)
        self._order = sorted(self._jobs[k[-1]].key for k in self._order)

    def _on_priorities_set(self, ev: PrioritiesSet, now: float) -> None:
        # a job that ended (or is unknown) since the priorities were computed is skipped:
        # the controller computes them from a snapshot and may be a step behind
        changed = [(self._jobs[j], v) for j, v in ev.priorities.items()
                   if j in self._jobs and self._jobs[j].phase != ENDED and self._jobs[j].computed != v]
        # many at once (a periodic recomputation): one sort instead of a list edit each
        bulk = len(changed) > 64
        for job, value in changed:
            if job.phase == PENDING and not bulk:
                self._dequeue(job)
            job.computed = value
            self._prepare(job)
            if job.phase == PENDING and not bulk:
                self._enqueue(job)
        if bulk:
            self._order = sorted(self._jobs[k[-1]].key for k in self._order)

    def _on_limits_set(self, ev: LimitsSet, now: float) -> None:
        self._qos = {q.name: q for q in ev.qos}
        self._assoc = {(a.account, a.user): a for a in ev.accounts}

    # ------------------------------------------------------------------ job events

    def _lookup(self, job_id: int, what: str) -> JobEntry:
        job = self._jobs.get(job_id)
        if job is None:
            next_phase(None, what, job_id)  # raises unless allowed for unknown jobs
            raise AssertionError("unreachable")  # pragma: no cover
        return job

    def _transition(self, job: JobEntry, what: str, now: float, detail: str = "") -> str:
        after = next_phase(job.phase, what, job.req.job_id, job.history.lines())
        job.history.add(now, f"{what}{detail} {job.phase} -> {after}")
        return after

    def _on_job_submitted(self, ev: JobSubmitted, now: float) -> None:
        req = ev.job
        old = self._jobs.get(req.job_id)
        next_phase(old.phase if old else None, "JobSubmitted", req.job_id,
                   old.history.lines() if old else ())
        job = JobEntry(req=req, phase=PENDING)
        job.history.add(now, "JobSubmitted -> PENDING")
        self._prepare(job)
        self._jobs[req.job_id] = job
        self._enqueue(job)
        self._group(job).add(req.job_id)
        arrays.on_phase(self, job, (old.phase, old.final) if old else None)

    def _on_job_restored(self, ev: JobRestored, now: float) -> None:
        req = ev.job
        old = self._jobs.get(req.job_id)
        next_phase(old.phase if old else None, "JobRestored", req.job_id,
                   old.history.lines() if old else ())
        node = self._node(ev.node, f"JobRestored of job {req.job_id}")
        job = JobEntry(req=req, phase=RUNNING)
        self._prepare(job)
        spec = node.spec
        cpus, mem = (spec.cpus, spec.mem_mb) if req.exclusive else (job.shape[1], job.shape[2])
        free_c, free_m, _ = node.free_now()
        ids = set(ev.gpu_ids)
        problem = ""
        if len(ids) != len(ev.gpu_ids):
            problem = f"GPU ids {list(ev.gpu_ids)} repeat"
        elif not ids <= set(spec.gpu_ids):
            problem = f"GPU ids {sorted(ids - set(spec.gpu_ids))} do not exist there"
        elif ids & node.used_gpus:
            problem = f"GPU ids {sorted(ids & node.used_gpus)} are in use by jobs {sorted(node.jobs)}"
        elif cpus > free_c or mem > free_m:
            problem = (f"it needs {cpus} CPUs, {mem} MB but only {free_c} CPUs, {free_m} MB are free"
                       f" (jobs {sorted(node.jobs)})")
        if problem:
            raise InvalidTransition(
                f"JobRestored of job {req.job_id} would over-allocate node {ev.node}: {problem}",
                subject=f"node {ev.node}", history=node.history.lines())
        job.history.add(now, f"JobRestored on {ev.node} started={ev.start_time:.3f} -> RUNNING")
        job.suspended_at, job.suspended_s = ev.suspended_at, ev.suspended_s
        self._jobs[req.job_id] = job
        self._allocate(job, node, cpus, mem, tuple(ev.gpu_ids), ev.start_time)
        self._group(job).add(req.job_id)
        arrays.on_phase(self, job, (old.phase, old.final) if old else None)

    def _on_job_ended(self, ev: JobEnded, now: float) -> None:
        job = self._lookup(ev.job_id, "JobEnded")
        if ev.state in ("", PENDING, RUNNING):
            raise InvalidTransition(f"JobEnded of job {ev.job_id} with non-final state {ev.state!r}",
                                    subject=f"job {ev.job_id}", history=job.history.lines())
        before = job.phase
        job.phase = self._transition(job, "JobEnded", now, f" {ev.state}")
        if before == RUNNING:
            self._release(job)
            job.suspended_at, job.evicting = None, False
        else:
            self._dequeue(job)
        job.final, job.end_time = ev.state, ev.end_time
        self._group(job).discard(ev.job_id)
        arrays.on_phase(self, job, (before, ""))
        arrays.forget_ended(self, job)

    def _on_job_requeued(self, ev: JobRequeued, now: float) -> None:
        job = self._lookup(ev.job_id, "JobRequeued")
        job.phase = self._transition(job, "JobRequeued", now)
        self._release(job)
        job.suspended_at, job.suspended_s, job.evicting = None, 0.0, False
        arrays.on_phase(self, job, (RUNNING, ""))
        if ev.submit_time is not None:
            job.req = dataclasses.replace(job.req, submit_time=ev.submit_time)
            self._prepare(job)
        self._enqueue(job)

    def _set_held(self, job_id: int, held: bool, what: str, now: float) -> None:
        job = self._lookup(job_id, what)
        job.phase = self._transition(job, what, now)
        job.req = dataclasses.replace(job.req, held=held)

    def _on_job_held(self, ev: JobHeld, now: float) -> None:
        self._set_held(ev.job_id, True, "JobHeld", now)

    def _on_job_released(self, ev: JobReleased, now: float) -> None:
        self._set_held(ev.job_id, False, "JobReleased", now)

    def _on_job_updated(self, ev: JobUpdated, now: float) -> None:
        job = self._lookup(ev.job_id, "JobUpdated")
        changes = ev.changes()
        job.phase = self._transition(job, "JobUpdated", now, f" {sorted(changes)}")
        if job.phase == PENDING:
            self._dequeue(job)
        self._group(job).discard(ev.job_id)
        job.req = dataclasses.replace(job.req, **changes)
        self._prepare(job)
        self._group(job).add(ev.job_id)
        if job.phase == PENDING:
            self._enqueue(job)

    _HANDLERS: dict[type, Callable[["SchedulerState", object, float], None]] = {
        NodeUp: _on_node_up, NodeDown: _on_node_down, NodeDrain: _on_node_drain,
        NodeResume: _on_node_resume, NodeMeasured: _on_node_measured, PartitionSet: _on_partition_set,
        PrioritiesSet: _on_priorities_set,
        UserNodeExcluded: _on_user_node_excluded, UserNodesCleared: _on_user_nodes_cleared,
        JobSubmitted: _on_job_submitted, JobRestored: _on_job_restored, JobEnded: _on_job_ended,
        JobRequeued: _on_job_requeued, JobHeld: _on_job_held, JobReleased: _on_job_released,
        JobUpdated: _on_job_updated, ArrayTasks: arrays.on_array_tasks,
        LimitsSet: _on_limits_set,
    }  # type: ignore[dict-item]

    # ------------------------------------------------------------------ bookkeeping

    def _static_cleared(self) -> None:
        self._static.clear()
        self._static_base.clear()

    def _default_partition(self) -> Optional[str]:
        defaults = [p.name for p in self._parts.values() if p.default]
        return defaults[-1] if defaults else None

    def _partition_of(self, req: JobRequest) -> str:
        return req.partition or self._default_partition() or ""

    def _prepare(self, job: JobEntry) -> None:
        """(Re)compute what is derived from the request: dependency, shape, sort key."""
        req = job.req
        if type(req.nodelist) is not frozenset or type(req.exclude) is not frozenset:
            req = job.req = dataclasses.replace(req, nodelist=frozenset(req.nodelist),
                                                exclude=frozenset(req.exclude))
        try:
            job.dep, job.dep_error = parse_dependency(req.dependency), None
        except InvalidValue as exc:
            job.dep, job.dep_error = None, str(exc)
        part = self._partition_of(req)
        exclude = req.exclude
        barred = self._user_excluded.get(req.user)
        if barred:
            # machines where the user is unknown: as if the job said --exclude
            exclude = exclude | frozenset(barred)
        job.shape = shape_of(req, part)
        if barred:
            job.shape = job.shape[:5] + (exclude,) + job.shape[6:]  # type: ignore[assignment]
        job.where = (part, req.nodelist, exclude, req.constraint, req.exclusive)
        spec = self._parts.get(part)
        job.dur = duration_s(req, spec)
        job.fit_key = (job.where, job.shape[1], job.shape[2], job.shape[3], job.dur)
        job.key = priority_key(req, spec.priority if spec else 0, job.computed)

    def _group(self, job: JobEntry) -> set[int]:
        return self._groups.setdefault((job.req.user, job.req.name), set())

    def _enqueue(self, job: JobEntry) -> None:
        insort(self._order, job.key)

    def _dequeue(self, job: JobEntry) -> None:
        i = bisect_left(self._order, job.key)
        if i < len(self._order) and self._order[i] == job.key:
            del self._order[i]
        else:  # pragma: no cover - validate() reports the broken order
            self._order.remove(job.key)

    def _allocate(self, job: JobEntry, node: NodeEntry, cpus: int, mem: int,
                  gpu_ids: tuple[int, ...], start: float) -> None:
        node.used_cpus += cpus
        node.used_mem += mem
        node.used_gpus.update(gpu_ids)
        node.jobs.add(job.req.job_id)
        job.node, job.cpus, job.mem_mb, job.gpu_ids = node.spec.name, cpus, mem, gpu_ids
        job.start_time = start
        if job.first_start is None:
            job.first_start = start

    def _release(self, job: JobEntry) -> None:
        node = self._nodes[job.node]  # type: ignore[index]
        node.used_cpus -= job.cpus
        node.used_mem -= job.mem_mb
        node.used_gpus.difference_update(job.gpu_ids)
        node.jobs.discard(job.req.job_id)
        if node.shrunk and not node.over_capacity():
            node.shrunk = False
        job.cpus, job.mem_mb, job.gpu_ids = 0, 0, ()

    def _start(self, job: JobEntry, name: str, need: Vec, now: float) -> StartJob:
        """Allocate ``need`` on node ``name`` for a pending job (called by the pass)."""
        node = self._nodes[name]
        free_ids = sorted(set(node.spec.gpu_ids) - node.used_gpus)
        gpu_ids = tuple(free_ids[: need[2]])
        job.phase = self._transition(job, "StartJob", now, f" on {name}")
        self._allocate(job, node, need[0], need[1], gpu_ids, now)
        arrays.on_phase(self, job, (PENDING, ""))
        self._singleton_cache.pop((job.req.user, job.req.name), None)
        if self._qos or self._assoc:
            limits.add(self._usage, job, limits.held(job))
        return StartJob(job.req.job_id, name, need[0], need[1], gpu_ids)

    # ------------------------------------------------------------------ pass plumbing

    def _begin_pass(self, now: float) -> None:
        self._avail.clear()
        self._singleton_cache.clear()
        self._pass_now = now
        if self._qos or self._assoc:
            self._usage = limits.count_usage(
                (self._jobs[j] for node in self._nodes.values() for j in node.jobs),
                {a.account: a.parent for a in self._assoc.values() if not a.user and a.parent})

    def _end_pass(self, reasons: dict[int, str], expected: dict[int, tuple[float, str]],
                  started: list[int], partial: bool = False) -> None:
        gone = set(started)
        if started:
            self._order = [k for k in self._order if k[-1] not in gone]
        if partial:
            # a pass that stopped early (backfill.run_pass, full=False): the
            # jobs it did not reach keep the last full pass's planned start
            expected = {**{j: v for j, v in self._expected.items()
                           if j not in gone and j in self._jobs
                           and self._jobs[j].phase == PENDING}, **expected}
        self._pass_reasons, self._expected = reasons, expected
        self._reason_cache = None

    # ------------------------------------------------------------------ queries

    def pending_reasons(self) -> dict[int, str]:
        """SLURM reason code of every pending job (computed once per pass, on demand)."""
        return dict(self._reasons())

    def _reasons(self) -> dict[int, str]:
        if self._reason_cache is None:
            self._reason_cache = eligibility.all_reasons(self)
        return self._reason_cache

    def reason(self, job_id: int) -> str:
        """SLURM pending reason (``Resources``, ``Priority``, ``Dependency``...); ``None``
        for a running, ended or unknown job."""
        job = self._jobs.get(job_id)
        if job is None or job.phase != PENDING:
            return "None"
        return self._reasons()[job_id]

    def dependency_text(self, job_id: int) -> Optional[str]:
        """squeue's ``%E`` for a pending job with a dependency (``afterok:7_*(failed)``,
        ``""`` once it is met); None for any other job."""
        job = self._jobs.get(job_id)
        if job is None or job.phase != PENDING or not job.req.dependency.strip():
            return None
        return deps.shown(self, job, self._pass_now)

    def explain(self, job_id: int) -> str:
        """Human text: why a job is pending, or where it runs."""
        return _explain.explain(self, job_id)

    def node_usage(self, name: str) -> tuple[int, int, tuple[int, ...]]:
        """Allocated CPUs, memory (MB) and GPU ids of a node."""
        node = self._node(name, "node_usage")
        return (node.used_cpus, node.used_mem, tuple(sorted(node.used_gpus)))

    def node_state(self, name: str) -> str:
        """``idle``, ``mix``, ``alloc``, ``down``, ``drain`` or ``drng``."""
        return self._node(name, "node_state").state()

    def node_reason(self, name: str) -> Optional[str]:
        """Why a node is down or drained (down first), or None."""
        node = self._node(name, "node_reason")
        return node.down_reason or node.drain_reason

    def node_busy(self, name: str) -> Optional[str]:
        """Why a node's workstation policy takes no new job there (``Owner
        active``, ``Outside its hours``, ``Foreign load 3.2 > 1.0``...), as of
        the last pass, or None."""
        return self._node(name, "node_busy").busy_reason

    def suspended(self) -> dict[int, float]:
        """Jobs suspended by their node's policy -> when they were suspended."""
        return {jid: job.suspended_at for node in self._nodes.values() for jid in node.jobs
                if (job := self._jobs[jid]).suspended_at is not None}

    def user_exclusions(self, user: str) -> dict[str, str]:
        """The machines ``user``'s jobs are not placed on, with why (a copy)."""
        return dict(self._user_excluded.get(user, {}))

    def running(self) -> dict[int, str]:
        """Running job id -> node name."""
        return {jid: name for name, node in self._nodes.items() for jid in node.jobs}

    def pending_requests(self) -> list[JobRequest]:
        """The requests of the pending jobs, highest priority first (for multifactor)."""
        return [self._jobs[k[-1]].req for k in self._order]

    def pending(self) -> list[int]:
        """Pending job ids, highest priority first."""
        return [k[-1] for k in self._order]

    def job_state(self, job_id: int) -> Optional[str]:
        """``PENDING``, ``RUNNING``, the final state of an ended job, or None if unknown."""
        job = self._jobs.get(job_id)
        if job is None:
            return None
        return job.final if job.phase == ENDED else job.phase

    def expected_start(self, job_id: int) -> Optional[float]:
        """Backfill's planned start of a pending job (its start if running), or None."""
        job = self._jobs.get(job_id)
        if job is None or job.phase == ENDED:
            return None
        if job.phase == RUNNING:
            return job.start_time
        planned = self._expected.get(job_id)
        return planned[0] if planned else None

    def validate(self) -> None:
        """Check every invariant; raise AssertionError naming the job or node and its history."""
        invariants.validate(self)

    def can_ever_run(self, job: JobRequest) -> Optional[str]:
        """None if some node of the job's partition could run it (load, down and drain
        ignored); else SLURM's refusal text (``Requested node configuration is not available``...)."""
        return eligibility.can_ever_run(self, job)

    def will_run(self, job: JobRequest, now: float) -> Optional["WillRun"]:
        """``sbatch --test-only``: when and where ``job`` would start behind the
        queue (backfill's estimate), or None; the state is not changed."""
        return willrun.will_run(self, job, now)

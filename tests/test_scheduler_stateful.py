"""Random event sequences against the scheduler, checked against a small model.

After every step: validate(); no node over-allocated (CPUs, memory, unique
GPU ids) unless a resize shrank it under jobs already there; every submitted
job is exactly one of pending/running/ended; no job is started twice without a
requeue in between; every start honours the job's partition, nodelist,
exclude, features and size; a running job's node is available or the job was
there before it went down/drained; an idle cluster leaves no job waiting for
resources; no start takes a user, QOS or account over a limit in force
(LimitsSet, changed at random: a lowered limit holds new starts only); no
start on a workstation its policy keeps free (NodeMeasured at random: owner
activity, foreign load), and its suspend/resume/requeue actions only for
jobs running there, each once (suspended jobs keep their allocation).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as hs
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fleetslurm.scheduler import (
    JobEnded, JobHeld, JobReleased, JobRequest, JobRequeued, JobRestored, JobSubmitted,
    AssocLimits, EvictJob, JobUpdated, LimitsSet, NodeDown, NodeDrain, NodeMeasured, NodePolicy,
    NodeResume, NodeSpec, NodeUp, PartitionSet, PartitionSpec, PrioritiesSet, QosLimits,
    ResumeJob, SchedulerState, StartJob, SuspendJob, Tres,
)
from fleetslurm.scheduler.policy import constraint_matches, parse_constraint

T0 = 1_800_000_000.0
FINAL = ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"]
PARTITIONS = {
    "debug": PartitionSpec("debug", priority=1, default=True),
    "gpu": PartitionSpec("gpu", priority=5, max_time=120),
}
NODES = {
    "n1": NodeSpec("n1", 4, 8000, policy=NodePolicy(owner_idle_s=600, when_owner_active="requeue")),
    "n2": NodeSpec("n2", 8, 32000, features=frozenset({"avx"})),
    "g1": NodeSpec("g1", 8, 32000, gpu_ids=(0, 1, 2), partitions=("gpu", "debug"), weight=5,
                   features=frozenset({"avx", "cuda"})),
    "g2": NodeSpec("g2", 4, 16000, gpu_ids=(0, 1), partitions=("gpu",), weight=5,
                   features=frozenset({"cuda"}),
                   policy=NodePolicy(max_foreign_load=2.0, owner_idle_s=600,
                                     when_owner_active="suspend")),
}
#: nodes with a workstation policy
POLICED = ("n1", "g2")
REASONS = {"JobHeldUser", "BeginTime", "Dependency", "DependencyNeverSatisfied", "PartitionDown",
           "PartitionTimeLimit", "Resources", "Priority", "BadConstraints", "PartitionConfig",
           "QOSMaxJobsPerUserLimit", "QOSMaxCpuPerUserLimit", "QOSMaxMemoryPerUser",
           "QOSMaxGRESPerUser", "QOSGrpCpuLimit", "QOSGrpMemLimit", "QOSGrpGRES", "QOSGrpJobsLimit",
           "QOSMaxWallDurationPerJobLimit", "AssocGrpCpuLimit", "AssocGrpMemLimit",
           "AssocGrpGRES", "AssocGrpJobsLimit", "AssocMaxJobsLimit",
           "AssocMaxWallDurationPerJobLimit"}


class SchedulerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sched = SchedulerState(max_reservations=3)
        self.now = T0
        self.next_id = 1
        self.specs = dict(NODES)
        self.down: set[str] = set()
        self.drained: set[str] = set()
        self.unavailable_since: dict[str, int] = {}  # node -> step it went down/drained
        self.steps = 0
        self.requests: dict[int, JobRequest] = {}
        self.pending: set[int] = set()
        self.running: dict[int, tuple[str, int, int, tuple[int, ...], int]] = {}  # node, cpus, mem, gpus, step
        self.ended: set[int] = set()
        self.shrunk: set[str] = set()
        self.limits = LimitsSet()
        self.suspended: set[int] = set()
        self.apply([PartitionSet(p) for p in PARTITIONS.values()] + [NodeUp(n) for n in NODES.values()]
                   + [NodeMeasured(n) for n in POLICED])

    # ------------------------------------------------------------------ driving

    def apply(self, events) -> None:
        self.steps += 1
        for ev in events:
            self._model(ev)
        evicted = []
        for action in self.sched.handle(events, self.now):
            if isinstance(action, StartJob):
                assert self.sched.node_busy(action.node) is None, (
                    f"job {action.job_id} started on {action.node}, kept free by its policy "
                    f"({self.sched.node_busy(action.node)})")
                self._started(action)
            elif isinstance(action, SuspendJob):
                assert self.running[action.job_id][0] == action.node
                assert action.job_id not in self.suspended, f"job {action.job_id} suspended twice"
                assert self.specs[action.node].policy.when_owner_active == "suspend"
                self.suspended.add(action.job_id)
            elif isinstance(action, ResumeJob):
                assert action.job_id in self.suspended, f"job {action.job_id} resumed, not suspended"
                self.suspended.discard(action.job_id)
            else:
                assert isinstance(action, EvictJob)
                assert self.running[action.job_id][0] == action.node
                evicted.append(action.job_id)
        if evicted:  # the controller requeues them
            self.apply([JobRequeued(j) for j in evicted])

    def _model(self, ev) -> None:
        if isinstance(ev, JobSubmitted):
            self.requests[ev.job.job_id] = ev.job
            self.pending.add(ev.job.job_id)
        elif isinstance(ev, JobRestored):
            self.requests[ev.job.job_id] = ev.job
            self.running[ev.job.job_id] = (ev.node, ev.job.cpus, ev.job.mem_mb, ev.gpu_ids, -1)
        elif isinstance(ev, JobEnded):
            self.pending.discard(ev.job_id)
            self.running.pop(ev.job_id, None)
            self.suspended.discard(ev.job_id)
            self.ended.add(ev.job_id)
        elif isinstance(ev, JobRequeued):
            del self.running[ev.job_id]
            self.suspended.discard(ev.job_id)
            self.pending.add(ev.job_id)
        elif isinstance(ev, JobUpdated):
            self.requests[ev.job_id] = _replace(self.requests[ev.job_id], ev.changes())
        elif isinstance(ev, (NodeDown, NodeDrain)):
            if self.available(ev.name):
                self.unavailable_since[ev.name] = self.steps
            (self.down if isinstance(ev, NodeDown) else self.drained).add(ev.name)
        elif isinstance(ev, LimitsSet):
            self.limits = ev
        elif isinstance(ev, NodeResume):
            self.down.discard(ev.name)
            self.drained.discard(ev.name)
        elif isinstance(ev, NodeUp):  # back from DOWN; an admin's DRAIN stays
            self.down.discard(ev.node.name)
            self.specs[ev.node.name] = ev.node
            cpus, mem, gpus = self._usage(ev.node.name)
            if cpus > ev.node.cpus or mem > ev.node.mem_mb or not gpus <= set(ev.node.gpu_ids):
                self.shrunk.add(ev.node.name)

    def available(self, node: str) -> bool:
        return node not in self.down and node not in self.drained

    def _started(self, a: StartJob) -> None:
        assert a.job_id in self.pending, f"StartJob for job {a.job_id}, which is not pending"
        assert self.available(a.node), f"job {a.job_id} started on unavailable node {a.node}"
        req, spec = self.requests[a.job_id], self.specs[a.node]
        part = req.partition or "debug"
        assert part in spec.partitions or (not spec.partitions and part == "debug")
        assert not req.nodelist or a.node in req.nodelist
        assert a.node not in req.exclude
        assert constraint_matches(parse_constraint(req.constraint), spec.features)
        if req.exclusive:
            assert self._usage(a.node) == (0, 0, set())
            assert (a.cpus, a.mem_mb, a.gpu_ids) == (spec.cpus, spec.mem_mb, spec.gpu_ids)
        else:
            assert (a.cpus, a.mem_mb, len(a.gpu_ids)) == (req.cpus, req.mem_mb, req.gpus)
        assert not req.held and (req.begin_time is None or req.begin_time <= self.now)
        self.pending.discard(a.job_id)
        self.running[a.job_id] = (a.node, a.cpus, a.mem_mb, a.gpu_ids, self.steps)
        # what the job takes must fit, even on a node a resize left over-allocated elsewhere
        cpus, mem, _ = self._usage(a.node)
        assert cpus <= spec.cpus, f"job {a.job_id} over-allocates CPUs of {a.node}"
        assert a.mem_mb == 0 or mem <= spec.mem_mb, f"job {a.job_id} over-allocates memory of {a.node}"
        assert set(a.gpu_ids) <= set(spec.gpu_ids), f"job {a.job_id} got GPUs {a.gpu_ids} of {a.node}"
        self._within_limits(a, req)

    def _within_limits(self, a: StartJob, req: JobRequest) -> None:
        """The start took no limit over (what it holds counted with the jobs already running)."""
        vec = (a.cpus, a.mem_mb, len(a.gpu_ids))

        def held(match) -> list[int]:
            out = [0, 0, 0, 0]
            for jid, (_n, c, m, g, _s) in self.running.items():
                if match(self.requests[jid]):
                    out = [out[0] + 1, out[1] + c, out[2] + m, out[3] + len(g)]
            return out

        def check(tres: Tres, have: list[int], what: str) -> None:
            for cap, used, need in zip((tres.cpu, tres.mem_mb, tres.gpu), have[1:], vec):
                assert cap is None or need == 0 or used <= cap, (what, tres, have, a)
        for q in self.limits.qos:
            if q.name != req.qos:
                continue
            assert q.max_wall is None or (req.time_limit or 10**9) <= q.max_wall, (q, req)
            mine = held(lambda r: r.qos == q.name and r.user == req.user)
            allq = held(lambda r: r.qos == q.name)
            assert q.max_jobs_pu is None or mine[0] <= q.max_jobs_pu, (q, mine, a)
            assert q.grp_jobs is None or allq[0] <= q.grp_jobs, (q, allq, a)
            check(q.max_tres_pu, mine, "MaxTRESPerUser")
            check(q.grp_tres, allq, "GrpTRES")
        for acct in self.limits.accounts:
            if acct.account != req.account:
                continue
            mine = held(lambda r: r.account == acct.account and r.user == req.user)
            alla = held(lambda r: r.account == acct.account)
            assert acct.max_jobs is None or mine[0] <= acct.max_jobs, (acct, mine, a)
            assert acct.grp_jobs is None or alla[0] <= acct.grp_jobs, (acct, alla, a)
            check(acct.grp_tres, alla, "account GrpTRES")

    def _usage(self, node: str) -> tuple[int, int, set[int]]:
        cpus = mem = 0
        gpus: set[int] = set()
        for name, c, m, g, _ in self.running.values():
            if name == node:
                assert not gpus & set(g), f"GPU ids {sorted(gpus & set(g))} on {node} given twice"
                cpus, mem, gpus = cpus + c, mem + m, gpus | set(g)
        return cpus, mem, gpus

    # ------------------------------------------------------------------ rules

    @rule(cpus=hs.integers(1, 9), mem=hs.sampled_from([0, 0, 1000, 8000, 20000, 40000]),
          gpus=hs.sampled_from([0, 0, 0, 1, 2, 4]), limit=hs.sampled_from([None, 1, 10, 60, 200]),
          partition=hs.sampled_from(["debug", "debug", "gpu", ""]), nice=hs.integers(-2, 2),
          prio=hs.integers(0, 1), held=hs.sampled_from([False, False, True]),
          exclusive=hs.sampled_from([False] * 5 + [True]),
          constraint=hs.sampled_from(["", "", "", "avx", "cuda&avx", "avx|cuda", "nope"]),
          nodelist=hs.sampled_from([(), (), (), ("n1",), ("g1", "g2")]),
          exclude=hs.sampled_from([(), (), ("n2",)]),
          begin=hs.sampled_from([None, None, 0, 300]),
          name=hs.sampled_from(["", "a", "b"]), data=hs.data())
    def submit(self, cpus, mem, gpus, limit, partition, nice, prio, held, exclusive, constraint,
               nodelist, exclude, begin, name, data) -> None:
        dep = data.draw(self._dependency())
        self._submit(JobRequest(
            self.next_id, user="alice", partition=partition, submit_time=self.now, cpus=cpus,
            mem_mb=mem, gpus=gpus, time_limit=limit, nice=nice, nodelist=frozenset(nodelist),
            exclude=frozenset(exclude), constraint=constraint,
            begin_time=None if begin is None else self.now + begin, held=held, dependency=dep,
            name=name, exclusive=exclusive, priority=prio,
            qos=data.draw(hs.sampled_from(["normal", "high"])), account="alice"))

    @rule(cpus=hs.integers(1, 4), limit=hs.sampled_from([None, 1, 10, 60]), count=hs.integers(1, 4))
    def submit_batch(self, cpus, limit, count) -> None:
        """Several plain jobs at once, for contention and backfill."""
        reqs = []
        for _ in range(count):
            reqs.append(JobRequest(self.next_id, "carol", "debug", self.now, cpus=cpus, time_limit=limit,
                                   account="alice"))
            self.next_id += 1
        self.apply([JobSubmitted(r) for r in reqs])

    def _submit(self, req: JobRequest) -> None:
        self.next_id += 1
        if self.sched.can_ever_run(req) is None:  # the controller refuses the rest at submit
            self.apply([JobSubmitted(req)])

    def _dependency(self):
        known = sorted(self.requests)
        if not known:
            return hs.sampled_from(["", "singleton", "afterok:99999"])
        ids = hs.sampled_from(known)
        term = hs.tuples(hs.sampled_from(["after", "afterany", "afterok", "afternotok"]), ids).map(
            lambda t: f"{t[0]}:{t[1]}")
        return hs.one_of(hs.just(""), hs.just(""), hs.just("singleton"), term,
                         hs.lists(term, min_size=2, max_size=3).map(",".join),
                         hs.lists(term, min_size=2, max_size=3).map("?".join))

    @precondition(lambda self: self.running)
    @rule(data=hs.data(), state=hs.sampled_from(FINAL))
    def end_running(self, data, state) -> None:
        jid = data.draw(hs.sampled_from(sorted(self.running)))
        self.apply([JobEnded(jid, state, self.now)])

    @precondition(lambda self: self.running or self.pending)
    @rule(data=hs.data())
    def cancel(self, data) -> None:
        jid = data.draw(hs.sampled_from(sorted(self.pending | set(self.running))))
        self.apply([JobEnded(jid, "CANCELLED", self.now)])

    @precondition(lambda self: self.pending)
    @rule(data=hs.data(), hold=hs.booleans())
    def hold_or_release(self, data, hold) -> None:
        jid = data.draw(hs.sampled_from(sorted(self.pending)))
        self.requests[jid] = _replace(self.requests[jid], {"held": hold})
        self.apply([JobHeld(jid) if hold else JobReleased(jid)])

    @precondition(lambda self: self.pending)
    @rule(data=hs.data(), nice=hs.integers(-3, 3), limit=hs.sampled_from([None, 5, 60]))
    def update(self, data, nice, limit) -> None:
        jid = data.draw(hs.sampled_from(sorted(self.pending)))
        self.apply([JobUpdated(jid, nice=nice, time_limit=limit)])

    @precondition(lambda self: self.running)
    @rule(data=hs.data(), new_submit=hs.booleans())
    def requeue(self, data, new_submit) -> None:
        jid = data.draw(hs.sampled_from(sorted(self.running)))
        self.apply([JobRequeued(jid, submit_time=self.now if new_submit else None)])

    @rule(node=hs.sampled_from(sorted(NODES)))
    def restore(self, node) -> None:
        cpus, mem, gpus = self._usage(node)
        spec = self.specs[node]
        free_gpus = sorted(set(spec.gpu_ids) - gpus)
        if cpus + 1 > spec.cpus or node in self.shrunk:
            return
        req = JobRequest(self.next_id, "bob", "gpu" if "gpu" in spec.partitions else "debug",
                         self.now, cpus=1, gpus=min(1, len(free_gpus)), time_limit=30)
        self.next_id += 1
        self.apply([JobRestored(req, node, tuple(free_gpus[:1]), self.now - 60)])

    @rule(node=hs.sampled_from(sorted(NODES)), how=hs.sampled_from(["down", "drain", "resume", "up"]))
    def node_event(self, node, how) -> None:
        ev = {"down": NodeDown(node, "Not responding"), "drain": NodeDrain(node, "maint"),
              "resume": NodeResume(node), "up": NodeUp(self.specs[node])}[how]
        self.apply([ev])

    @rule(node=hs.sampled_from(sorted(NODES)), cpus=hs.integers(1, 12), gpus=hs.integers(0, 3))
    def resize(self, node, cpus, gpus) -> None:
        old = self.specs[node]
        spec = NodeSpec(node, cpus, old.mem_mb, tuple(range(gpus)), old.partitions, old.features, old.weight,
                        old.policy)
        self.apply([NodeUp(spec)])

    @rule(data=hs.data())
    def set_priorities(self, data) -> None:
        # multifactor numbers for any jobs, running, ended and unknown ones included
        ids = data.draw(hs.lists(hs.integers(1, self.next_id + 2), max_size=6))
        values = data.draw(hs.lists(hs.integers(1, 10_000), min_size=len(ids), max_size=len(ids)))
        self.apply([PrioritiesSet(dict(zip(ids, values)))])

    @rule(data=hs.data())
    def set_limits(self, data) -> None:
        # QOS and account limits replaced at random (lowered under running jobs too)
        n = hs.none() | hs.integers(0, 4)
        tres = hs.builds(Tres, cpu=hs.none() | hs.integers(1, 12),
                         mem_mb=hs.none() | hs.integers(1000, 40000), gpu=hs.none() | hs.integers(0, 3))
        qos = data.draw(hs.lists(hs.builds(
            QosLimits, name=hs.sampled_from(["normal", "high"]), max_jobs_pu=n, grp_jobs=n,
            max_tres_pu=tres, grp_tres=tres, max_wall=hs.none() | hs.sampled_from([5, 60, 300])),
            max_size=2, unique_by=lambda q: q.name))
        accts = data.draw(hs.lists(hs.builds(AssocLimits, account=hs.just("alice"), grp_tres=tres,
                                             grp_jobs=n, max_jobs=n), max_size=1))
        self.apply([LimitsSet(tuple(qos), tuple(accts))])

    @rule(node=hs.sampled_from(POLICED), idle=hs.sampled_from([None, 5.0, 10_000.0]),
          load=hs.sampled_from([None, 0.5, 5.0]))
    def measure(self, node, idle, load) -> None:
        # a heartbeat: the owner comes or goes, the foreign load rises or falls
        self.apply([NodeMeasured(node, foreign_load=load, owner_idle_s=idle)])

    @rule(seconds=hs.sampled_from([1, 60, 600, 3600]))
    def advance(self, seconds) -> None:
        self.now += seconds
        self.apply([])

    # ------------------------------------------------------------------ invariants

    @invariant()
    def consistent(self) -> None:
        s = self.sched
        s.validate()
        assert set(s.pending()) == self.pending
        assert s.running() == {j: r[0] for j, r in self.running.items()}
        assert self.pending.isdisjoint(self.running) and self.ended.isdisjoint(self.pending)
        assert self.ended.isdisjoint(self.running)
        assert self.pending | set(self.running) | self.ended == set(self.requests)
        for name in self.specs:
            cpus, mem, gpus = self._usage(name)
            assert s.node_usage(name) == (cpus, mem, tuple(sorted(gpus)))
            spec = self.specs[name]
            fits = cpus <= spec.cpus and mem <= spec.mem_mb and gpus <= set(spec.gpu_ids)
            if fits:
                self.shrunk.discard(name)
            assert fits or name in self.shrunk, f"node {name} over-allocated"
            assert (s.node_state(name) in ("down", "drain", "drng")) == (not self.available(name))
        for jid, (node, *_rest, started) in self.running.items():
            assert self.available(node) or started < self.unavailable_since[node], (
                f"job {jid} runs on {node}, unavailable since step {self.unavailable_since.get(node)}")
        assert self.suspended <= set(self.running)
        assert set(s.suspended()) == self.suspended
        reasons = s.pending_reasons()
        assert set(reasons) == self.pending
        for jid, why in reasons.items():
            assert why in REASONS or why.startswith("ReqNodeNotAvail, UnavailableNodes:"), why
        if not self.running:  # an idle cluster leaves nobody waiting for resources
            assert not {j for j, why in reasons.items() if why in ("Resources", "Priority")}, reasons


def _replace(req: JobRequest, changes: dict) -> JobRequest:
    import dataclasses

    return dataclasses.replace(req, **changes)


SchedulerMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestScheduler = SchedulerMachine.TestCase

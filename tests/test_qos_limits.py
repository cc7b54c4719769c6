"""QOS and association limits in the pure scheduler: SLURM's pending reasons,
backfill past a job held by a limit, and (Hypothesis) that no limit is ever
exceeded over random workloads."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as hs

from fleetslurm.scheduler import (
    AssocLimits, JobEnded, JobRequest, JobSubmitted, LimitsSet, NodeSpec, NodeUp, PartitionSet,
    PartitionSpec, QosLimits, SchedulerState, StartJob, Tres,
)

T0 = 1_800_000_000.0


def cluster(*nodes: NodeSpec, qos=(QosLimits("normal"),), accounts=()) -> SchedulerState:
    st = SchedulerState()
    st.handle([PartitionSet(PartitionSpec("debug", default=True)), *map(NodeUp, nodes),
               LimitsSet(tuple(qos), tuple(accounts))], T0)
    return st


def job(jid: int, user: str = "alice", **kw) -> JobRequest:
    kw.setdefault("submit_time", T0 + jid)
    kw.setdefault("time_limit", 60)
    kw.setdefault("account", user)
    return JobRequest(jid, user, "debug", **kw)


def started(actions) -> list[int]:
    return [a.job_id for a in actions if isinstance(a, StartJob)]


def run(st, events, now=T0 + 100):
    out = st.handle(events, now)
    st.validate()
    return out


BIG = NodeSpec("n1", cpus=16, mem_mb=64000, gpu_ids=(0, 1, 2, 3))


def test_max_jobs_per_user_holds_the_third_job_and_not_another_users():
    st = cluster(BIG, qos=[QosLimits("normal", max_jobs_pu=2)])
    acts = run(st, [JobSubmitted(job(i)) for i in (1, 2, 3)] + [JobSubmitted(job(4, "bob"))])
    assert started(acts) == [1, 2, 4]
    assert st.reason(3) == "QOSMaxJobsPerUserLimit"
    assert "MaxJobsPerUser=2" in st.explain(3)
    # one of alice's jobs ends: the third starts
    assert started(run(st, [JobEnded(1, "COMPLETED", T0 + 200)], T0 + 200)) == [3]


def test_per_user_tres_reasons_are_slurms():
    st = cluster(BIG, qos=[QosLimits("normal", max_tres_pu=Tres(cpu=4, mem_mb=1000, gpu=1))])
    run(st, [JobSubmitted(job(1, cpus=3, mem_mb=500, gpus=1))])
    run(st, [JobSubmitted(job(2, cpus=2)), JobSubmitted(job(3, mem_mb=600)),
             JobSubmitted(job(4, gpus=1)), JobSubmitted(job(5, cpus=1, mem_mb=500))])
    assert st.reason(2) == "QOSMaxCpuPerUserLimit"
    assert st.reason(3) == "QOSMaxMemoryPerUser"
    assert st.reason(4) == "QOSMaxGRESPerUser"
    assert st.job_state(5) == "RUNNING"  # exactly at the limit is allowed


def test_group_limits_and_wall_and_account_limits():
    st = cluster(BIG, qos=[QosLimits("normal"), QosLimits("short", max_wall=30),
                           QosLimits("team", grp_tres=Tres(cpu=4))],
                 accounts=[AssocLimits("lab", grp_tres=Tres(cpu=2), max_jobs=5)])
    run(st, [JobSubmitted(job(1, qos="short", time_limit=60)),
             JobSubmitted(job(2, qos="short", time_limit=None)),
             JobSubmitted(job(3, qos="short", time_limit=30))])
    assert st.reason(1) == st.reason(2) == "QOSMaxWallDurationPerJobLimit"
    assert st.job_state(3) == "RUNNING"
    run(st, [JobSubmitted(job(4, "bob", qos="team", cpus=3)),
             JobSubmitted(job(5, "carol", qos="team", cpus=2))])
    assert st.job_state(4) == "RUNNING" and st.reason(5) == "QOSGrpCpuLimit"
    run(st, [JobSubmitted(job(6, "dave", account="lab", cpus=2)),
             JobSubmitted(job(7, "erin", account="lab", cpus=1))])
    assert st.job_state(6) == "RUNNING" and st.reason(7) == "AssocGrpCpuLimit"


def test_an_exclusive_job_counts_the_whole_node():
    st = cluster(NodeSpec("n1", cpus=8, mem_mb=8000),
                 qos=[QosLimits("normal", max_tres_pu=Tres(cpu=4))])
    run(st, [JobSubmitted(job(1, cpus=1, exclusive=True))])
    assert st.reason(1) == "QOSMaxCpuPerUserLimit"


def test_a_job_held_by_a_limit_does_not_block_backfill():
    # one 4-CPU node: alice's first job runs; her second (highest priority,
    # the whole node) is held by MaxJobsPerUser and must reserve nothing:
    # bob's small job starts at once
    st = cluster(NodeSpec("n1", cpus=4, mem_mb=4000), qos=[QosLimits("normal", max_jobs_pu=1)])
    run(st, [JobSubmitted(job(1, cpus=1, time_limit=600))])
    acts = run(st, [JobSubmitted(job(2, cpus=4, time_limit=60)),
                    JobSubmitted(job(3, "bob", cpus=1, time_limit=600))])
    assert started(acts) == [3]
    assert st.reason(2) == "QOSMaxJobsPerUserLimit"


def test_a_job_waiting_for_resources_still_reserves_against_backfill():
    # the contrast: without the limit, job 2 waits for Resources and bob's long
    # job may not take the room it needs
    st = cluster(NodeSpec("n1", cpus=4, mem_mb=4000))
    run(st, [JobSubmitted(job(1, cpus=1, time_limit=60))])
    acts = run(st, [JobSubmitted(job(2, cpus=4, time_limit=60)),
                    JobSubmitted(job(3, "bob", cpus=1, time_limit=600))])
    assert started(acts) == []
    assert st.reason(2) == "Resources"


def test_limits_replaced_apply_to_pending_jobs():
    st = cluster(BIG, qos=[QosLimits("normal", max_jobs_pu=1)])
    run(st, [JobSubmitted(job(i)) for i in (1, 2, 3)])
    assert st.reason(2) == "QOSMaxJobsPerUserLimit"
    acts = run(st, [LimitsSet((QosLimits("normal", max_jobs_pu=3),))])
    assert started(acts) == [2, 3]


# --------------------------------------------------------------------------- property

USERS = ("u0", "u1", "u2")
_tres = hs.builds(Tres, cpu=hs.none() | hs.integers(1, 10), mem_mb=hs.none() | hs.integers(100, 9000),
                  gpu=hs.none() | hs.integers(0, 3))
_qos = hs.builds(QosLimits, name=hs.sampled_from(["normal", "high"]),
                 max_jobs_pu=hs.none() | hs.integers(0, 4), max_tres_pu=_tres, grp_tres=_tres,
                 grp_jobs=hs.none() | hs.integers(0, 6), max_wall=hs.none() | hs.integers(5, 200))
_acct = hs.builds(AssocLimits, account=hs.sampled_from(["a0", "a1"]), grp_tres=_tres,
                  grp_jobs=hs.none() | hs.integers(0, 6), max_jobs=hs.none() | hs.integers(0, 4))
_req = hs.fixed_dictionaries({
    "user": hs.sampled_from(USERS), "qos": hs.sampled_from(["normal", "high"]),
    "account": hs.sampled_from(["a0", "a1"]), "cpus": hs.integers(1, 6),
    "mem_mb": hs.integers(0, 5000), "gpus": hs.integers(0, 2),
    "time_limit": hs.none() | hs.integers(1, 300), "exclusive": hs.booleans()})
# a step: submit some jobs, end some running ones, let time pass
_step = hs.tuples(hs.lists(_req, max_size=5), hs.lists(hs.integers(0, 50), max_size=3),
                  hs.floats(1, 600))


def _within(limit: Tres, have: list) -> bool:
    return all(cap is None or used <= cap
               for cap, used in zip((limit.cpu, limit.mem_mb, limit.gpu), have[1:]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(qos=hs.lists(_qos, max_size=2, unique_by=lambda q: q.name),
       accts=hs.lists(_acct, max_size=2, unique_by=lambda a: a.account),
       steps=hs.lists(_step, min_size=1, max_size=12))
def test_no_limit_is_ever_exceeded(qos, accts, steps):
    st = cluster(NodeSpec("n1", cpus=8, mem_mb=8000, gpu_ids=(0, 1)),
                 NodeSpec("n2", cpus=4, mem_mb=16000), qos=qos, accounts=accts)
    qmap, amap = {q.name: q for q in qos}, {a.account: a for a in accts}
    now, jid, running = T0, 0, []
    for reqs, ends, dt in steps:
        now += dt
        events = []
        for r in reqs:
            jid += 1
            events.append(JobSubmitted(JobRequest(jid, partition="debug", submit_time=now, **r)))
        for k in ends:
            if running:
                events.append(JobEnded(running.pop(k % len(running)), "COMPLETED", now))
        acts = st.handle(events, now)
        st.validate()
        running += started(acts)
        # what the running jobs hold, per limit, from the scheduler's public answers
        per: dict[tuple, list] = {}
        for j in running:
            e = st._jobs[j]
            vec = [1, e.cpus, e.mem_mb, len(e.gpu_ids)]
            for key in (("q", e.req.qos), ("qu", e.req.qos, e.req.user), ("a", e.req.account),
                        ("au", e.req.account, e.req.user)):
                row = per.setdefault(key, [0, 0, 0, 0])
                for i in range(4):
                    row[i] += vec[i]
            q = qmap.get(e.req.qos)
            if q is not None and q.max_wall is not None:
                assert e.req.time_limit is not None and e.req.time_limit <= q.max_wall
        zero = [0, 0, 0, 0]
        for q in qos:
            have = per.get(("q", q.name), zero)
            assert _within(q.grp_tres, have) and (q.grp_jobs is None or have[0] <= q.grp_jobs)
            for u in USERS:
                mine = per.get(("qu", q.name, u), zero)
                assert _within(q.max_tres_pu, mine)
                assert q.max_jobs_pu is None or mine[0] <= q.max_jobs_pu
        for a in accts:
            have = per.get(("a", a.account), zero)
            assert _within(a.grp_tres, have) and (a.grp_jobs is None or have[0] <= a.grp_jobs)
            for u in USERS:
                assert a.max_jobs is None or per.get(("au", a.account, u), zero)[0] <= a.max_jobs
        # a job shown as held by a limit is held by one that binds now
        for j, why in st.pending_reasons().items():
            e = st._jobs[j]
            r, q, a = e.req, qmap.get(e.req.qos), amap.get(e.req.account)
            if why == "QOSMaxJobsPerUserLimit":
                assert per.get(("qu", r.qos, r.user), zero)[0] + 1 > q.max_jobs_pu
            elif why == "QOSGrpJobsLimit":
                assert per.get(("q", r.qos), zero)[0] + 1 > q.grp_jobs
            elif why == "AssocMaxJobsLimit":
                assert per.get(("au", r.account, r.user), zero)[0] + 1 > a.max_jobs
            elif why == "AssocGrpJobsLimit":
                assert per.get(("a", r.account), zero)[0] + 1 > a.grp_jobs
            elif why == "QOSMaxCpuPerUserLimit" and not r.exclusive:
                assert per.get(("qu", r.qos, r.user), zero)[1] + r.cpus > q.max_tres_pu.cpu
            elif why == "AssocGrpCpuLimit" and not r.exclusive:
                assert per.get(("a", r.account), zero)[1] + r.cpus > a.grp_tres.cpu
            elif why == "QOSMaxWallDurationPerJobLimit":
                assert r.time_limit is None or r.time_limit > q.max_wall

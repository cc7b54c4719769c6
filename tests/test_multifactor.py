"""priority/multifactor and Fair Tree: hand-computed SLURM examples, then Hypothesis.

The worked numbers come from SLURM's priority_multifactor and fair_tree
documentation (billing, partition factor, tie rules) and from the formulas of
priority_multifactor.c / fair_tree.c worked by hand. The simulation drives the
real SchedulerState with PrioritiesSet, as the controller would.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from fleetslurm.errors import InvalidValue
from fleetslurm.scheduler import (
    JobEnded, JobRequest, JobSubmitted, NodeSpec, NodeUp, PartitionSet, PartitionSpec,
    PrioritiesSet, SchedulerState, StartJob,
)
from fleetslurm.scheduler.multifactor import (
    DAY, PendingJob, ShareNode, UsageRecord, Weights, charge, decay,
    decayed_usage, fair_tree, job_factors, max_priority, parse_billing_weights,
)

T0 = 1_800_000_000.0
WEEK = 7 * DAY


def user(name: str, shares: int = 1) -> ShareNode:
    return ShareNode(name, shares, is_user=True)


def account(name: str, *children: ShareNode, shares: int = 1) -> ShareNode:
    return ShareNode(name, shares, tuple(children))


def lab(*names: str) -> ShareNode:
    """fleetslurm's default tree: root -> one account per user -> that user."""
    return account("root", *(account(n, user(n)) for n in names))


def factors(tree: ShareNode, usage: dict) -> dict[str, float]:
    return {k[1]: row.fairshare for k, row in fair_tree(tree, usage).items() if k[1]}


# --------------------------------------------------------------------------- billing


def test_billing_weights_reproduce_slurms_documented_example():
    # priority_multifactor.shtml: TRESBillingWeights=CPU=1.0,Mem=0.25G, 16 CPU / 64 GiB nodes
    w = parse_billing_weights("CPU=1.0,Mem=0.25G")
    assert w.billing(1, 60 * 1024) == pytest.approx(16)
    assert w.billing(16, 1 * 1024) == pytest.approx(16.25)
    assert w.billing(16, 60 * 1024) == pytest.approx(31)


def test_billing_without_weights_is_allocated_cpus_and_gpus_count_when_weighted():
    assert parse_billing_weights("").billing(4, 8000, 2) == 4
    w = parse_billing_weights("CPU=1,GRES/gpu=8")
    assert w.billing(4, 8000, 2) == 20
    # a TRES left out weighs 0, as in SLURM
    assert parse_billing_weights("GRES/gpu=2").billing(4, 0, 1) == 2
    assert parse_billing_weights("mem=1").billing(0, 512) == 512  # per MB without a unit


@pytest.mark.parametrize("text, bad", [("CPU=abc", "CPU=abc"), ("license/x=1", "license/x=1"),
                                       ("CPU=1,", ""), ("CPU=1G", "CPU=1G")])
def test_bad_billing_weights_name_the_item(text, bad):
    with pytest.raises(InvalidValue, match=re.escape(f"invalid TRESBillingWeights item {bad!r}")):
        parse_billing_weights(text)


# --------------------------------------------------------------------------- decay


def test_decay_halves_every_half_life_and_zero_means_none():
    assert decay(100.0, WEEK, WEEK) == pytest.approx(50.0)
    assert decay(100.0, 2 * WEEK, WEEK) == pytest.approx(25.0)
    assert decay(100.0, 3 * DAY, 0) == 100.0
    assert decay(100.0, 0, WEEK) == 100.0


@given(u=hs.floats(0, 1e9), a=hs.floats(0, 1e7), b=hs.floats(0, 1e7),
       h=hs.floats(60, 1e7))
def test_decay_composes(u, a, b, h):
    assert decay(decay(u, a, h), b, h) == pytest.approx(decay(u, a + b, h), rel=1e-9, abs=1e-9)


def test_charge_is_the_limit_of_slurms_periodic_decay():
    # SLURM adds each PriorityCalcPeriod's use, then decays everything by that period;
    # the exact integral is what those steps approach as the period shrinks
    half, billing, start, end, now = DAY, 4.0, 0.0, 6 * 3600.0, 30 * 3600.0
    exact = charge(billing, start, end, now, half)
    period, usage, t = 60.0, 0.0, start
    while t < now:
        usage = decay(usage, period, half)
        if t < end:
            usage += billing * period * 2 ** (-period / 2 / half)  # mid-period use
        t += period
    assert usage == pytest.approx(exact, rel=1e-4)
    assert charge(billing, start, end, now, 0) == billing * (end - start)
    # nothing counts after now or before start
    assert charge(billing, 100.0, 200.0, 150.0, 0) == billing * 50
    assert charge(billing, 100.0, 200.0, 50.0, half) == 0.0


def test_decayed_usage_sums_per_association():
    recs = [UsageRecord("ann", "ann", 0, 100, 2), UsageRecord("ann", "ann", 100, 200, 1),
            UsageRecord("bob", "lab", 0, 50, 4)]
    assert decayed_usage(recs, 200, 0) == {("ann", "ann"): 300, ("lab", "bob"): 200}


# --------------------------------------------------------------------------- Fair Tree


def test_fair_tree_worked_example():
    # root -> A{u1: 30, u2: 10}, B{u3: 60}, every share 1.
    # A: S=.5 U=.4 LF=1.25; B: S=.5 U=.6 LF=.833 -> A's users first.
    # In A: u2 S=.5 U=.25 LF=2; u1 S=.5 U=.75 LF=.667 -> ranks u2 3, u1 2, u3 1 of 3.
    tree = account("root", account("A", user("u1"), user("u2")), account("B", user("u3")))
    rows = fair_tree(tree, {("A", "u1"): 30, ("A", "u2"): 10, ("B", "u3"): 60})
    assert [k for k in rows] == [("root", ""), ("A", ""), ("A", "u1"), ("A", "u2"), ("B", ""),
                                 ("B", "u3")]
    a, b, u1 = rows[("A", "")], rows[("B", "")], rows[("A", "u1")]
    assert (a.norm_shares, a.raw_usage, a.effective_usage) == (0.5, 40, 0.4)
    assert a.level_fs == pytest.approx(1.25) and b.level_fs == pytest.approx(0.5 / 0.6)
    assert (u1.norm_shares, u1.effective_usage, u1.depth) == (0.5, 0.75, 2)
    assert u1.level_fs == pytest.approx(2 / 3)
    assert a.fairshare is None  # accounts have no factor
    assert factors(tree, {("A", "u1"): 30, ("A", "u2"): 10, ("B", "u3"): 60}) == pytest.approx(
        {"u2": 1.0, "u1": 2 / 3, "u3": 1 / 3})


def test_all_of_an_underserved_account_ranks_above_a_sibling_account():
    # the doc's property: UserA under Acct12 vs UserB under Acct16, first common
    # ancestor Acct1; Acct16 has the higher Level FS -> UserB ranks higher, however
    # much UserB used within Acct16
    tree = account("root", account("Acct1", account("Acct12", user("UserA"), user("UserC")),
                                   account("Acct16", user("UserB"), user("UserD"))))
    usage = {("Acct12", "UserA"): 1, ("Acct12", "UserC"): 99, ("Acct16", "UserB"): 50,
             ("Acct16", "UserD"): 0}
    f = factors(tree, usage)
    assert f["UserD"] > f["UserB"] > f["UserA"] > f["UserC"]
    assert f == pytest.approx({"UserD": 1.0, "UserB": 0.75, "UserA": 0.5, "UserC": 0.25})


def test_users_without_usage_tie_at_the_top():
    assert factors(lab("ann", "bob", "cid"), {}) == {"ann": 1.0, "bob": 1.0, "cid": 1.0}
    # one has used something: the two others share the top rank, the rank below is 1/3
    assert factors(lab("ann", "bob", "cid"), {("bob", "bob"): 5}) == pytest.approx(
        {"ann": 1.0, "cid": 1.0, "bob": 1 / 3})


def test_a_user_tied_with_a_sibling_account_shares_its_best_users_rank():
    # root -> x (user, no usage: LF inf), A (account, no usage: LF inf) -> y, z (z has usage
    # within A... but A has none overall -> both y and z are inf inside A? no: z's usage is A's)
    tree = account("root", user("x"), account("A", user("y")), account("B", user("w")))
    f = factors(tree, {("B", "w"): 10})
    # x and A tie at inf: y gets x's rank (3 of 3); w is last
    assert f == pytest.approx({"x": 1.0, "y": 1.0, "w": 1 / 3})


def test_tied_sibling_accounts_have_their_children_merged():
    # A and B used 40 each: same LF 1.0 -> their users are ranked together by their own LF:
    # a1 .5/.25=2, b1 = b2 = .5/.5=1, a2 .5/.75=.667
    tree = account("root", account("A", user("a1"), user("a2")), account("B", user("b1"), user("b2")))
    usage = {("A", "a1"): 10, ("A", "a2"): 30, ("B", "b1"): 20, ("B", "b2"): 20}
    assert factors(tree, usage) == pytest.approx({"a1": 1.0, "b1": 0.75, "b2": 0.75, "a2": 0.25})


def test_zero_shares_rank_last_and_shares_weigh_usage():
    tree = account("root", account("big", user("ann"), shares=3), account("small", user("bob")),
                   account("none", user("cid"), shares=0))
    # ann used 3x bob: with 3x the shares she is exactly as served as bob (tie)
    rows = fair_tree(tree, {("big", "ann"): 30, ("small", "bob"): 10})
    assert rows[("big", "")].norm_shares == 0.75 and rows[("none", "")].level_fs == 0.0
    f = {k[1]: r.fairshare for k, r in rows.items() if k[1]}
    assert f == pytest.approx({"ann": 1.0, "bob": 1.0, "cid": 1 / 3})


def test_usage_of_unknown_associations_is_ignored():
    rows = fair_tree(lab("ann"), {("ann", "ann"): 5, ("nosuch", "ann"): 100})
    assert rows[("root", "")].raw_usage == 5


# --------------------------------------------------------------------------- job priority


def test_job_priority_worked_example():
    # the doc's first configuration example: MaxAge 14 days, weights age 1000, fairshare
    # 10000, job size 1000, partition 1000, QOS 0; partitions A (PriorityJobFactor 20) and
    # B (10). A 16-CPU, 1-node job on 4 nodes / 64 CPUs, in B, eligible 7 days ago, fair
    # share .5, nice 100:
    #   age .5*1000 + fs .5*10000 + size (1/4 + 16/64)/2*1000 + part 10/20*1000 - 100 = 6150
    w = Weights(age=1000, fairshare=10000, job_size=1000, partition=1000, qos=0, max_age_s=14 * DAY)
    job = PendingJob(7, "ann", "ann", "B", eligible_time=T0 - 7 * DAY, cpus=16, nice=100)
    f = job_factors(job, w, {("ann", "ann"): 0.5}, {"A": 20, "B": 10}, {"normal": 0}, 4, 64, T0)
    assert (f.age, f.fairshare, f.job_size, f.partition_factor, f.qos_factor) == (0.5, 0.5, 0.25, 0.5, 0.0)
    assert f.priority == 6150
    # the doc's partition example: weight 5000, factors 20 and 10 -> 5000 and 2500
    w = Weights(partition=5000)
    for part, want in (("A", 5000), ("B", 2500)):
        j = PendingJob(1, "ann", "ann", part, T0)
        assert job_factors(j, w, {}, {"A": 20, "B": 10}, {}, 1, 1, T0).priority == want


def test_favor_small_age_cap_qos_and_floor():
    w = Weights(job_size=1000, favor_small=True)
    j = PendingJob(1, "ann", "ann", "p", T0, cpus=16)
    assert job_factors(j, w, {}, {}, {}, 4, 64, T0).job_size == pytest.approx(0.75)
    w = Weights(age=1000, qos=100, max_age_s=DAY)
    j = PendingJob(1, "ann", "ann", "p", T0 - 3 * DAY, qos="high")
    f = job_factors(j, w, {}, {}, {"normal": 0, "high": 50, "top": 100}, 1, 1, T0)
    assert (f.age, f.qos_factor, f.priority) == (1.0, 0.5, 1050)
    # SLURM's default weights are 0: every job gets 1, the queue stays first come, first served
    j = PendingJob(1, "ann", "ann", "p", T0 - DAY, nice=500)
    assert job_factors(j, Weights(), {}, {}, {}, 1, 1, T0).priority == 1
    # a job eligible later than now (clock skew, --begin) has age 0, never negative
    j = PendingJob(1, "ann", "ann", "p", T0 + 60)
    assert job_factors(j, Weights(age=1000), {}, {}, {}, 1, 1, T0).age == 0.0


weights_st = hs.builds(Weights, age=hs.integers(0, 100_000), fairshare=hs.integers(0, 100_000),
                       job_size=hs.integers(0, 100_000), partition=hs.integers(0, 100_000),
                       qos=hs.integers(0, 100_000), max_age_s=hs.floats(0, 30 * DAY),
                       favor_small=hs.booleans())


@given(w=weights_st, wait=hs.floats(-DAY, 60 * DAY), fs=hs.floats(0, 1), cpus=hs.integers(1, 64),
       nodes=hs.integers(1, 8), total_nodes=hs.integers(0, 8), total_cpus=hs.integers(0, 64),
       part=hs.integers(0, 100), qos=hs.integers(0, 100), nice=hs.integers(0, 10_000))
def test_priority_is_at_least_one_and_at_most_the_sum_of_weights(
        w, wait, fs, cpus, nodes, total_nodes, total_cpus, part, qos, nice):
    j = PendingJob(1, "ann", "ann", "p", T0 - wait, cpus=cpus, nodes=nodes, qos="q", nice=nice)
    f = job_factors(j, w, {("ann", "ann"): fs}, {"p": part, "other": 100}, {"q": qos, "top": 100},
                    total_nodes, total_cpus, T0)
    for v in (f.age, f.fairshare, f.job_size, f.partition_factor, f.qos_factor):
        assert 0.0 <= v <= 1.0
    assert 1 <= f.priority <= max_priority(w)


usage_st = hs.dictionaries(hs.sampled_from([("A", "a1"), ("A", "a2"), ("B", "b1"), ("C", "c1"),
                                            ("C", "c2"), ("C", "c3")]),
                           hs.floats(0, 1e9), max_size=6)


@given(usage=usage_st, shares=hs.lists(hs.integers(0, 5), min_size=3, max_size=3))
def test_fair_tree_factors_are_ranks_and_siblings_order_by_level_fs(usage, shares):
    tree = account("root", account("A", user("a1"), user("a2"), shares=shares[0]),
                   account("B", user("b1"), shares=shares[1]),
                   account("C", user("c1"), user("c2"), user("c3"), shares=shares[2]))
    rows = fair_tree(tree, usage)
    users = {k: r for k, r in rows.items() if k[1]}
    for r in users.values():
        assert r.fairshare is not None and 0 < r.fairshare <= 1
        assert round(r.fairshare * 6, 9) == round(r.fairshare * 6)  # a rank over 6 users
    assert max(r.fairshare for r in users.values()) == 1.0
    for acct in "ABC":  # within an account, a higher level FS never ranks lower
        mine = [r for k, r in users.items() if k[0] == acct]
        for x in mine:
            for y in mine:
                if x.level_fs > y.level_fs:
                    assert x.fairshare > y.fairshare
    accts = {k[0]: r for k, r in rows.items() if not k[1] and k[0] != "root"}
    for x in "ABC":  # Fair Tree's promise: a better-served account's users all rank lower
        for y in "ABC":
            if accts[x].level_fs > accts[y].level_fs:
                assert (min(r.fairshare for k, r in users.items() if k[0] == x)
                        > max(r.fairshare for k, r in users.items() if k[0] == y))


# --------------------------------------------------------------------------- through the scheduler

FS_WEIGHTS = Weights(age=1000, fairshare=10_000, job_size=0, max_age_s=7 * DAY)


class Lab:
    """A scheduler with multifactor priorities recomputed at every event, as the controller
    does each PriorityCalcPeriod; usage charged per CPU-second, running jobs included."""

    def __init__(self, users, nodes, half_life=7 * DAY, weights=FS_WEIGHTS):
        self.st = SchedulerState()
        self.tree = lab(*users)
        self.half_life, self.weights = half_life, weights
        self.nodes = nodes
        self.reqs: dict[int, JobRequest] = {}
        self.dur: dict[int, float] = {}
        self.running: dict[int, float] = {}   # job id -> start
        self.done: list[UsageRecord] = []
        self.started: list[tuple[float, int]] = []
        self.st.handle([PartitionSet(PartitionSpec("debug", default=True))]
                       + [NodeUp(n) for n in nodes], T0)

    def usage_records(self, now):
        return self.done + [UsageRecord(self.reqs[j].user, self.reqs[j].user, s, now,
                                        self.reqs[j].cpus) for j, s in self.running.items()]

    def priorities(self, jobs, now):
        usage = decayed_usage(self.usage_records(now), now, self.half_life)
        fs = {k: r.fairshare for k, r in fair_tree(self.tree, usage).items() if k[1]}
        out = {}
        for jid in jobs:
            r = self.reqs[jid]
            out[jid] = job_factors(PendingJob(jid, r.user, r.user, "debug", r.submit_time, r.cpus),
                                   self.weights, fs, {"debug": 1}, {}, len(self.nodes),
                                   sum(n.cpus for n in self.nodes), now).priority
        return out

    def step(self, events, now):
        # the priorities of the jobs pending after the events, set before the pass runs
        jobs = self.st.pending() + [e.job.job_id for e in events if isinstance(e, JobSubmitted)]
        actions = self.st.handle(list(events) + [PrioritiesSet(self.priorities(jobs, now))], now)
        self.st.validate()
        for a in actions:
            assert isinstance(a, StartJob)
            self.running[a.job_id] = now
            self.started.append((now, a.job_id))
        return actions

    def end_due(self, now):
        ends = []
        for jid, start in list(self.running.items()):
            if start + self.dur[jid] <= now:
                del self.running[jid]
                r = self.reqs[jid]
                self.done.append(UsageRecord(r.user, r.user, start, start + self.dur[jid], r.cpus))
                ends.append(JobEnded(jid, "COMPLETED", start + self.dur[jid]))
        return ends

    def next_end(self):
        return min((s + self.dur[j] for j, s in self.running.items()), default=math.inf)

    def cpu_seconds(self, until):
        out: dict[str, float] = {}
        for r in self.usage_records(until):
            out[r.user] = out.get(r.user, 0.0) + r.billing * max(0.0, min(r.end, until) - r.start)
        return out


def new_job(labo: Lab, jid: int, who: str, cpus: int, minutes: int, now: float) -> JobSubmitted:
    req = JobRequest(jid, who, "debug", now, cpus=cpus, time_limit=minutes)
    labo.reqs[jid], labo.dur[jid] = req, minutes * 60.0
    return JobSubmitted(req)


def test_the_issue_scenario_second_users_first_job_starts_at_the_first_free_slot():
    # issue 13: one user submits 100 one-minute jobs, another then 5; with equal shares the
    # second user's first job takes the first CPU that frees after its submission
    nodes = [NodeSpec("n1", 2, 4000), NodeSpec("n2", 2, 4000)]
    labo = Lab(["ann", "bob"], nodes)
    now = T0
    labo.step([new_job(labo, j, "ann", 1, 1, now) for j in range(1, 101)], now)
    assert len(labo.running) == 4
    now += 10
    labo.step([new_job(labo, j, "bob", 1, 1, now) for j in range(101, 106)], now)
    after = len(labo.started)
    while labo.running:
        now = labo.next_end()
        labo.step(labo.end_due(now), now)
        if any(j > 100 for _t, j in labo.started[after:]):
            break
    first_bob = next(i for i, (_t, j) in enumerate(labo.started) if j > 100)
    assert first_bob == after  # no job of ann's started between bob's submission and his job
    assert labo.started[first_bob][0] == T0 + 60  # the first slot that freed


def run_workload(users, plans, hours, half_life, nodes, weights=FS_WEIGHTS):
    """Each user keeps as many jobs pending as the fleet has CPUs (a closed loop drawn from
    their plan), so at every pass everybody wants more than their share; returns
    CPU-seconds per user."""
    labo = Lab(users, nodes, half_life, weights)
    now, jid, backlog = T0, 0, sum(n.cpus for n in nodes)
    cursor = {u: 0 for u in users}

    def top_up(now):
        nonlocal jid
        evs = []
        pending_by = {u: 0 for u in users}
        for j in labo.st.pending():
            pending_by[labo.reqs[j].user] += 1
        for u, plan in zip(users, plans):
            for _ in range(backlog - pending_by[u]):
                cpus, minutes = plan[cursor[u] % len(plan)]
                cursor[u] += 1
                jid += 1
                evs.append(new_job(labo, jid, u, cpus, minutes, now))
        return evs

    horizon = T0 + hours * 3600
    labo.step(top_up(now), now)
    while now < horizon:
        now = min(labo.next_end(), horizon)
        labo.step(labo.end_due(now) + top_up(now), now)
    return labo.cpu_seconds(horizon)


job_plan = hs.lists(hs.tuples(hs.integers(1, 4), hs.integers(5, 120)), min_size=1, max_size=8)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_users=hs.integers(2, 3), plans=hs.lists(job_plan, min_size=3, max_size=3),
       half_life=hs.sampled_from([DAY, 7 * DAY]))
def test_equal_shares_converge_to_equal_cpu_seconds(n_users, plans, half_life):
    users = ["ann", "bob", "cid"][:n_users]
    nodes = [NodeSpec("n1", 4, 16000), NodeSpec("n2", 4, 16000)]
    used = run_workload(users, plans[:n_users], hours=72, half_life=half_life, nodes=nodes)
    total = sum(used.values())
    target = 1 / n_users
    for u in users:
        assert abs(used.get(u, 0.0) / total - target) <= 0.10 * target, (u, used)


def test_without_fair_share_the_first_user_takes_everything():
    # the control: weights 0 (SLURM's default) keep first come, first served
    nodes = [NodeSpec("n1", 2, 4000)]
    labo = Lab(["ann", "bob"], nodes, weights=Weights())
    now = T0
    labo.step([new_job(labo, j, "ann", 1, 1, now) for j in range(1, 21)], now)
    labo.step([new_job(labo, j, "bob", 1, 1, now + 1) for j in range(21, 23)], now + 1)
    while labo.running:
        now = labo.next_end()
        labo.step(labo.end_due(now), now)
    order = [j for _t, j in labo.started]
    assert order == sorted(order)


def test_the_same_workload_first_come_first_served_is_not_fair():
    # the convergence test has teeth: a user of 4-CPU two-hour jobs against one of 1-CPU
    # ten-minute jobs takes most of the fleet without fair share, half with it
    nodes = [NodeSpec("n1", 4, 16000), NodeSpec("n2", 4, 16000)]
    plans = [[(4, 120)], [(1, 10)]]
    fcfs = run_workload(["ann", "bob"], plans, 72, DAY, nodes, weights=Weights())
    fair = run_workload(["ann", "bob"], plans, 72, DAY, nodes)
    assert fcfs["ann"] / sum(fcfs.values()) > 0.7
    assert fair["ann"] / sum(fair.values()) == pytest.approx(0.5, abs=0.05)


def test_priorities_set_orders_jobs_within_partition_priority_and_admin_priority():
    st = SchedulerState()
    st.handle([PartitionSet(PartitionSpec("debug", default=True)),
               PartitionSet(PartitionSpec("high", priority=10)),
               NodeUp(NodeSpec("a", 1, 1000, partitions=("debug", "high")))], T0)
    reqs = [JobRequest(1, "ann", "debug", T0), JobRequest(2, "bob", "debug", T0 + 1),
            JobRequest(3, "cid", "debug", T0 + 2), JobRequest(4, "dan", "debug", T0 + 3, priority=5),
            JobRequest(5, "eve", "high", T0 + 4), JobRequest(6, "fay", "high", T0 + 5)]
    assert [a.job_id for a in st.handle([JobSubmitted(r) for r in reqs], T0 + 5)] == [5]
    assert st.pending() == [6, 4, 1, 2, 3]
    # multifactor reorders the jobs of the same tier; the partition tier and an admin's
    # priority still come first; running, ended and unknown ids are skipped
    st.handle([PrioritiesSet({1: 50, 2: 100, 3: 900, 4: 1, 5: 1, 6: 1, 99: 7})], T0 + 6)
    st.validate()
    assert st.pending() == [6, 4, 3, 2, 1]
    st.handle([PrioritiesSet({3: 10})], T0 + 7)
    st.validate()
    assert st.pending() == [6, 4, 2, 1, 3]


def test_explain_names_the_multifactor_priorities_ahead():
    st = SchedulerState()
    st.handle([PartitionSet(PartitionSpec("debug", default=True)), NodeUp(NodeSpec("a", 1, 1000))], T0)
    st.handle([JobSubmitted(JobRequest(j, "ann" if j < 3 else "bob", "debug", T0 + j))
               for j in (1, 2, 3)], T0 + 5)
    st.handle([PrioritiesSet({2: 9000, 3: 4000})], T0 + 6)
    text = st.explain(3)
    assert "higher-priority jobs in partition debug wait first: 2" in text
    assert "its multifactor priority is 4000 (sprio -j 3 shows the factors); theirs: 2: 9000" in text


def test_many_priorities_at_once_reorder_the_whole_queue():
    st = SchedulerState()
    st.handle([PartitionSet(PartitionSpec("debug", default=True)), NodeUp(NodeSpec("a", 1, 1000))], T0)
    st.handle([JobSubmitted(JobRequest(j, "ann", "debug", T0 + j)) for j in range(1, 202)], T0 + 1)
    st.handle([PrioritiesSet({j: j for j in range(2, 202)})], T0 + 2)
    st.validate()
    assert st.pending() == list(range(201, 1, -1))

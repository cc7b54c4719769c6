"""Workstation policies in the pure scheduler: owner activity, foreign load,
free memory, hours (time from ``handle(events, now)``), suspend/resume/requeue,
spread versus pack. validate() after every step."""

from __future__ import annotations

import time

import pytest

from fleetslurm.errors import InvalidValue
from fleetslurm.hours import parse_window, parse_windows, within
from fleetslurm.scheduler import (
    EvictJob, JobEnded, JobRequest, JobRequeued, JobRestored, JobSubmitted, NodeMeasured,
    NodePolicy, NodeSpec, NodeUp, PartitionSet, PartitionSpec, ResumeJob, SchedulerState,
    StartJob, SuspendJob,
)
from fleetslurm.scheduler.backfill import node_profile


def local(y, mo, d, h, mi=0) -> float:
    """Epoch seconds of a local time (windows are local time)."""
    return time.mktime((y, mo, d, h, mi, 0, 0, 0, -1))


# 2026-12-07 is a Monday
MON_NOON = local(2026, 12, 7, 12)
T0 = MON_NOON


def job(jid: int, **kw) -> JobRequest:
    kw.setdefault("user", "alice")
    kw.setdefault("partition", "debug")
    kw.setdefault("submit_time", T0 - 1000 + jid)
    return JobRequest(jid, **kw)


def step(st: SchedulerState, events, now: float = T0) -> list:
    actions = st.handle(events, now)
    st.validate()
    return actions


def starts(actions) -> dict[int, str]:
    return {a.job_id: a.node for a in actions if isinstance(a, StartJob)}


def cluster(*nodes: NodeSpec, placement: str = "pack", now: float = T0) -> SchedulerState:
    st = SchedulerState()
    step(st, [PartitionSet(PartitionSpec("debug", default=True, placement=placement))]
         + [NodeUp(n) for n in nodes], now)
    return st


POLICY = NodePolicy(max_foreign_load=1.0, min_free_mem_mb=2048, owner_idle_s=900)


# --------------------------------------------------------------------------- hours

def test_windows_parse_and_wrap_past_midnight():
    w = parse_window("Mon-Fri 19:00-07:00")
    assert w.days == frozenset(range(5)) and (w.start, w.end) == (19 * 60, 7 * 60)
    eve = parse_windows(["Mon-Fri 19:00-07:00", "Sat-Sun"])
    assert not within(eve, MON_NOON)
    assert within(eve, local(2026, 12, 7, 19))            # Monday 19:00
    assert within(eve, local(2026, 12, 8, 6, 59))          # Tuesday 06:59, from Monday's evening
    assert not within(eve, local(2026, 12, 8, 7))          # Tuesday 07:00
    assert within(eve, local(2026, 12, 12, 12))            # Saturday noon
    # Monday 03:00: Sunday is a whole day, not a night; "Sun-Thu 19:00-07:00" would cover it
    assert not within(eve, local(2026, 12, 14, 3))
    assert within(parse_windows(["Fri 19:00-07:00"]), local(2026, 12, 12, 6))  # Saturday morning
    assert not within(parse_windows(["Fri 19:00-07:00"]), local(2026, 12, 14, 6))
    assert within(parse_windows(["22:00-06:00"]), local(2026, 12, 9, 23))
    assert within(parse_windows(["Fri-Mon"]), local(2026, 12, 7, 12))
    assert within((), MON_NOON)  # no windows: always


@pytest.mark.parametrize("text, says", [
    ("Mon-Fry 9:00-17:00", "unknown day in 'Mon-Fry'"),
    ("Mon 25:00-17:00", "'25:00' is not a time of day"),
    ("Mon 9-17", "is not HH:MM"),
    ("Mon 09:00", "hours are HH:MM-HH:MM"),
    ("Mon 09:00-09:00", "starts and ends at 09:00"),
    ("", "invalid window ''"),
    ("Mon Tue Wed", "invalid window 'Mon Tue Wed'"),
])
def test_malformed_windows_are_named(text, says):
    with pytest.raises(InvalidValue, match="invalid window") as err:
        parse_window(text)
    assert says in str(err.value)


def test_outside_its_hours_starts_nothing_until_the_window_opens():
    pol = NodePolicy(windows=parse_windows(["Mon-Fri 19:00-07:00", "Sat-Sun"]))
    st = cluster(NodeSpec("ws", 4, 8000, policy=pol))
    assert starts(step(st, [JobSubmitted(job(1))], MON_NOON)) == {}
    assert st.node_busy("ws") == "Outside its hours"
    assert st.reason(1).startswith("ReqNodeNotAvail")
    assert "Outside its hours: available Mon-Fri 19:00-07:00, Sat-Sun" in st.explain(1)
    assert starts(step(st, [], local(2026, 12, 7, 18, 59))) == {}
    assert starts(step(st, [], local(2026, 12, 7, 19, 0))) == {1: "ws"}
    assert st.node_busy("ws") is None


# --------------------------------------------------------------------------- load, memory, owner

def test_foreign_load_free_memory_and_owner_each_keep_new_jobs_off():
    st = cluster(NodeSpec("a", 4, 8000, policy=POLICY), NodeSpec("b", 4, 8000, weight=5))
    step(st, [NodeMeasured("a", foreign_load=3.2, free_mem_mb=9000)])
    assert st.node_busy("a") == "Foreign load 3.2 > 1.0"
    # a is preferred (lower weight) but busy: the job goes to b
    assert starts(step(st, [JobSubmitted(job(1))])) == {1: "b"}
    step(st, [NodeMeasured("a", foreign_load=0.2, free_mem_mb=1000)])
    assert st.node_busy("a") == "Free memory 1000 MB < 2048 MB"
    step(st, [NodeMeasured("a", foreign_load=0.2, free_mem_mb=5000, owner_idle_s=60)])
    assert st.node_busy("a") == "Owner active"
    assert starts(step(st, [JobSubmitted(job(2, cpus=4))])) == {}
    text = st.explain(2)
    assert "node a is idle (no new jobs by its workstation policy: Owner active: last " \
           "activity 1.0 min ago, its policy wants 15 min idle)" in text
    # a new agent's first heartbeat (no foreign load yet) keeps the last one
    step(st, [NodeMeasured("a", foreign_load=3.0, free_mem_mb=5000, owner_idle_s=901)])
    step(st, [NodeMeasured("a", foreign_load=None, free_mem_mb=5000, owner_idle_s=901)])
    assert st.node_busy("a") == "Foreign load 3.0 > 1.0"
    acts = step(st, [NodeMeasured("a", foreign_load=0.2, free_mem_mb=5000, owner_idle_s=901)])
    assert st.node_busy("a") is None
    assert starts(acts) == {2: "a"}


def test_unmeasured_or_unpoliced_machines():
    st = cluster(NodeSpec("plain", 2, 4000), NodeSpec("ws", 2, 4000, weight=0, policy=POLICY),
                 NodeSpec("hours", 2, 4000, weight=0,
                          policy=NodePolicy(windows=parse_windows(["Mon"]))))
    # a machine without policy ignores any measurement; a policed one takes
    # nothing until measured (its owner may be there); hours alone need none
    step(st, [NodeMeasured("plain", foreign_load=9.0, free_mem_mb=1, owner_idle_s=0)])
    assert st.node_busy("plain") is None and st.node_busy("hours") is None
    assert st.node_busy("ws") == "Not measured yet"
    assert starts(step(st, [JobSubmitted(job(1)), JobSubmitted(job(2, cpus=2))])) == \
        {1: "hours", 2: "plain"}
    # measured, values unknown (the foreign load's first reading): no block
    assert starts(step(st, [NodeMeasured("ws"), JobSubmitted(job(3, cpus=2))])) == {3: "ws"}


# --------------------------------------------------------------------------- running jobs

def _running(policy: NodePolicy) -> SchedulerState:
    st = cluster(NodeSpec("ws", 4, 8000, policy=policy))
    assert starts(step(st, [NodeMeasured("ws"), JobSubmitted(job(1, time_limit=10))])) == \
        {1: "ws"}
    return st


def test_stop_starting_leaves_running_jobs_alone():
    st = _running(POLICY)
    acts = step(st, [NodeMeasured("ws", owner_idle_s=5), JobSubmitted(job(2))], T0 + 10)
    assert acts == [] and st.job_state(1) == "RUNNING"


def test_suspend_while_the_owner_is_active_then_resume_and_the_limit_waits():
    st = _running(NodePolicy(owner_idle_s=900, when_owner_active="suspend"))
    acts = step(st, [NodeMeasured("ws", owner_idle_s=5)], T0 + 60)
    assert acts == [SuspendJob(1, "ws", "Owner active")]
    assert st.suspended() == {1: T0 + 60}
    assert step(st, [NodeMeasured("ws", owner_idle_s=30)], T0 + 90) == []  # once only
    assert "it is suspended since" in st.explain(1)
    # the owner leaves 20 minutes later: resumed
    acts = step(st, [NodeMeasured("ws", owner_idle_s=1000)], T0 + 60 + 1200)
    assert acts == [ResumeJob(1, "ws")]
    assert st.suspended() == {}
    # its 10-minute limit ends 10 minutes of running after its start: 20 min later
    prof = node_profile(st, st._nodes["ws"], T0 + 1300)
    assert prof.earliest((4, 8000, 0), 60) == pytest.approx(T0 + 600 + 1200)


def test_requeue_policy_evicts_once():
    st = _running(NodePolicy(owner_idle_s=900, when_owner_active="requeue"))
    assert step(st, [NodeMeasured("ws", owner_idle_s=5)], T0 + 60) == \
        [EvictJob(1, "ws", "Owner active")]
    assert step(st, [], T0 + 61) == []
    # the controller requeues it; it does not start while the owner is there
    assert starts(step(st, [JobRequeued(1)], T0 + 62)) == {}
    assert starts(step(st, [NodeMeasured("ws", owner_idle_s=901)], T0 + 900)) == {1: "ws"}


def test_the_hours_closing_suspends_too():
    pol = NodePolicy(when_owner_active="suspend", windows=parse_windows(["Mon-Fri 19:00-07:00"]))
    monday_eve = local(2026, 12, 7, 20)
    st = cluster(NodeSpec("ws", 4, 8000, policy=pol), now=monday_eve)
    assert starts(step(st, [JobSubmitted(job(1))], monday_eve)) == {1: "ws"}
    tuesday_7 = local(2026, 12, 8, 7)
    assert step(st, [], tuesday_7) == [SuspendJob(1, "ws", "Outside its hours")]
    assert step(st, [], local(2026, 12, 8, 19)) == [ResumeJob(1, "ws")]


def test_a_restored_suspended_job_waits_for_a_measurement_to_resume():
    st = cluster(NodeSpec("ws", 4, 8000, policy=NodePolicy(owner_idle_s=900,
                                                         when_owner_active="suspend")))
    assert step(st, [JobRestored(job(5), "ws", (), T0 - 100, suspended_at=T0 - 50)]) == []
    assert st.suspended() == {5: T0 - 50}
    assert step(st, [NodeMeasured("ws", owner_idle_s=None)], T0 + 1) == [ResumeJob(5, "ws")]


def test_a_suspended_job_ending_or_restored_keeps_the_books_straight():
    st = _running(NodePolicy(owner_idle_s=900, when_owner_active="suspend"))
    step(st, [NodeMeasured("ws", owner_idle_s=5)], T0 + 60)
    step(st, [JobEnded(1, "CANCELLED", T0 + 70)], T0 + 70)
    assert st.suspended() == {}
    # a controller restart brings a suspended job back suspended
    st2 = cluster(NodeSpec("ws", 4, 8000, policy=NodePolicy(owner_idle_s=900,
                                                          when_owner_active="suspend")))
    step(st2, [JobRestored(job(5, time_limit=10), "ws", (), T0 - 100, suspended_at=T0 - 50,
                           suspended_s=30.0), NodeMeasured("ws", owner_idle_s=1)])
    assert st2.suspended() == {5: T0 - 50}
    assert step(st2, [NodeMeasured("ws", owner_idle_s=2000)], T0 + 10) == [ResumeJob(5, "ws")]


# --------------------------------------------------------------------------- spread or pack

def test_pack_fills_one_machine_spread_uses_the_least_loaded():
    nodes = [NodeSpec(n, 4, 8000) for n in ("a", "b", "c")]
    packed = cluster(*nodes)
    assert set(starts(step(packed, [JobSubmitted(job(i)) for i in (1, 2, 3)])).values()) == {"a"}
    spread = cluster(*nodes, placement="spread")
    step(spread, [NodeMeasured("a", foreign_load=2.0), NodeMeasured("b", foreign_load=0.5),
                  NodeMeasured("c", foreign_load=0.0)])
    got = starts(step(spread, [JobSubmitted(job(i)) for i in (1, 2, 3, 4)]))
    # c (0), then b (0.5/4 < c's 1/4), then c or b ... a, loaded by its owner, last
    assert got == {1: "c", 2: "b", 3: "c", 4: "b"}
    # weight still comes first, as in SLURM
    heavy = cluster(NodeSpec("x", 4, 8000, weight=1), NodeSpec("y", 4, 8000, weight=2),
                    placement="spread")
    assert set(starts(step(heavy, [JobSubmitted(job(i)) for i in (1, 2)])).values()) == {"x"}

"""The pure scheduler: feed events, compare the actions; validate() after every step."""

from __future__ import annotations

import pytest

import fleetslurm.scheduler as sched
from fleetslurm.errors import FleetError
from fleetslurm.scheduler import (
    UNSET, InvalidTransition, JobEnded, JobHeld, JobReleased, JobRequest, JobRequeued,
    JobRestored, JobSubmitted, JobUpdated, NodeDown, NodeDrain, NodeResume, NodeSpec, NodeUp,
    PartitionSet, PartitionSpec, SchedulerState, StartJob,
)
from fleetslurm.scheduler.deps import parse_dependency
from fleetslurm.scheduler.explain import format_time
from fleetslurm.scheduler.lifecycle import HISTORY_LENGTH
from fleetslurm.scheduler.policy import compress_hostlist, parse_constraint

T0 = 1_800_000_000.0


def job(jid: int, **kw) -> JobRequest:
    kw.setdefault("user", "alice")
    kw.setdefault("partition", "debug")
    kw.setdefault("submit_time", T0 + jid)
    return JobRequest(jid, **kw)


def cluster(*nodes: NodeSpec, parts=(PartitionSpec("debug", default=True),)) -> SchedulerState:
    st = SchedulerState()
    assert step(st, [PartitionSet(p) for p in parts] + [NodeUp(n) for n in nodes]) == []
    return st


def step(st: SchedulerState, events, now: float = T0 + 100) -> list:
    actions = st.handle(events, now)
    st.validate()
    return actions


def starts(actions) -> dict[int, str]:
    return {a.job_id: a.node for a in actions if isinstance(a, StartJob)}


def submit(st, *reqs, now: float = T0 + 100) -> dict[int, str]:
    return starts(step(st, [JobSubmitted(r) for r in reqs], now))


# --------------------------------------------------------------------------- order


def test_package_exports_its_public_names():
    public = {n for n in dir(sched) if not n.startswith("_")} - {
        "arrays", "backfill", "deps", "eligibility", "events", "explain", "invariants", "lifecycle",
        "limits", "multifactor", "policy", "profile", "records", "state", "willrun", "workstation"}
    assert set(sched.__all__) == public


def test_fifo_by_submit_time_one_cpu_at_a_time():
    st = cluster(NodeSpec("a", cpus=1, mem_mb=1000))
    assert submit(st, job(3), job(1), job(2)) == {1: "a"}
    assert st.pending() == [2, 3]
    assert st.reason(2) == "Resources" and st.reason(3) == "Priority"
    assert starts(step(st, [JobEnded(1, "COMPLETED", T0 + 200)])) == {2: "a"}
    assert starts(step(st, [JobEnded(2, "COMPLETED", T0 + 300)])) == {3: "a"}


def test_priority_then_nice_then_submit_time_then_id():
    st = cluster(NodeSpec("a", cpus=1, mem_mb=1000))
    assert submit(st, job(1)) == {1: "a"}
    submit(st, job(2, nice=5), job(3, priority=10), job(4), job(5, submit_time=T0 + 4),
           job(6, nice=-1))
    assert st.pending() == [3, 6, 4, 5, 2]
    step(st, [JobUpdated(2, nice=-5)])
    assert st.pending() == [3, 2, 6, 4, 5]


def test_partition_priority_beats_submit_order():
    parts = (PartitionSpec("debug", default=True), PartitionSpec("urgent", priority=10))
    st = cluster(NodeSpec("a", 1, 1000, partitions=("debug", "urgent")), parts=parts)
    assert submit(st, job(1)) == {1: "a"}
    submit(st, job(2), job(3, partition="urgent"))
    assert st.pending() == [3, 2]
    assert starts(step(st, [JobEnded(1, "COMPLETED", T0)])) == {3: "a"}


# --------------------------------------------------------------------------- placement


def test_placement_by_cpus_and_memory():
    st = cluster(NodeSpec("a", 4, 8000), NodeSpec("b", 8, 32000))
    acts = step(st, [JobSubmitted(job(1, cpus=2, mem_mb=16000)), JobSubmitted(job(2, cpus=6))])
    assert acts == [StartJob(1, "b", 2, 16000, ()), StartJob(2, "b", 6, 0, ())]
    assert st.node_usage("b") == (8, 16000, ())
    assert st.node_state("b") == "alloc" and st.node_state("a") == "idle"
    assert submit(st, job(3, cpus=3)) == {3: "a"}
    assert st.node_state("a") == "mix"


def test_gpu_ids_lowest_first_and_released():
    st = cluster(NodeSpec("g", 16, 64000, gpu_ids=(0, 1, 2, 3)))
    acts = step(st, [JobSubmitted(job(1, gpus=2)), JobSubmitted(job(2, gpus=1)),
                     JobSubmitted(job(3, gpus=2))])
    assert acts == [StartJob(1, "g", 1, 0, (0, 1)), StartJob(2, "g", 1, 0, (2,))]
    assert st.reason(3) == "Resources"
    assert st.node_usage("g") == (2, 0, (0, 1, 2))
    acts = step(st, [JobEnded(1, "COMPLETED", T0)])
    assert acts == [StartJob(3, "g", 1, 0, (0, 1))]


def test_lowest_weight_first():
    st = cluster(NodeSpec("heavy", 8, 8000, weight=10), NodeSpec("light", 8, 8000, weight=1))
    assert submit(st, job(1)) == {1: "light"}


def test_cpu_only_job_avoids_gpu_node_while_another_fits():
    st = cluster(NodeSpec("gpu", 8, 8000, gpu_ids=(0,)), NodeSpec("cpu", 2, 8000))
    assert submit(st, job(1, cpus=2)) == {1: "cpu"}
    assert submit(st, job(2, cpus=2)) == {2: "gpu"}  # the CPU node is full: use the GPU one
    assert submit(st, job(3, gpus=1)) == {3: "gpu"}


def test_best_fit_packs_the_busier_node():
    st = cluster(NodeSpec("a", 8, 8000), NodeSpec("b", 8, 8000))
    assert submit(st, job(1, cpus=4)) == {1: "a"}  # tie on everything: by name
    assert submit(st, job(2, cpus=2)) == {2: "a"}  # leaves 2 free on a rather than 6 on b


def test_nodelist_and_exclude():
    st = cluster(NodeSpec("a", 4, 8000), NodeSpec("b", 4, 8000), NodeSpec("c", 4, 8000))
    assert submit(st, job(1, nodelist=frozenset({"c"}))) == {1: "c"}
    assert submit(st, job(2, exclude=frozenset({"a", "c"}))) == {2: "b"}
    assert submit(st, job(3, nodelist=frozenset({"b", "c"}), cpus=4)) == {}
    assert st.reason(3) == "Resources"


def test_constraint_and_binds_tighter_than_or():
    st = cluster(NodeSpec("a", 4, 8000, features=frozenset({"intel"})),
                 NodeSpec("b", 4, 8000, features=frozenset({"amd", "avx512"})),
                 NodeSpec("c", 4, 8000, features=frozenset({"amd"})))
    assert submit(st, job(1, constraint="amd&avx512")) == {1: "b"}
    assert submit(st, job(2, constraint="intel|amd&avx512", cpus=4)) == {2: "a"}
    assert submit(st, job(3, constraint="nvme|amd&avx512")) == {3: "b"}
    assert parse_constraint("a|b&c") == (frozenset({"a"}), frozenset({"b", "c"}))


def test_exclusive_waits_for_an_idle_node_and_takes_all_of_it():
    st = cluster(NodeSpec("a", 4, 8000, gpu_ids=(0, 1)))
    assert submit(st, job(1)) == {1: "a"}
    assert submit(st, job(2, exclusive=True)) == {}
    assert st.reason(2) == "Resources"
    acts = step(st, [JobEnded(1, "COMPLETED", T0)])
    assert acts == [StartJob(2, "a", 4, 8000, (0, 1))]
    assert submit(st, job(3)) == {}  # nothing shares an exclusive node


# --------------------------------------------------------------------------- eligibility


def test_hold_and_release():
    st = cluster(NodeSpec("a", 4, 8000))
    assert submit(st, job(1, held=True)) == {}
    assert st.reason(1) == "JobHeldUser"
    assert starts(step(st, [JobReleased(1)])) == {1: "a"}
    assert submit(st, job(2, cpus=8 // 2)) == {}
    step(st, [JobHeld(2)])
    assert st.reason(2) == "JobHeldUser"
    assert starts(step(st, [JobEnded(1, "COMPLETED", T0)])) == {}
    assert starts(step(st, [JobReleased(2)])) == {2: "a"}


def test_begin_time():
    st = cluster(NodeSpec("a", 4, 8000))
    assert submit(st, job(1, begin_time=T0 + 500), now=T0 + 100) == {}
    assert st.reason(1) == "BeginTime"
    assert "may not start before" in st.explain(1)
    assert starts(step(st, [], now=T0 + 500)) == {1: "a"}


def test_dependency_after_waits_for_start():
    st = cluster(NodeSpec("a", 1, 8000), NodeSpec("b", 1, 8000, weight=5))
    assert submit(st, job(1, held=True), job(2, dependency="after:1")) == {}
    assert st.reason(2) == "Dependency"
    assert starts(step(st, [JobReleased(1)])) == {1: "a", 2: "b"}


def test_dependency_after_with_delay():
    st = cluster(NodeSpec("a", 2, 8000))
    assert submit(st, job(1), job(2, dependency="after:1+10"), now=T0) == {1: "a"}
    assert starts(step(st, [], now=T0 + 599)) == {}
    assert starts(step(st, [], now=T0 + 600)) == {2: "a"}


@pytest.mark.parametrize("kind, final, runs", [
    ("afterany", "FAILED", True), ("afterany", "COMPLETED", True),
    ("afterok", "COMPLETED", True), ("afterok", "FAILED", False), ("afterok", "CANCELLED", False),
    ("afternotok", "FAILED", True), ("afternotok", "TIMEOUT", True),
    ("afternotok", "NODE_FAIL", True), ("afternotok", "OUT_OF_MEMORY", True),
    ("afternotok", "CANCELLED", True), ("afternotok", "COMPLETED", False),
])
def test_dependency_kinds(kind, final, runs):
    st = cluster(NodeSpec("a", 1, 8000))
    assert submit(st, job(1), job(2, dependency=f"{kind}:1")) == {1: "a"}
    assert st.reason(2) == "Dependency"
    got = starts(step(st, [JobEnded(1, final, T0 + 200)]))
    if runs:
        assert got == {2: "a"}
    else:
        assert got == {}
        assert st.reason(2) == "DependencyNeverSatisfied"
        assert "can never start" in st.explain(2) and "scancel 2" in st.explain(2)


def test_dependency_all_of_and_any_of():
    st = cluster(NodeSpec("a", 4, 8000))
    submit(st, job(1, held=True), job(2, held=True),
           job(3, dependency="afterok:1,afterok:2"), job(4, dependency="afterok:1?afterok:2"),
           job(5, dependency="afterok:1:2"))
    step(st, [JobReleased(1)])
    assert starts(step(st, [JobEnded(1, "COMPLETED", T0)])) == {4: "a"}
    assert st.reason(3) == "Dependency" and st.reason(5) == "Dependency"
    step(st, [JobReleased(2)])
    assert starts(step(st, [JobEnded(2, "COMPLETED", T0)])) == {3: "a", 5: "a"}


def test_any_of_never_when_all_fail():
    st = cluster(NodeSpec("a", 4, 8000))
    submit(st, job(1, held=True), job(2, held=True), job(3, dependency="afterok:1?afterok:2"))
    step(st, [JobEnded(1, "CANCELLED", T0)])
    assert st.reason(3) == "Dependency"
    step(st, [JobEnded(2, "FAILED", T0)])
    assert st.reason(3) == "DependencyNeverSatisfied"


def test_dependency_on_unknown_job_is_lifted_and_bad_syntax_never_runs():
    st = cluster(NodeSpec("a", 4, 8000))
    assert submit(st, job(10, dependency="afterok:999"), job(11, dependency="afterany:998")) == {
        10: "a", 11: "a"}
    assert submit(st, job(12, dependency="afterok:1,afterany:2?afterok:3")) == {}
    assert st.reason(12) == "DependencyNeverSatisfied"
    assert "mixes" in st.explain(12)
    assert st.can_ever_run(job(13, dependency="afterwards:1")) == "Job dependency problem"
    assert parse_dependency("7") == parse_dependency("afterany:7")


def test_singleton():
    st = cluster(NodeSpec("a", 4, 8000))
    assert submit(st, job(1, name="sim"), job(2, name="sim", dependency="singleton"),
                  job(3, name="sim", dependency="singleton"), job(4, name="other"),
                  job(5, name="sim", user="bob", dependency="singleton")) == {1: "a", 4: "a", 5: "a"}
    assert st.reason(2) == "Dependency" and st.reason(3) == "Dependency"
    assert "job 1 of user alice named 'sim' is RUNNING" in st.explain(2)
    assert starts(step(st, [JobEnded(1, "COMPLETED", T0)])) == {2: "a"}
    assert starts(step(st, [JobEnded(2, "FAILED", T0)])) == {3: "a"}


def test_singleton_waits_for_an_earlier_pending_job():
    st = cluster(NodeSpec("a", 4, 8000))
    assert submit(st, job(1, name="s", held=True), job(2, name="s", dependency="singleton")) == {}
    assert st.reason(2) == "Dependency"
    assert starts(step(st, [JobReleased(1)])) == {1: "a"}
    assert st.reason(2) == "Dependency"


def test_singleton_sees_a_job_started_earlier_in_the_same_pass():
    st = cluster(NodeSpec("a", 4, 8000))
    assert submit(st, job(2, name="s", dependency="singleton"),
                  job(3, name="s", dependency="singleton", priority=9),
                  job(4, name="s", priority=5)) == {4: "a"}
    assert st.reason(2) == "Dependency" and st.reason(3) == "Dependency"


def test_partition_down_and_back_up():
    st = cluster(NodeSpec("a", 4, 8000), parts=(PartitionSpec("debug", default=True, up=False),))
    assert submit(st, job(1)) == {}
    assert st.reason(1) == "PartitionDown"
    assert starts(step(st, [PartitionSet(PartitionSpec("debug", default=True))])) == {1: "a"}


def test_partition_time_limit():
    st = cluster(NodeSpec("a", 4, 8000), parts=(PartitionSpec("debug", default=True, max_time=60),))
    assert submit(st, job(1, time_limit=61)) == {}
    assert st.reason(1) == "PartitionTimeLimit"
    assert "MaxTime 60 min" in st.explain(1)
    assert st.can_ever_run(job(1, time_limit=61)) is None  # pends, as SLURM's default does
    assert starts(step(st, [JobUpdated(1, time_limit=60)])) == {1: "a"}


def test_req_node_not_avail_lists_unavailable_nodes():
    st = cluster(NodeSpec("node01", 4, 8000), NodeSpec("node02", 4, 8000), NodeSpec("big", 64, 8000))
    step(st, [NodeDown("node01", "Not responding"), NodeDrain("node02", "maintenance")])
    assert submit(st, job(1, nodelist=frozenset({"node01", "node02"}))) == {}
    assert st.reason(1) == "ReqNodeNotAvail, UnavailableNodes:node[01-02]"
    text = st.explain(1)
    assert "node node01 is down (Not responding)" in text and "node node02 is drain (maintenance)" in text
    assert submit(st, job(2, cpus=32)) == {2: "big"}
    step(st, [NodeDown("big", "lost")])
    assert submit(st, job(3, cpus=32)) == {}
    assert st.reason(3) == "ReqNodeNotAvail, UnavailableNodes:big"
    assert starts(step(st, [NodeResume("node02")])) == {1: "node02"}


def test_resources_for_the_first_blocked_job_of_each_partition():
    parts = (PartitionSpec("debug", default=True), PartitionSpec("gpu"))
    st = cluster(NodeSpec("a", 1, 8000), NodeSpec("g", 1, 8000, gpu_ids=(0,), partitions=("gpu",)),
                 parts=parts)
    submit(st, job(1), job(2), job(3), job(4, partition="gpu", gpus=1), job(5, partition="gpu", gpus=1))
    assert st.pending_reasons() == {2: "Resources", 3: "Priority", 5: "Resources"}
    assert "higher-priority jobs in partition debug wait first: 2" in st.explain(3)


# --------------------------------------------------------------------------- backfill


def _backfill_cluster():
    """Node a: 4 CPUs, job 1 holds 2 of them for 60 minutes; job 2 (4 CPUs) must wait."""
    st = cluster(NodeSpec("a", 4, 8000))
    assert submit(st, job(1, cpus=2, time_limit=60), now=T0) == {1: "a"}
    assert submit(st, job(2, cpus=4, time_limit=60), now=T0) == {}
    assert st.expected_start(2) == T0 + 3600
    return st


def test_backfill_starts_a_short_job_that_ends_before_the_reservation():
    st = _backfill_cluster()
    assert submit(st, job(3, cpus=2, time_limit=30), now=T0 + 10) == {3: "a"}
    assert st.expected_start(2) == T0 + 3600
    assert "earliest start" in st.explain(2) and format_time(T0 + 3600) in st.explain(2)


@pytest.mark.parametrize("limit", [61, None])
def test_backfill_refuses_a_job_that_would_delay_the_reservation(limit):
    st = _backfill_cluster()
    assert submit(st, job(3, cpus=2, time_limit=limit), now=T0 + 10) == {}
    assert st.reason(3) == "Priority"
    assert "room now on a is kept for higher-priority jobs' planned starts" in st.explain(3)
    assert starts(step(st, [JobEnded(1, "COMPLETED", T0 + 1000)], now=T0 + 1000)) == {2: "a"}


def test_backfill_allows_a_job_that_leaves_room_for_the_reservation():
    st = cluster(NodeSpec("a", 8, 8000))
    assert submit(st, job(1, cpus=6, time_limit=60), now=T0) == {1: "a"}
    assert submit(st, job(2, cpus=4, time_limit=60), now=T0) == {}
    # job 3 runs past job 2's start, but 2 + 4 CPUs fit on the node then
    assert submit(st, job(3, cpus=2, time_limit=None), now=T0) == {3: "a"}
    assert st.expected_start(2) == T0 + 3600


def test_unlimited_running_jobs_give_no_planned_start():
    st = cluster(NodeSpec("a", 2, 8000))
    submit(st, job(1, cpus=2), job(2, cpus=2))
    assert st.expected_start(2) is None
    assert "no planned start" in st.explain(2)


def test_partition_max_time_is_the_default_limit():
    st = cluster(NodeSpec("a", 2, 8000), parts=(PartitionSpec("debug", default=True, max_time=30),))
    submit(st, job(1, cpus=2), job(2, cpus=2), now=T0)
    assert st.expected_start(2) == T0 + 1800


def test_overdue_job_is_expected_to_end_soon():
    st = cluster(NodeSpec("a", 2, 8000))
    submit(st, job(1, cpus=2, time_limit=1), job(2, cpus=2), now=T0)
    step(st, [], now=T0 + 120)
    assert st.expected_start(2) == T0 + 121


def test_reservation_cap_bounds_planning():
    st = cluster(NodeSpec("a", 1, 8000))
    st.max_reservations = 2
    submit(st, *(job(i, time_limit=10) for i in range(1, 6)), now=T0)
    assert [st.expected_start(i) for i in (2, 3, 4, 5)] == [T0 + 600, T0 + 1200, None, None]
    assert st.pending_reasons() == {2: "Resources", 3: "Priority", 4: "Priority", 5: "Priority"}


# --------------------------------------------------------------------------- nodes


def test_node_down_stops_new_placement_but_keeps_running_jobs():
    st = cluster(NodeSpec("a", 2, 8000), NodeSpec("b", 2, 8000))
    assert submit(st, job(1)) == {1: "a"}
    step(st, [NodeDown("a", "Not responding")])
    assert st.node_state("a") == "down" and st.running() == {1: "a"}
    assert submit(st, job(2, cpus=2)) == {2: "b"}
    assert submit(st, job(3)) == {}
    assert st.reason(3) == "Resources"
    assert starts(step(st, [NodeUp(NodeSpec("a", 2, 8000))])) == {3: "a"}


def test_drain_then_drng_then_drain_and_resume():
    st = cluster(NodeSpec("a", 2, 8000))
    submit(st, job(1))
    step(st, [NodeDrain("a", "maintenance")])
    assert st.node_state("a") == "drng" and st.node_reason("a") == "maintenance"
    assert submit(st, job(2)) == {}
    step(st, [JobEnded(1, "COMPLETED", T0)])
    assert st.node_state("a") == "drain"
    step(st, [NodeUp(NodeSpec("a", 2, 8000))])  # reachable again: still drained
    assert st.node_state("a") == "drain"
    assert starts(step(st, [NodeResume("a")])) == {2: "a"}
    assert st.node_state("a") == "mix"


def test_resize_grows_and_shrinks_without_touching_running_jobs():
    st = cluster(NodeSpec("a", 2, 8000, gpu_ids=(0, 1)))
    submit(st, job(1, cpus=2, gpus=2))
    assert starts(step(st, [NodeUp(NodeSpec("a", 4, 8000, gpu_ids=(0, 1)))])) == {}
    assert submit(st, job(2, cpus=2)) == {2: "a"}
    step(st, [NodeUp(NodeSpec("a", 2, 8000, gpu_ids=(0,)))])  # now over-allocated
    assert st.running() == {1: "a", 2: "a"}
    assert submit(st, job(3)) == {}
    step(st, [JobEnded(2, "COMPLETED", T0)])
    assert submit(st, job(4, gpus=1)) == {}  # GPU 1 is gone, GPU 0 still held by job 1
    assert starts(step(st, [JobEnded(1, "COMPLETED", T0)])) == {3: "a", 4: "a"}


# --------------------------------------------------------------------------- job lifecycle


def test_requeue_frees_and_restarts():
    st = cluster(NodeSpec("a", 1, 8000))
    submit(st, job(1), job(2))
    acts = step(st, [JobRequeued(1, submit_time=T0 + 50)])
    assert starts(acts) == {2: "a"}  # 2 now predates 1's new submit time
    assert st.pending() == [1]
    assert starts(step(st, [JobEnded(2, "COMPLETED", T0)])) == {1: "a"}
    assert "JobRequeued RUNNING -> PENDING" in "\n".join(st._jobs[1].history.lines())


def test_restored_job_is_allocated_without_an_action():
    st = cluster(NodeSpec("g", 4, 8000, gpu_ids=(0, 1)))
    acts = step(st, [JobRestored(job(1, cpus=2, gpus=1, time_limit=60), "g", (1,), T0 - 60)], now=T0)
    assert acts == []
    assert st.running() == {1: "g"} and st.node_usage("g") == (2, 0, (1,))
    assert step(st, [JobSubmitted(job(2, gpus=1))], now=T0) == [StartJob(2, "g", 1, 0, (0,))]
    assert st.expected_start(1) == T0 - 60
    with pytest.raises(InvalidTransition, match="over-allocate node g"):
        st.handle([JobRestored(job(3, cpus=2, gpus=1), "g", (0,), T0)], T0)
    with pytest.raises(InvalidTransition, match="over-allocate node g: it needs 4 CPUs"):
        st.handle([JobRestored(job(4, cpus=4), "g", (), T0)], T0)
    st.validate()


def test_cancel_pending_and_running():
    st = cluster(NodeSpec("a", 1, 8000))
    submit(st, job(1), job(2))
    assert step(st, [JobEnded(2, "CANCELLED", T0)]) == []
    assert st.pending() == [] and st.reason(2) == "None"
    step(st, [JobEnded(1, "CANCELLED", T0)])
    assert st.running() == {} and st.node_state("a") == "idle"
    assert st.explain(1).startswith("job 1 ended CANCELLED")


def test_update_on_running_job_moves_its_expected_end():
    st = cluster(NodeSpec("a", 1, 8000))
    submit(st, job(1, time_limit=10), job(2, time_limit=10), now=T0)
    assert st.expected_start(2) == T0 + 600
    step(st, [JobUpdated(1, time_limit=20)], now=T0)
    assert st.expected_start(2) == T0 + 1200
    step(st, [JobUpdated(1, time_limit=UNSET, nice=3)], now=T0)
    assert st._jobs[1].req.time_limit == 20


def test_can_ever_run():
    st = cluster(NodeSpec("a", 4, 8000, gpu_ids=(0,), features=frozenset({"x"})))
    assert st.can_ever_run(job(1, cpus=4, mem_mb=8000, gpus=1, constraint="x")) is None
    na = "Requested node configuration is not available"
    assert st.can_ever_run(job(1, cpus=5)) == na
    assert st.can_ever_run(job(1, mem_mb=8001)) == na
    assert st.can_ever_run(job(1, gpus=2)) == na
    assert st.can_ever_run(job(1, constraint="y")) == na
    assert st.can_ever_run(job(1, exclude=frozenset({"a"}))) == na
    assert st.can_ever_run(job(1, constraint="x&&")) == "Invalid feature specification"
    assert st.can_ever_run(job(1, partition="nope")) == "Invalid partition name specified"
    assert st.can_ever_run(job(1, partition="")) is None  # the default partition
    assert st.can_ever_run(job(1, nodelist=frozenset({"zz"}))) == "Invalid node name specified"
    step(st, [NodeDown("a", "gone")])
    assert st.can_ever_run(job(1)) is None  # down nodes still count


def test_bad_constraints_reason_for_a_job_no_node_can_run():
    st = cluster(NodeSpec("a", 4, 8000))
    assert submit(st, job(1, cpus=8)) == {}
    assert st.reason(1) == "BadConstraints"
    assert "node a: has 4 CPUs, job needs 8" in st.explain(1)


# --------------------------------------------------------------------------- errors


def test_invalid_transitions_carry_the_history():
    st = cluster(NodeSpec("a", 1, 8000))
    submit(st, job(1))
    with pytest.raises(InvalidTransition) as err:
        st.handle([JobSubmitted(job(1))], T0)
    text = str(err.value)
    assert "JobSubmitted is not allowed for job 1, which is RUNNING" in text
    assert "history of job 1" in text and "StartJob on a PENDING -> RUNNING" in text
    assert isinstance(err.value, FleetError) and err.value.subject == "job 1"
    with pytest.raises(InvalidTransition, match="JobEnded is not allowed for job 9, which is unknown"):
        st.handle([JobEnded(9, "COMPLETED", T0)], T0)
    step(st, [JobEnded(1, "COMPLETED", T0)])
    for ev in (JobEnded(1, "FAILED", T0), JobRequeued(1), JobHeld(1)):
        with pytest.raises(InvalidTransition, match="which is ENDED"):
            st.handle([ev], T0)
    with pytest.raises(InvalidTransition, match="non-final state"):
        submit(st, job(2, held=True))
        st.handle([JobEnded(2, "RUNNING", T0)], T0)
    with pytest.raises(InvalidTransition, match="unknown node 'zz'"):
        st.handle([NodeDrain("zz", "x")], T0)
    st.validate()


def test_an_ended_job_can_come_back():
    """scontrol requeue of a finished job resubmits it; a NODE_FAIL job found
    still running on a returning machine is restored."""
    st = cluster(NodeSpec("a", 1, 8000))
    submit(st, job(1))
    step(st, [JobEnded(1, "COMPLETED", T0)])
    assert step(st, [JobSubmitted(job(1))]) == [StartJob(1, "a", 1, 0, ())]
    step(st, [JobEnded(1, "NODE_FAIL", T0)])
    step(st, [JobRestored(job(1), "a", (), T0)])
    assert st.running() == {1: "a"}
    st.validate()


def test_start_twice_is_invalid():
    st = cluster(NodeSpec("a", 2, 8000))
    submit(st, job(1))
    with pytest.raises(InvalidTransition, match="StartJob is not allowed for job 1, which is RUNNING"):
        st._start(st._jobs[1], "a", (1, 0, 0), T0)  # what a double start inside a pass would do
    st.validate()


def test_history_is_bounded():
    st = cluster(NodeSpec("a", 1, 8000))
    submit(st, job(1, held=True))
    for _ in range(HISTORY_LENGTH):
        step(st, [JobReleased(1), JobHeld(1)])
    assert len(st._jobs[1].history.lines()) == HISTORY_LENGTH


def test_validate_reports_corruption_with_history():
    st = cluster(NodeSpec("a", 2, 8000))
    submit(st, job(1))
    st._nodes["a"].used_cpus = 0
    with pytest.raises(AssertionError, match="history of node a"):
        st.validate()


def test_hostlist_compression():
    assert compress_hostlist(["node03", "node01", "node02", "gpu", "node05"]) == "gpu,node[01-03,05]"
    assert compress_hostlist(["n9", "n10", "n11"]) == "n[9-11]"
    assert compress_hostlist(["a"]) == "a"


def test_unknown_job_queries():
    st = cluster(NodeSpec("a", 1, 8000))
    assert st.reason(5) == "None" and st.expected_start(5) is None
    assert "unknown" in st.explain(5)

"""The controller's per-job path costs fewer messages and steps, and keeps its
guarantees: a ``forget`` waits (at most HOLD_S) to share a machine's next
write; a run whose forget never reached its agent is forgotten again (moved
aside, not deleted) when the agent reports it; ``started`` needs no step of
its own; a job too short for samples costs no ``samples`` request; a full
fleet's submissions cost the scheduler no walk over the pending jobs.

Driven by step(now) in-process against FakeTransport machines (no shared
filesystem), so every message the controller writes is seen.
"""

from __future__ import annotations

import time
from pathlib import Path

from stepping import pump, submit

from fleetslurm.config import FleetConfig, MachineConfig
from fleetslurm.ctld.loop import Controller
from fleetslurm.ctld.nodelink import HOLD_S, Held
from fleetslurm.paths import StatePaths
from fleetslurm.scheduler import JobSubmitted, NodeUp, PartitionSet, PartitionSpec
from fleetslurm.scheduler.events import JobRequest, NodeSpec
from fleetslurm.scheduler.state import SchedulerState
from fleetslurm.transport.fake import FakeTransport


def _fleet(tmp_path: Path, auto_end: bool = True) -> tuple[Controller, FakeTransport, list]:
    cfg = FleetConfig(cluster_name="perjob", heartbeat_interval=30, node_timeout=90, machines={
        "m1": MachineConfig(hostname="127.0.0.2", cpus=2, memory_gb=1, weight=1)})
    fake = FakeTransport("m1", workdir="/fake/m1", auto_end=auto_end)
    clock = [time.time()]
    ctl = Controller(cfg, StatePaths(tmp_path / "home"), transports={"m1": fake})
    ctl.start(clock[0])
    pump(ctl, lambda: ctl.sched.node_state("m1") == "idle", clock)
    return ctl, fake, clock


def _ops(fake: FakeTransport, op: str) -> list[dict]:
    return [r for r in fake.requests if r.get("op") == op]


def _true(ctl, clock: list, work: Path) -> int:
    """Submit a `true` job with no output file; its id."""
    return submit(ctl, clock[0], {"wrap": "true", "output": "/dev/null"},
                  script="#!/bin/sh\ntrue\n", cwd=str(work))


def test_a_forget_waits_for_the_next_write_or_hold_s(tmp_path: Path) -> None:
    ctl, fake, clock = _fleet(tmp_path)
    try:
        work = tmp_path / "work"
        work.mkdir()
        first = _true(ctl, clock, work)
        pump(ctl, lambda: ctl.store.task(first)["state"] == "COMPLETED", clock)
        key = ctl.store.task(first)["run_key"]
        # ended, its output home, the end committed: the forget is held
        assert not _ops(fake, "forget") and len(ctl._held) == 1
        # the next job's launch takes it along, in the same write, first
        second = _true(ctl, clock, work)
        pump(ctl, lambda: _ops(fake, "launch")[-1]["key"].startswith(f"{second}."), clock)
        ops = [r.get("op") for r in fake.requests]
        assert ops.index("forget") == ops.index("launch", ops.index("launch") + 1) - 1
        assert _ops(fake, "forget")[0]["key"] == key
        # nothing else to send: the second's forget goes alone after HOLD_S
        pump(ctl, lambda: ctl.store.task(second)["state"] == "COMPLETED", clock)
        assert len(_ops(fake, "forget")) == 1
        ctl.step(clock[0] + HOLD_S / 2)
        assert len(_ops(fake, "forget")) == 1
        clock[0] += HOLD_S
        pump(ctl, lambda: len(_ops(fake, "forget")) == 2, clock)
        assert not fake.jobs  # the agent forgot both runs
    finally:
        ctl.close()


def test_a_run_whose_forget_was_lost_is_moved_aside_when_reported_again(tmp_path: Path) -> None:
    ctl, fake, clock = _fleet(tmp_path)
    try:
        work = tmp_path / "work"
        work.mkdir()
        job = _true(ctl, clock, work)
        pump(ctl, lambda: ctl.store.task(job)["state"] == "COMPLETED", clock)
        key = ctl.store.task(job)["run_key"]
        ended = fake.jobs[key]
        assert ended is not None
        # the controller stops with the forget held (a kill -9 loses it):
        # a new controller on the same store meets the agent, which still
        # reports the run ended
        ctl._held.drain()
        ctl.close()
        fake.drop()
        fake.requests.clear()
        ctl = Controller(ctl.config, ctl.paths, transports={"m1": fake})
        ctl.start(clock[0])
        pump(ctl, lambda: any(r.get("key") == key for r in _ops(fake, "forget")), clock,
             tick=HOLD_S)
        forget = next(r for r in _ops(fake, "forget") if r["key"] == key)
        assert forget.get("keep") is True  # moved aside there, not deleted
        task = ctl.store.task(job)
        assert (task["state"], task["collected"]) == ("COMPLETED", 1)  # nothing redone
        assert len(ctl.store.steps_of(job)) == 1
    finally:
        ctl.close()


def test_started_waits_for_a_step_and_short_runs_ask_no_samples(tmp_path: Path) -> None:
    ctl, fake, clock = _fleet(tmp_path)
    try:
        work = tmp_path / "work"
        work.mkdir()
        fake.requests.clear()  # (the first heartbeat's samples request)
        job = _true(ctl, clock, work)
        pump(ctl, lambda: ctl.store.task(job)["state"] == "COMPLETED", clock)
        key = ctl.store.task(job)["run_key"]
        # the pid came in `started`, taken at a later step than its own
        pump(ctl, lambda: ctl.store.step(key)["pid"] == 4242, clock)
        # the fake run took no time: no samples asked at its end (the
        # heartbeat's are 30 s apart, and none was due yet)
        assert not _ops(fake, "samples")
    finally:
        ctl.close()


def test_held_messages_go_with_a_write_and_drain() -> None:
    held = Held()
    writes = {"m1": [{"op": "forget", "key": "1.0.x"}], "m2": [{"op": "forget", "key": "2.0.x"}]}
    held.ride_along(writes, 100.0)
    assert writes == {} and len(held) == 2 and held.next_due() == 100.0 + HOLD_S
    writes = {"m1": [{"op": "launch", "key": "3.0.x"}]}
    held.ride_along(writes, 100.1)
    assert [m["key"] for m in writes["m1"]] == ["1.0.x", "3.0.x"]
    writes = {}
    held.ride_along(writes, 100.0 + HOLD_S)
    assert [m["key"] for m in writes["m2"]] == ["2.0.x"] and len(held) == 0
    held.ride_along({"m1": [{"op": "forget", "key": "4.0.x"}]}, 200.0)
    assert held.drain() == {"m1": [{"op": "forget", "key": "4.0.x"}]} and len(held) == 0


def _req(job_id: int, cpus: int = 1) -> JobRequest:
    return JobRequest(job_id=job_id, user="u", partition="p", cpus=cpus, mem_mb=1,
                      time_limit=10, submit_time=float(job_id))


def test_a_full_fleets_submissions_skip_the_walk_but_not_the_full_pass() -> None:
    st = SchedulerState()
    st.handle([PartitionSet(PartitionSpec(name="p", default=True)),
               NodeUp(NodeSpec(name="n", cpus=1, mem_mb=100, partitions=("p",)))], 0.0)
    started = st.handle([JobSubmitted(_req(1))], 0.0, full=False)
    assert [a.job_id for a in started] == [1]  # room: the pass runs and starts it
    assert st.handle([JobSubmitted(_req(2))], 0.1, full=False) == []
    assert st.pending_reasons() == {2: "Resources"}  # worked out on demand
    assert st.expected_start(2) is None  # no walk planned it yet
    assert st.handle([], 0.5) == []  # the full pass plans it
    assert st.expected_start(2) is not None

"""Node health: not responding (three heartbeats), then down (node_timeout).

A machine that stops answering first gets no new jobs and keeps its own;
only after ``node_timeout`` is it DOWN and its jobs requeued. A run given up
for lost that turns out to have ended before its job's new run started is the
job's result (the job is not run again); one still alive when its machine
returns is named in the agent's hello, and the real agent stops it before
anything else.

The controller tests drive step(now) in-process against FakeTransport
machines (the clock is exact); the agent test runs the real agent.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Optional

import pytest
from stepping import pump, submit
from test_agent import AgentClient, alive, kill_leftovers, spec

from fleetslurm.config import FleetConfig, MachineConfig
from fleetslurm.ctld.loop import Controller
from fleetslurm.errors import NodeUnreachable
from fleetslurm.paths import StatePaths
from fleetslurm.transport.fake import FakeTransport

HB = 0.5
TIMEOUT = 6.0


class FreezableFake(FakeTransport):
    """A machine that can be frozen: its agent answers nothing (the answers
    come out at ``thaw``) and a new connection fails meanwhile. Its agent
    stops the runs a hello names ``unwanted``, as the real one does."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.frozen = False
        self.held: list[dict] = []

    def answer(self, req: dict) -> list[dict]:
        if req.get("op") == "hello":
            for key in req.get("unwanted") or ():
                if key in self.jobs and self.jobs[key] is None:
                    self._ended(key, "CANCELLED", 0, 9)
        out = super().answer(req)
        if self.frozen:
            self.held.extend(out)
            return []
        return out

    def start_agent(self):  # type: ignore[no-untyped-def]
        if self.frozen:
            raise NodeUnreachable(f"node {self.node}: timed out (frozen)", self.node)
        return super().start_agent()

    def freeze(self) -> None:
        self.frozen = True

    def thaw(self) -> None:
        self.frozen = False
        held, self.held = self.held, []
        for ev in held:
            self.push(ev)

    def result(self, key: str, state: str, start: float, end: float) -> None:
        """The run ``key`` ended (on the machine, unreported yet)."""
        self.jobs[key] = {"key": key, "pid": 4242, "start_time": start, "end_time": end,
                          "state": state, "exit_code": 0, "signal": 0, "user_cpu": 0.0,
                          "system_cpu": 0.0, "max_rss_kb": 0, "error": None}


class Fleet:
    """Two machines (m1 preferred), a controller on a clock of our own."""

    def __init__(self, tmp_path: Path, m2: bool = True, priority=None) -> None:
        names = ["m1", "m2"] if m2 else ["m1"]
        self.cfg = FleetConfig(cluster_name="health", heartbeat_interval=HB, node_timeout=TIMEOUT,
                               priority=priority,
                               machines={n: MachineConfig(hostname=f"127.0.0.{i + 2}", cpus=1,
                                                          memory_gb=1, weight=i + 1)
                                         for i, n in enumerate(names)})
        self.fakes = {n: FreezableFake(n, workdir=f"/fake/{n}", auto_end=False) for n in names}
        self.clock = [time.time()]
        self.work = tmp_path / "work"
        self.work.mkdir()
        self.ctl = Controller(self.cfg, StatePaths(tmp_path / "home"), transports=self.fakes)
        self.ctl.start(self.clock[0])
        self.pump(lambda: all(self.ctl.sched.node_state(n) == "idle" for n in names))

    def pump(self, until, tick: float = 0.1) -> None:  # type: ignore[no-untyped-def]
        pump(self.ctl, until, self.clock, tick)

    def run_for(self, seconds: float, tick: float = 0.1) -> None:
        end = self.clock[0] + seconds
        self.pump(lambda: self.clock[0] >= end, tick)

    def submit(self, **options: object) -> int:
        return submit(self.ctl, self.clock[0], {"wrap": "work", **options},
                      script="#!/bin/sh\nwork\n", cwd=str(self.work), script_name="wrap")

    def task(self, job: int) -> dict:
        return self.ctl.store.task(job)

    def node(self, name: str) -> dict:
        self.ctl._snapshot_nodes(self.clock[0])
        return next(n for n in self.ctl.node_snapshot if n["name"] == name)

    def starts(self, job: int) -> int:
        return self.ctl.store.count_events(job, "start")

    def hellos(self, name: str) -> list[dict]:
        return [r for r in self.fakes[name].requests if r.get("op") == "hello"]

    def close(self) -> None:
        self.ctl.close()


def _running_on_m1(f: Fleet, **options: object) -> tuple[int, str]:
    job = f.submit(**options)
    f.pump(lambda: f.task(job)["state"] == "RUNNING")
    task = f.task(job)
    assert task["node"] == "m1"
    return job, task["run_key"]


def test_silent_past_three_heartbeats_is_not_responding_and_keeps_its_job(tmp_path) -> None:
    f = Fleet(tmp_path)
    try:
        job, key = _running_on_m1(f)
        f.fakes["m1"].freeze()
        f.run_for(3 * HB + 1)
        # not responding: sinfo's "*", what it does unchanged, no DOWN, no requeue
        rec = f.node("m1")
        assert (rec["state"], rec["responding"]) == ("alloc", False)
        assert (f.task(job)["state"], f.task(job)["restart_count"]) == ("RUNNING", 0)
        # no new job goes there (m2 is heavier, but m1 does not answer; m1 is
        # full anyway: so a job pinned to m1 waits)
        other = f.submit()
        f.pump(lambda: f.task(other)["state"] == "RUNNING")
        assert f.task(other)["node"] == "m2"
        f.run_for(TIMEOUT - 3 * HB - 2)  # still inside node_timeout
        assert f.task(job)["state"] == "RUNNING" and f.ctl.sched.node_state("m1") == "down"
        # it answers again before node_timeout: back, its job never requeued
        f.fakes["m1"].thaw()
        f.pump(lambda: f.node("m1")["responding"])
        f.run_for(1)
        assert f.ctl.sched.node_state("m1") == "alloc"
        f.fakes["m1"].end(key)
        f.pump(lambda: f.task(job)["state"] == "COMPLETED")
        assert (f.task(job)["restart_count"], f.starts(job)) == (0, 1)
        assert f.hellos("m1") and all(not h["unwanted"] for h in f.hellos("m1"))
    finally:
        f.close()


def test_silent_past_node_timeout_is_down_and_the_old_run_is_named_at_hello(tmp_path) -> None:
    f = Fleet(tmp_path)
    try:
        job, key = _running_on_m1(f)
        f.fakes["m1"].freeze()
        start = f.clock[0]
        f.pump(lambda: f.task(job)["restart_count"] == 1)
        assert f.clock[0] - start > TIMEOUT
        assert f.node("m1")["state"] == "down" and f.node("m1")["responding"] is False
        f.pump(lambda: f.task(job)["state"] == "RUNNING")
        new_key = f.task(job)["run_key"]
        assert f.task(job)["node"] == "m2" and new_key != key
        # m1 returns with the old run still alive: the hello names it, the
        # agent stops it, and it does not count
        f.fakes["m1"].thaw()
        f.pump(lambda: any(key in h["unwanted"] for h in f.hellos("m1")), tick=0.5)
        f.pump(lambda: f.ctl.sched.node_state("m1") == "idle")
        assert f.fakes["m1"].jobs.get(key) is None or \
            f.fakes["m1"].jobs[key]["state"] == "CANCELLED"
        f.fakes["m2"].end(new_key)
        f.pump(lambda: f.task(job)["state"] == "COMPLETED")
        assert f.task(job)["run_key"] == new_key and f.starts(job) == 2
    finally:
        f.close()


def _lost_then_back(f: Fleet, job: int, key: str, ended: Optional[float]) -> None:
    """m1 freezes past node_timeout (the job is requeued); the old run ended
    there at ``ended``; m1 comes back and says hello."""
    start = f.task(job)["start_time"]
    f.fakes["m1"].freeze()
    f.pump(lambda: f.task(job)["restart_count"] == 1)
    if ended is not None:
        f.fakes["m1"].result(key, "COMPLETED", start, ended)


def test_a_lost_run_that_completed_is_the_result_of_a_job_still_pending(tmp_path) -> None:
    f = Fleet(tmp_path, m2=False)
    try:
        job, key = _running_on_m1(f)
        _lost_then_back(f, job, key, ended=f.clock[0] + 1)  # during the outage
        f.run_for(2)
        assert f.task(job)["state"] == "PENDING"  # nowhere to run: m1 is down
        f.fakes["m1"].thaw()
        f.pump(lambda: f.task(job)["state"] == "COMPLETED", tick=0.5)
        task = f.task(job)
        assert (task["run_key"], task["node"], f.starts(job)) == (key, "m1", 1)
        assert f.ctl.store.count_events(job, "reconciled") == 1
        assert f.ctl.store.step(key)["state"] == "COMPLETED"
        f.run_for(3)  # and it is not started again
        assert f.starts(job) == 1 and f.ctl.sched.node_state("m1") == "idle"
    finally:
        f.close()


def test_a_lost_run_taken_as_the_result_is_that_run_and_is_charged_once(tmp_path) -> None:
    """The run taken back gets its own allocation and restart count again (the
    requeue had cleared them), and fair share charges its use once: the
    requeue's charge of the run so far is taken back when its end charges it."""
    from fleetslurm.config import PriorityConfig
    from fleetslurm.store import Store

    f = Fleet(tmp_path, m2=False, priority=PriorityConfig(PriorityWeightFairshare=1000))
    try:
        job, key = _running_on_m1(f, mem="300M")
        first = f.task(job)
        start = first["start_time"]
        ended = f.clock[0] + TIMEOUT + 3  # after the requeue
        _lost_then_back(f, job, key, ended=ended)
        assert Store(f.ctl.paths.db).usage()  # the requeue charged the run so far
        f.run_for(2)
        f.fakes["m1"].thaw()
        f.pump(lambda: f.task(job)["state"] == "COMPLETED", tick=0.5)
        task = f.task(job)
        assert (task["run_key"], task["restart_count"]) == (key, 0)
        assert (task["alloc_cpus"], task["alloc_mem_mb"], task["gpu_ids"]) == (1, 300, [])
        assert first["alloc_mem_mb"] == 300
        [(raw, _as_of)] = Store(f.ctl.paths.db).usage().values()
        assert raw == pytest.approx(ended - start, rel=0.01)  # once, not twice
    finally:
        f.close()


def test_a_lost_run_that_completed_before_the_new_run_started_stops_the_new_one(
        tmp_path) -> None:
    f = Fleet(tmp_path)
    try:
        job, key = _running_on_m1(f)
        ended = f.clock[0] + 1
        _lost_then_back(f, job, key, ended=ended)
        f.pump(lambda: f.task(job)["state"] == "RUNNING")
        new = f.task(job)
        assert new["node"] == "m2" and new["start_time"] > ended
        f.fakes["m1"].thaw()
        f.pump(lambda: f.task(job)["state"] == "COMPLETED", tick=0.5)
        task = f.task(job)
        assert (task["run_key"], task["node"]) == (key, "m1")
        # the second run is stopped at once and does not count
        cancels = [r for r in f.fakes["m2"].requests if r.get("op") == "cancel"]
        assert [(c["key"], c["signal"]) for c in cancels] == [(new["run_key"], 9)]
        f.pump(lambda: f.ctl.sched.node_state("m2") == "idle")
        assert f.ctl.store.step(new["run_key"])["state"] == "CANCELLED"
        assert f.task(job)["state"] == "COMPLETED"
        assert not (f.work / f"slurm-{job}.out").exists() or \
            "CANCELLED" not in (f.work / f"slurm-{job}.out").read_text()
    finally:
        f.close()


def test_a_lost_run_that_completed_after_the_new_run_started_is_not_taken(tmp_path) -> None:
    f = Fleet(tmp_path)
    try:
        job, key = _running_on_m1(f)
        _lost_then_back(f, job, key, ended=None)
        f.pump(lambda: f.task(job)["state"] == "RUNNING")
        new = f.task(job)
        f.fakes["m1"].result(key, "COMPLETED", new["start_time"] - 10, new["start_time"] + 1)
        f.fakes["m1"].thaw()
        f.pump(lambda: f.ctl.sched.node_state("m1") == "idle", tick=0.5)
        f.run_for(1)
        assert f.task(job)["run_key"] == new["run_key"] and f.task(job)["state"] == "RUNNING"
        assert not [r for r in f.fakes["m2"].requests if r.get("op") == "cancel"]
        # said where an audit looks (this is the case nothing can prevent)
        assert f.ctl.store.count_events(job, "ran-twice") == 1
    finally:
        f.close()


def test_the_agent_stops_an_unwanted_run_at_hello(tmp_path: Path) -> None:
    """The real agent: a run named unwanted in the hello is killed before it
    can finish (CANCELLED); one that had already ended keeps its result."""
    workdir = tmp_path / "w"
    marks = tmp_path / "marks"
    agent = AgentClient(workdir)
    try:
        started = agent.launch("31.0", spec(f"#!/bin/sh\necho start >> {marks}\nsleep 3\n"
                                            f"echo done >> {marks}\n", tmp_path))
        agent.launch("32.0", spec("#!/bin/sh\nexit 0\n", tmp_path))
        assert agent.ended("32.0")["state"] == "COMPLETED"
        agent.proc.kill()  # the link drops; the jobs run on
        agent.close()
        agent = AgentClient(workdir)
        hello = agent.request({"op": "hello", "unwanted": ["31.0", "32.0", "99.0", 5, "../x"]})
        jobs = {j["key"]: j for j in hello["jobs"]}
        assert jobs["31.0"]["status"] == "ended"
        assert jobs["31.0"]["result"]["state"] == "CANCELLED"
        assert jobs["32.0"]["result"]["state"] == "COMPLETED"
        assert not alive(started["pid"])
        sup = json.loads((workdir / "jobs" / "31.0" / "supervisor.json").read_text())
        assert not alive(sup["pid"])
        time.sleep(3.5)
        assert marks.read_text() == "start\n"  # never "done"
        result = json.loads((workdir / "jobs" / "31.0" / "result.json").read_text())
        assert result["state"] == "CANCELLED"
    finally:
        agent.close()
        kill_leftovers(workdir)


def test_node_timeout_is_checked_against_slurms_range(tmp_path: Path) -> None:
    from fleetslurm.config import load_config
    from fleetslurm.errors import ConfigError

    for bad in (0, -5, 70000, "soon"):
        path = tmp_path / "fleet_config.json"
        path.write_text(json.dumps({"node_timeout": bad, "machines": {"m1": {}}}))
        try:
            load_config(path)
        except ConfigError as exc:
            assert f"node_timeout: must be a number of seconds above 0, at most 65533" \
                   f" (SLURM's SlurmdTimeout), got {json.dumps(bad)}" in str(exc)
        else:
            raise AssertionError(f"node_timeout {bad!r} accepted")
    path.write_text(json.dumps({"node_timeout": 30, "machines": {"m1": {}}}))
    assert load_config(path).node_timeout == 30


def test_a_drained_machine_that_stops_answering_and_returns_stays_drained(tmp_path) -> None:
    f = Fleet(tmp_path)
    try:
        job, key = _running_on_m1(f)
        from fleetslurm.ctld.inbox import Pending, Request

        p = Pending("update_node", {"nodes": "m1", "state": "DRAIN", "reason": "fans"},
                     os.getuid())
        f.ctl.inbox.put(Request(p))
        f.pump(lambda: p.event.is_set())
        assert p.error is None
        f.fakes["m1"].freeze()
        f.run_for(3 * HB + 1)
        rec = f.node("m1")
        assert (rec["state"], rec["responding"]) == ("drng", False)
        f.fakes["m1"].thaw()
        f.pump(lambda: f.node("m1")["responding"])
        f.run_for(1)
        assert f.ctl.sched.node_state("m1") == "drng"
        assert (f.task(job)["state"], f.task(job)["restart_count"]) == ("RUNNING", 0)
    finally:
        f.close()


def test_a_job_cancelled_on_a_machine_that_does_not_answer_stays_cancelled(tmp_path) -> None:
    """scancel of a job on a not-responding machine is CANCELLED at once, and
    node_timeout later the job is not requeued and run again (the cancel
    stood as a flag on a RUNNING job, and NODE_FAIL requeued it); the run is
    stopped once the machine answers again."""
    from fleetslurm.ctld.inbox import Pending, Request

    f = Fleet(tmp_path)
    try:
        job, key = _running_on_m1(f)
        f.fakes["m1"].freeze()
        f.run_for(3 * HB + 1)
        assert f.node("m1")["responding"] is False
        p = Pending("cancel", {"ids": [str(job)]}, os.getuid())
        f.ctl.inbox.put(Request(p))
        f.run_for(0.2)
        assert p.error is None
        assert f.task(job)["state"] == "CANCELLED"
        f.run_for(TIMEOUT + 1)  # past node_timeout: m1 is DOWN
        task = f.task(job)
        assert (task["state"], task["restart_count"], f.starts(job)) == ("CANCELLED", 0, 1)
        f.fakes["m1"].thaw()
        f.pump(lambda: f.node("m1")["responding"], 0.1)
        f.run_for(1)
        cancels = [r for r in f.fakes["m1"].requests if r.get("op") == "cancel"]
        unwanted = [k for h in f.hellos("m1") for k in h.get("unwanted") or ()]
        assert key in [r.get("key") for r in cancels] + unwanted
        assert f.task(job)["state"] == "CANCELLED" and f.starts(job) == 1
    finally:
        f.close()

"""After a controller restart, a machine that is slow to connect keeps its jobs.

A job runs on m1; the controller stops; a new one starts, and m1's SSH
connection takes longer than three heartbeats. Its job must not be failed and
requeued for that (it would run twice): the machine has START_GRACE_S to say
hello, and the hello reconciles the job. A machine silent past the grace is
DOWN and its job requeued, as before.

Driven by step(now) in-process against FakeTransport machines, so the clock
is exact.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from stepping import pump, submit

from fleetslurm.config import FleetConfig, MachineConfig
from fleetslurm.ctld.loop import Controller
from fleetslurm.ctld.health import START_GRACE_S
from fleetslurm.paths import StatePaths
from fleetslurm.transport.fake import FakeTransport

HB = 0.5


class SlowFake(FakeTransport):
    """A machine whose connection completes only when ``gate`` is set."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()

    def start_agent(self):  # type: ignore[no-untyped-def]
        self.gate.wait(30)
        return super().start_agent()


def _config() -> FleetConfig:
    return FleetConfig(cluster_name="grace", heartbeat_interval=HB, node_timeout=2, machines={
        "m1": MachineConfig(hostname="127.0.0.2", cpus=1, memory_gb=1, weight=1),
        "m2": MachineConfig(hostname="127.0.0.3", cpus=1, memory_gb=1, weight=2)})


def _running_job(tmp_path: Path, clock: list) -> tuple[int, str]:
    """A first controller starts a job on m1, then stops (the job runs on)."""
    fakes = {n: FakeTransport(n, workdir=f"/fake/{n}", auto_end=False) for n in ("m1", "m2")}
    ctl = Controller(_config(), StatePaths(tmp_path / "home"), transports=fakes)
    ctl.start(clock[0])
    try:
        pump(ctl, lambda: all(ctl.sched.node_state(n) == "idle" for n in ("m1", "m2")), clock)
        job = submit(ctl, clock[0], {"wrap": "sleep 60"}, script="#!/bin/sh\n",
                     cwd=str(tmp_path), script_name="wrap")
        pump(ctl, lambda: ctl.store.task(job)["state"] == "RUNNING", clock)
        task = ctl.store.task(job)
        assert task["node"] == "m1"
        return job, task["run_key"]
    finally:
        ctl.close()


class Restarted:
    """The second controller, m1 (slow to connect) still running the job."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = [time.time()]
        self.job, self.run_key = _running_job(tmp_path, self.clock)
        self.slow = SlowFake("m1", workdir="/fake/m1", auto_end=False)
        self.slow.jobs[self.run_key] = None  # still running there
        fakes = {"m1": self.slow, "m2": FakeTransport("m2", workdir="/fake/m2", auto_end=False)}
        self.ctl = Controller(_config(), StatePaths(tmp_path / "home"), transports=fakes)
        self.ctl.start(self.clock[0])
        self.start = self.clock[0]

    def pump(self, until, tick: float) -> None:
        pump(self.ctl, until, self.clock, tick)

    def task(self) -> dict:
        return self.ctl.store.task(self.job)


@pytest.fixture
def restarted(tmp_path: Path):
    r = Restarted(tmp_path)
    yield r
    r.slow.gate.set()
    r.ctl.close()


def test_a_machine_slow_to_connect_after_a_restart_keeps_its_job(restarted) -> None:
    r = restarted
    # well past three heartbeats, still inside the grace: nothing is failed
    r.pump(lambda: r.clock[0] - r.start > 4 * 3 * HB, 0.1)
    task = r.task()
    assert (task["state"], task["run_key"], task["restart_count"]) == ("RUNNING", r.run_key, 0)
    assert r.clock[0] - r.start < START_GRACE_S
    # the connection completes: hello reports the run, m1 is back, nothing requeued
    r.slow.gate.set()
    r.pump(lambda: r.ctl.sched.node_state("m1") not in ("down", None), 0.1)
    for _ in range(20):
        r.clock[0] += 0.1
        r.ctl.step(r.clock[0])
    task = r.task()
    assert (task["state"], task["run_key"], task["restart_count"]) == ("RUNNING", r.run_key, 0)
    # once heard from, the three-heartbeat rule holds again
    assert r.ctl.links["m1"].last_heard is not None


def test_a_machine_silent_past_the_grace_is_down_and_its_job_requeued(restarted) -> None:
    r = restarted
    r.pump(lambda: r.task()["restart_count"] == 1, 0.25)
    assert r.clock[0] - r.start > START_GRACE_S
    assert r.ctl.sched.node_state("m1") == "down"
    assert r.ctl.store.steps_of(r.job)[0]["state"] == "NODE_FAIL"


def _listed(ctl: Controller, name: str) -> dict:
    return next(n for n in ctl.node_snapshot if n["name"] == name)


def test_a_machine_not_heard_from_since_the_start_is_unknown_then_down(restarted) -> None:
    """sinfo shows a machine that has not said hello since the controller
    started as ``unk`` (SLURM 22.05 shows an unregistered node so, without
    ``*``), not down; past the grace it is DOWN and not responding."""
    r = restarted
    r.pump(lambda: r.clock[0] - r.start > 3 * 3 * HB, 0.1)
    m1 = _listed(r.ctl, "m1")
    assert (m1["state"], m1["responding"], m1["reason"]) == ("unk", True, "")
    r.pump(lambda: r.task()["restart_count"] == 1, 0.25)
    m1 = _listed(r.ctl, "m1")
    assert (m1["state"], m1["responding"]) == ("down", False)
    assert m1["reason"]


def test_machines_are_listed_from_the_start(tmp_path: Path) -> None:
    """The first request after a start sees every machine (not an empty list
    that sinfo prints as one "0 n/a" row and a script reads as "all idle")."""
    slow = {n: SlowFake(n, workdir=f"/fake/{n}", auto_end=False) for n in ("m1", "m2")}
    ctl = Controller(_config(), StatePaths(tmp_path / "home"), transports=slow)
    try:
        ctl.start(time.time())
        listed = {n["name"]: (n["state"], n["responding"]) for n in ctl.node_snapshot}
        assert listed == {"m1": ("unk", True), "m2": ("unk", True)}
    finally:
        for fake in slow.values():
            fake.gate.set()
        ctl.close()

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

import os
import threading
import time
from pathlib import Path

from fleetslurm.config import FleetConfig, MachineConfig
from fleetslurm.controller import Controller, _Pending
from fleetslurm.handlers import START_GRACE_S
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
    return FleetConfig(cluster_name="grace", heartbeat_interval=HB, machines={
        "m1": MachineConfig(hostname="127.0.0.2", cpus=1, memory_gb=1, weight=1),
        "m2": MachineConfig(hostname="127.0.0.3", cpus=1, memory_gb=1, weight=2)})


def _pump(ctl: Controller, until, clock: list, tick: float, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while not until():
        assert time.time() < deadline, "condition not reached"
        clock[0] += tick
        ctl.step(clock[0])
        time.sleep(0.01)


def _running_job(tmp_path: Path, clock: list) -> tuple[int, str]:
    """A first controller starts a job on m1, then stops (the job runs on)."""
    fakes = {n: FakeTransport(n, workdir=f"/fake/{n}", auto_end=False) for n in ("m1", "m2")}
    ctl = Controller(_config(), StatePaths(tmp_path / "home"), transports=fakes)
    ctl.start(clock[0])
    try:
        _pump(ctl, lambda: all(ctl.sched.node_state(n) == "idle" for n in ("m1", "m2")),
              clock, 0.0)
        p = _Pending("submit", {"options": {"wrap": "sleep 60"}, "script": "#!/bin/sh\n",
                                "script_args": [], "env": {"PATH": "/usr/bin:/bin"},
                                "cwd": str(tmp_path), "script_name": "wrap"}, os.getuid())
        ctl.inbox.put(("rpc", p))
        ctl.step(clock[0])
        assert p.error is None, p.error
        job = p.result["job_id"]
        _pump(ctl, lambda: ctl.store.task(job)["state"] == "RUNNING", clock, 0.0)
        task = ctl.store.task(job)
        assert task["node"] == "m1"
        return job, task["run_key"]
    finally:
        ctl.close()


def _restart(tmp_path: Path, clock: list, run_key: str) -> tuple[Controller, SlowFake]:
    slow = SlowFake("m1", workdir="/fake/m1", auto_end=False)
    slow.jobs[run_key] = None  # still running there
    fakes = {"m1": slow, "m2": FakeTransport("m2", workdir="/fake/m2", auto_end=False)}
    ctl = Controller(_config(), StatePaths(tmp_path / "home"), transports=fakes)
    ctl.start(clock[0])
    return ctl, slow


def test_a_machine_slow_to_connect_after_a_restart_keeps_its_job(tmp_path: Path) -> None:
    clock = [time.time()]
    job, run_key = _running_job(tmp_path, clock)
    ctl, slow = _restart(tmp_path, clock, run_key)
    try:
        # well past three heartbeats, still inside the grace: nothing is failed
        start = clock[0]
        _pump(ctl, lambda: clock[0] - start > 4 * 3 * HB, clock, 0.1)
        task = ctl.store.task(job)
        assert (task["state"], task["run_key"], task["restart_count"]) == ("RUNNING", run_key, 0)
        assert clock[0] - start < START_GRACE_S
        # the connection completes: hello reports the run, m1 is back, nothing requeued
        slow.gate.set()
        _pump(ctl, lambda: ctl.sched.node_state("m1") not in ("down", None), clock, 0.1)
        for _ in range(20):
            clock[0] += 0.1
            ctl.step(clock[0])
        task = ctl.store.task(job)
        assert (task["state"], task["run_key"], task["restart_count"]) == ("RUNNING", run_key, 0)
        # once heard from, the three-heartbeat rule holds again
        assert ctl.links["m1"].last_heard is not None
    finally:
        slow.gate.set()
        ctl.close()


def test_a_machine_silent_past_the_grace_is_down_and_its_job_requeued(tmp_path: Path) -> None:
    clock = [time.time()]
    job, run_key = _running_job(tmp_path, clock)
    ctl, slow = _restart(tmp_path, clock, run_key)
    try:
        start = clock[0]
        _pump(ctl, lambda: ctl.store.task(job)["restart_count"] == 1, clock, 0.25)
        assert clock[0] - start > START_GRACE_S
        assert ctl.sched.node_state("m1") == "down"
        assert ctl.store.steps_of(job)[0]["state"] == "NODE_FAIL"
    finally:
        slow.gate.set()
        ctl.close()

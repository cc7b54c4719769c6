"""A requeued job's earlier run reports late, from a machine that came back.

The controller is driven by step(now) in-process against FakeTransport
machines (no shared filesystem), so the outage is exact: the first machine
stops answering, its job is NODE_FAIL and requeued onto the second, then the
first machine says hello again with the earlier run ended. That run's output
must come home (SLURM appends every run to the same file), the agent must be
told to forget that run (not the current one), and the current run must be
left alone.
"""

from __future__ import annotations

import time
from pathlib import Path

from stepping import pump, submit

from fleetslurm.config import FleetConfig, MachineConfig
from fleetslurm.ctld.loop import Controller
from fleetslurm.errors import NodeUnreachable
from fleetslurm.paths import JobPaths, StatePaths
from fleetslurm.transport.fake import FakeTransport


def test_earlier_run_output_comes_home_once_and_only_it_is_forgotten(tmp_path: Path) -> None:
    cfg = FleetConfig(cluster_name="late", heartbeat_interval=1, node_timeout=3, machines={
        "m1": MachineConfig(hostname="127.0.0.2", cpus=1, memory_gb=1, weight=1),
        "m2": MachineConfig(hostname="127.0.0.3", cpus=1, memory_gb=1, weight=2)})
    fakes = {n: FakeTransport(n, workdir=f"/fake/{n}", auto_end=False) for n in cfg.machines}
    clock = [time.time()]
    ctl = Controller(cfg, StatePaths(tmp_path / "home"), transports=fakes)
    ctl.start(clock[0])
    try:
        pump(ctl, lambda: all(ctl.sched.node_state(n) == "idle" for n in cfg.machines), clock)
        work = tmp_path / "work"
        work.mkdir()
        job = submit(ctl, clock[0], {"wrap": "echo hi"}, script="#!/bin/sh\necho hi\n",
                     cwd=str(work), script_name="wrap")
        pump(ctl, lambda: ctl.store.task(job)["state"] == "RUNNING", clock)
        first = ctl.store.task(job)
        assert first["node"] == "m1"  # the lighter machine
        old_key = first["run_key"]

        # m1 stops answering: after three heartbeats it is DOWN, the job requeued to m2
        fakes["m1"].fail = NodeUnreachable("node m1: unreachable (test)", "m1")
        fakes["m1"].drop()
        # (the clock moves on with every step: a message m1 wrote before the
        # drop may still be read, and counts as heard at that step's time)
        pump(ctl, lambda: ctl.store.task(job)["node"] == "m2"
              and ctl.store.task(job)["state"] == "RUNNING", clock, tick=0.5)
        current = ctl.store.task(job)["run_key"]
        assert current != old_key

        # m1 is back; the earlier run ended there and left its output
        fakes["m1"].files[JobPaths("/fake/m1", old_key).stdout] = b"first run\n"
        fakes["m1"].jobs[old_key] = {
            "key": old_key, "pid": 4242, "start_time": clock[0], "end_time": clock[0],
            "state": "COMPLETED", "exit_code": 0, "signal": 0, "user_cpu": 0.0,
            "system_cpu": 0.0, "max_rss_kb": 0, "error": None}
        fakes["m1"].requests.clear()
        fakes["m1"].fail = None
        forgets = lambda: [r["key"] for r in fakes["m1"].requests if r.get("op") == "forget"]
        pump(ctl, lambda: old_key in forgets(), clock, tick=0.5)  # through the reconnect backoff

        out = work / f"slurm-{job}.out"
        assert out.read_bytes() == b"first run\n"
        assert current not in forgets()
        task = ctl.store.task(job)
        assert (task["state"], task["run_key"], task["collected"]) == ("RUNNING", current, 0)
        # nothing counted twice: the earlier run is recorded on its own step
        steps = {s["run_key"]: s for s in ctl.store.steps_of(job)}
        assert steps[old_key]["state"] == "NODE_FAIL" and steps[current]["end_time"] is None
    finally:
        ctl.close()

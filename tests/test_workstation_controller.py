"""Workstation policies through the controller, stepped in-process with real
agents (local machines): the heartbeat asks for the workstation facts only
where they are used, they reach the scheduler, and sinfo's records and job
placement follow."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

from stepping import pump, submit

from fleetslurm.config import FleetConfig, MachineConfig, PartitionConfig, PolicyConfig
from fleetslurm.ctld.health import facts_request
from fleetslurm.ctld.loop import Controller
from fleetslurm.paths import StatePaths


def test_the_heartbeat_measures_only_where_a_policy_or_spread_uses_it(tmp_path: Path) -> None:
    cfg = FleetConfig(machines={
        "plain": MachineConfig(transport="local"),
        "hours": MachineConfig(transport="local", available=["Sat-Sun"]),
        "ws": MachineConfig(transport="local", policy=PolicyConfig(activity_file="/a")),
        "spread": MachineConfig(transport="local", partitions=["wide"])},
        partitions={"debug": PartitionConfig(default=True),
                    "wide": PartitionConfig(placement="spread")})
    ctx = SimpleNamespace(config=cfg)
    assert facts_request(ctx, "plain") == {"op": "facts"}  # today's heartbeat, no /proc scan
    assert facts_request(ctx, "hours") == {"op": "facts", "measure": True}
    assert facts_request(ctx, "ws") == {"op": "facts", "measure": True, "activity_file": "/a"}
    assert facts_request(ctx, "spread") == {"op": "facts", "measure": True}


def test_an_active_owner_keeps_jobs_off_and_sinfo_says_why(tmp_path: Path) -> None:
    activity = tmp_path / "active"
    activity.touch()
    policy = PolicyConfig(max_foreign_load=None, min_free_mem_gb=None, owner_idle_minutes=10,
                          activity_file=str(activity))
    cfg = FleetConfig(cluster_name="unit", heartbeat_interval=0.2, machines={
        "ws": MachineConfig(transport="local", cpus=2, memory_gb=1, weight=1, policy=policy,
                            workdir=str(tmp_path / "ws")),
        "plain": MachineConfig(transport="local", cpus=2, memory_gb=1, weight=2,
                               workdir=str(tmp_path / "plain"))})
    ctl = Controller(cfg, StatePaths(tmp_path / "home"))
    ctl.start(time.time())
    try:
        pump(ctl, lambda: ctl.sched.node_busy("ws") == "Owner active"
             and ctl.sched.node_state("plain") == "idle")
        job = submit(ctl, time.time(), {}, script="#!/bin/sh\ntrue\n", cwd=str(tmp_path))
        pump(ctl, lambda: ctl.store.task(job)["state"] not in ("PENDING",))
        assert ctl.store.task(job)["node"] == "plain"  # ws weighs less but its owner is there
        pump(ctl, lambda: any(r["name"] == "ws" and r["reason"] for r in ctl.node_snapshot))
        ws = next(r for r in ctl.node_snapshot if r["name"] == "ws")
        assert (ws["state"], ws["reason"], ws["busy"]) == ("idle", "Owner active", True)
        assert ws["reason_time"] is not None
        plain = next(r for r in ctl.node_snapshot if r["name"] == "plain")
        assert (plain["reason"], plain["busy"]) == ("", False)
        # the owner has been away for 11 minutes: ws is free again
        os.utime(activity, (time.time() - 660, time.time() - 660))
        pump(ctl, lambda: ctl.sched.node_busy("ws") is None)
        job2 = submit(ctl, time.time(), {}, script="#!/bin/sh\ntrue\n", cwd=str(tmp_path))
        pump(ctl, lambda: ctl.store.task(job2)["state"] not in ("PENDING",))
        assert ctl.store.task(job2)["node"] == "ws"
    finally:
        ctl.close()

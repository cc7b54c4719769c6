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


def test_requeue_policy_requeues_and_cancels_a_no_requeue_job(tmp_path: Path) -> None:
    activity = tmp_path / "active"
    activity.touch()
    os.utime(activity, (time.time() - 3600, time.time() - 3600))  # the owner is away
    policy = PolicyConfig(max_foreign_load=None, min_free_mem_gb=None, owner_idle_minutes=10,
                          when_owner_active="requeue", activity_file=str(activity))
    cfg = FleetConfig(cluster_name="unit", heartbeat_interval=0.2, kill_wait=1, machines={
        "ws": MachineConfig(transport="local", cpus=2, memory_gb=1, policy=policy,
                            workdir=str(tmp_path / "ws"))})
    ctl = Controller(cfg, StatePaths(tmp_path / "home"))
    ctl.start(time.time())
    try:
        pump(ctl, lambda: ctl.sched.node_state("ws") == "idle"
             and ctl.sched.node_busy("ws") is None)
        again = submit(ctl, time.time(), {}, script="#!/bin/sh\nsleep 60\n", cwd=str(tmp_path))
        once = submit(ctl, time.time(), {"no_requeue": True}, script="#!/bin/sh\nsleep 60\n",
                      cwd=str(tmp_path))
        pump(ctl, lambda: all(ctl.store.task(j)["state"] == "RUNNING" for j in (again, once)))
        activity.touch()  # the owner is back
        pump(ctl, lambda: ctl.store.task(again)["state"] == "PENDING"
             and ctl.store.task(once)["state"] == "CANCELLED")
        assert ctl.store.task(again)["restart_count"] == 1
        assert [h["detail"] for h in ctl.store.history(once) if h["event"] == "evict"] == [
            "Owner active on ws: cancelled by its workstation policy (submitted with "
            "--no-requeue, it may not be requeued)"]
        events = [h["detail"] for h in ctl.store.history(again) if h["event"] == "requeue"]
        assert events == ["Owner active on ws: requeued by its workstation policy"]
        time.sleep(0.5)
        ctl.step(time.time())
        assert ctl.store.task(again)["state"] == "PENDING"  # not while the owner is there
    finally:
        ctl.close()


def test_a_suspension_lost_on_the_way_is_sent_again_at_the_agents_hello(tmp_path: Path) -> None:
    """SIGSTOP/SIGCONT and the time limit a suspend or resume sends once after
    its commit are lost with a dropped link (or a controller killed in
    between); the scheduler holds the state it decided and never sends them
    again. The agent's next hello brings them back, as the store has them."""
    import signal

    from fleetslurm.node.agent import protocol

    ctl, fake, clock = _fake_workstation(tmp_path, "suspend")
    try:
        job = submit(ctl, clock[0], {"time_limit": 10}, script="#!/bin/sh\n", cwd="/")
        pump(ctl, lambda: ctl.store.task(job)["state"] == "RUNNING", clock, 0.1)
        key = ctl.store.task(job)["run_key"]

        def sent() -> list:
            return [(r["op"], r.get("signal"), r.get("time_limit_s", "-"))
                    for r in fake.requests if r.get("key") == key and r["op"] in
                    ("signal", "set_limit")]

        fake.facts["owner_idle_s"] = 0.0  # the owner is back: suspended
        pump(ctl, lambda: ctl.store.task(job)["state"] == "SUSPENDED", clock, 0.1)
        pump(ctl, lambda: len(sent()) >= 2, clock, 0.1)
        fake.requests.clear()  # as if they never reached the machine
        fake.push(protocol.ev_hello(None, 1, fake.facts, [protocol.job_info(key, 4242, None)]))
        pump(ctl, lambda: len(sent()) >= 2, clock, 0.1)
        stops = [s for s in sent() if s[0] == "signal"]
        assert stops and all(s[1] == int(signal.SIGSTOP) for s in stops), sent()
        assert any(s[0] == "set_limit" for s in sent()), sent()
        fake.facts["owner_idle_s"] = 3600.0  # away again: resumed
        pump(ctl, lambda: ctl.store.task(job)["state"] == "RUNNING", clock, 0.1)
        fake.requests.clear()
        fake.push(protocol.ev_hello(None, 1, fake.facts, [protocol.job_info(key, 4242, None)]))
        pump(ctl, lambda: len(sent()) >= 2, clock, 0.1)
        conts = [s for s in sent() if s[0] == "signal"]
        assert conts and all(s[1] == int(signal.SIGCONT) for s in conts), sent()
    finally:
        ctl.close()


def test_an_eviction_does_not_bring_back_a_job_being_cancelled(tmp_path: Path) -> None:
    """scancel leaves a running job RUNNING (cancelled_by set) until its
    machine reports the end; the owner coming back meanwhile under a
    requeue policy must not requeue it (it would run again)."""
    ctl, fake, clock = _fake_workstation(tmp_path, "requeue")
    try:
        job = submit(ctl, clock[0], {}, script="#!/bin/sh\n", cwd="/")
        pump(ctl, lambda: ctl.store.task(job)["state"] == "RUNNING", clock, 0.1)
        fake.traps_term = True
        from fleetslurm.ctld.inbox import Pending, Request

        cancel = Pending("cancel", {"ids": [str(job)]}, os.getuid())
        ctl.inbox.put(Request(cancel))
        ctl.step(clock[0])
        assert cancel.error is None, cancel.error
        pump(ctl, lambda: ctl.store.task(job)["cancelled_by"] is not None, clock, 0.1)
        fake.facts["owner_idle_s"] = 0.0  # the owner is back (the job traps TERM)
        for _ in range(20):
            clock[0] += 0.2
            ctl.step(clock[0])
            time.sleep(0.01)
        task = ctl.store.task(job)
        assert task["state"] == "RUNNING" and task["cancelled_by"] is not None, task
        assert task["restart_count"] == 0
        fake.end(task["run_key"], "CANCELLED")
        pump(ctl, lambda: ctl.store.task(job)["state"] == "CANCELLED", clock, 0.1)
    finally:
        ctl.close()


def _fake_workstation(tmp_path: Path, when_owner_active: str):  # type: ignore[no-untyped-def]
    """A controller (started, stepped by hand) over one fake workstation
    whose owner is away, with the policy ``when_owner_active``: the
    controller, the FakeTransport (set its facts' ``owner_idle_s`` to bring
    the owner back) and the clock."""
    from fleetslurm.transport.fake import FakeTransport

    policy = PolicyConfig(max_foreign_load=None, min_free_mem_gb=None, owner_idle_minutes=10,
                          when_owner_active=when_owner_active)
    cfg = FleetConfig(cluster_name="unit", heartbeat_interval=0.2, machines={
        "ws": MachineConfig(hostname="192.0.2.9", cpus=2, memory_gb=1, policy=policy)})
    fake = FakeTransport("ws", auto_end=False, facts={"owner_idle_s": 3600.0})
    ctl = Controller(cfg, StatePaths(tmp_path / "home"), transports={"ws": fake})
    clock = [time.time()]
    try:
        ctl.start(clock[0])
        pump(ctl, lambda: ctl.sched.node_state("ws") == "idle"
             and ctl.sched.node_busy("ws") is None, clock, 0.1)
    except BaseException:
        ctl.close()
        raise
    return ctl, fake, clock

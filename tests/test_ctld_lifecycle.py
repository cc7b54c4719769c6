"""The task lifecycle's transition table (fleetslurm/ctld/lifecycle.py): every
move it lists is written, a move it does not list raises with the task's
history and writes nothing; and a job driven through the controller only
makes moves the table lists. Real SQLite, a controller stepped in-process
against a FakeTransport machine."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from stepping import pump, submit

from fleetslurm.config import FleetConfig, MachineConfig
from fleetslurm.ctld import lifecycle
from fleetslurm.ctld.lifecycle import TRANSITIONS, IllegalTransition, move
from fleetslurm.ctld.loop import Controller
from fleetslurm.model import FINAL_STATE_NAMES
from fleetslurm.paths import StatePaths
from fleetslurm.transport.fake import FakeTransport


def _controller(tmp_path: Path, auto_end: bool = False) -> tuple[Controller, list]:
    cfg = FleetConfig(cluster_name="life", heartbeat_interval=0.5, machines={
        "m1": MachineConfig(hostname="127.0.0.2", cpus=1, memory_gb=1)})
    fake = FakeTransport("m1", workdir="/fake/m1", auto_end=auto_end, shared_fs=True)
    clock = [time.time()]
    ctl = Controller(cfg, StatePaths(tmp_path / "home"), transports={"m1": fake})
    ctl.start(clock[0])
    pump(ctl, lambda: ctl.sched.node_state("m1") == "idle", clock, 0.1)
    return ctl, clock


def _held_job(ctl: Controller, clock: list, tmp_path: Path) -> int:
    return submit(ctl, clock[0], {"hold": True}, script="#!/bin/sh\ntrue\n", cwd=str(tmp_path))


def test_every_listed_move_is_written_and_an_unlisted_one_raises_with_the_history(tmp_path):
    ctl, clock = _controller(tmp_path)
    try:
        job = _held_job(ctl, clock, tmp_path)
        states = sorted(set(TRANSITIONS) | {s for to in TRANSITIONS.values() for s in to})
        for old in states:
            for new in states:
                with ctl.store.transaction():
                    ctl.store.update_task(job, state=old)  # the starting point, set directly
                task = ctl.store.task(job)
                with ctl.store.transaction():
                    if new in TRANSITIONS.get(old, ()):
                        move(ctl, task, new)
                        assert ctl.store.task(job)["state"] == new
                    else:
                        with pytest.raises(IllegalTransition) as err:
                            move(ctl, task, new)
                        assert ctl.store.task(job)["state"] == old  # nothing written
                        assert f"{old} -> {new}" in str(err.value)
                        # the history names what happened to the job so far
                        assert "submit" in str(err.value)
    finally:
        ctl.close()


def test_the_table_covers_the_states_the_controller_writes():
    # a finished job may only be requeued; a pending one never completes by itself
    for final in lifecycle.RESULT_STATES:
        assert TRANSITIONS[final] == frozenset({"PENDING"})
    # every state the controller may write is a SLURM state
    assert set(TRANSITIONS) <= FINAL_STATE_NAMES | {"PENDING", "RUNNING", "COMPLETING", "SUSPENDED"}
    assert "COMPLETED" not in TRANSITIONS["PENDING"]
    assert "RUNNING" not in TRANSITIONS["COMPLETED"]
    assert set(TRANSITIONS["RUNNING"]) >= {"COMPLETING", "COMPLETED", "FAILED", "CANCELLED",
                                           "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PENDING"}
    # a suspended job (its workstation's owner is back) resumes, or ends as a running one may
    assert TRANSITIONS["SUSPENDED"] == (TRANSITIONS["RUNNING"] - {"SUSPENDED"}) | {"RUNNING"}
    assert "SUSPENDED" in TRANSITIONS["RUNNING"] and "SUSPENDED" not in TRANSITIONS["PENDING"]


def test_a_job_run_through_the_controller_makes_only_listed_moves(tmp_path, monkeypatch):
    seen: list[tuple[str, str]] = []
    real = lifecycle.move

    def recorded(ctx, task, new, **fields):  # type: ignore[no-untyped-def]
        seen.append((task["state"], new))
        real(ctx, task, new, **fields)

    monkeypatch.setattr(lifecycle, "move", recorded)
    ctl, clock = _controller(tmp_path, auto_end=True)
    try:
        job = submit(ctl, clock[0], {}, script="#!/bin/sh\ntrue\n", cwd=str(tmp_path))
        pump(ctl, lambda: ctl.store.task(job)["state"] == "COMPLETED", clock, 0.1)
        assert seen == [("PENDING", "RUNNING"), ("RUNNING", "COMPLETED")]
        # a finished job may be requeued, and a cancelled pending one ends CANCELLED
        from fleetslurm.ctld.lifecycle import finish_cancel, requeue_task

        with ctl.store.transaction():
            requeue_task(ctl, ctl.store.task(job), clock[0], "test", hold=True)
            finish_cancel(ctl, ctl.store.task(job), 0, clock[0])
        assert seen[2:] == [("COMPLETED", "PENDING"), ("PENDING", "CANCELLED")]
        assert ctl.store.task(job)["state"] == "CANCELLED"
        # and a cancelled job cannot start
        with ctl.store.transaction(), pytest.raises(IllegalTransition, match="CANCELLED -> RUNNING"):
            lifecycle.start_task(ctl, ctl.store.task(job), node="m1")
    finally:
        ctl.close()

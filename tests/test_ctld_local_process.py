"""Whether a job runs on the controller's own host is asked of the transport
(``Transport.local_process``), not read from its class name: the local
transport says yes, others no, and the launch puts the controller's shims
first on a local job's PATH only."""

from __future__ import annotations

import time

from stepping import pump, submit

from fleetslurm.config import FleetConfig, MachineConfig
from fleetslurm.ctld.loop import Controller
from fleetslurm.paths import StatePaths
from fleetslurm.transport.fake import FakeTransport
from fleetslurm.transport.local import LocalTransport


def test_the_local_transport_is_a_local_process_and_others_are_not(tmp_path):
    assert LocalTransport("n1", tmp_path / "w").local_process is True
    assert FakeTransport("n2").local_process is False


class LocalFake(FakeTransport):
    """A fake machine that says it is a process of this host."""

    local_process = True


def _launch_env(tmp_path, fake) -> dict:  # type: ignore[no-untyped-def]
    # a machine far away by its address: only the transport can say it is local
    cfg = FleetConfig(cluster_name="lp", machines={
        "m1": MachineConfig(hostname="192.0.2.7", cpus=1, memory_gb=1)})
    clock = [time.time()]
    ctl = Controller(cfg, StatePaths(tmp_path / "home"), transports={"m1": fake})
    try:
        ctl.start(clock[0])
        pump(ctl, lambda: ctl.sched.node_state("m1") == "idle", clock, 0.1)
        submit(ctl, clock[0], {}, script="#!/bin/sh\ntrue\n", cwd=str(tmp_path),
               env={"PATH": "/usr/bin:/bin"})
        pump(ctl, lambda: any(r.get("op") == "launch" for r in fake.requests), clock, 0.1)
        return next(r for r in fake.requests if r.get("op") == "launch")["spec"]["env"]
    finally:
        ctl.close()


def test_the_shims_come_first_on_path_only_on_a_local_process(tmp_path):
    bin_dir = str(tmp_path / "a" / "home" / "bin")
    env = _launch_env(tmp_path / "a", LocalFake("m1", auto_end=False))
    assert env["PATH"] == f"{bin_dir}:/usr/bin:/bin"
    assert env["FLEETSLURM_CONTROLLER_HOST"] == "1"
    env = _launch_env(tmp_path / "b", FakeTransport("m1", auto_end=False))
    assert "FLEETSLURM_CONTROLLER_HOST" not in env
    assert str(tmp_path / "b" / "home" / "bin") not in env["PATH"]

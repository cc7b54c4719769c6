"""A fleet's identity: a cluster id made at its first start, kept in its
store, part of its run keys and of its machines' default workdir."""

from __future__ import annotations

import time
from pathlib import Path

from stepping import pump, submit

from fleetslurm.config import FleetConfig, MachineConfig
from fleetslurm.ctld.loop import Controller
from fleetslurm.paths import DEFAULT_WORKDIR, StatePaths, fleet_workdir
from fleetslurm.store import Store
from fleetslurm.transport.fake import FakeTransport


def test_the_cluster_id_is_made_once_and_kept(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    cid, own = store.identity()
    assert len(cid) == 8 and own
    store.close()
    store = Store(tmp_path / "a.db")
    assert store.identity() == (cid, True)
    store.close()
    other = Store(tmp_path / "b.db")
    assert other.identity()[0] != cid
    other.close()


def test_a_store_that_had_jobs_before_its_id_keeps_the_shared_default_workdir(
        tmp_path: Path) -> None:
    """Upgrading: its runs live in ~/.fleetslurm-node itself, so it stays there."""
    store = Store(tmp_path / "old.db")
    store.add_job(1, 0, "u", 0.0, {"workdir": "/w"}, "#!/bin/sh\n", None)
    store.add_task(1, 1, None, {"name": "x", "partition": "debug"}, 0.0, False)
    cid, own = store.identity()
    assert not own
    assert fleet_workdir(DEFAULT_WORKDIR, cid, own, "m1") == DEFAULT_WORKDIR
    store.close()


def test_only_the_default_workdir_gets_a_directory_per_fleet() -> None:
    assert (fleet_workdir("~/.fleetslurm-node", "ab12cd34", True, "m1")
            == "~/.fleetslurm-node/ab12cd34/m1")
    assert (fleet_workdir("~/.fleetslurm-node/", "ab12cd34", True, "m2")
            == "~/.fleetslurm-node/ab12cd34/m2")
    assert fleet_workdir("/scratch/w", "ab12cd34", True, "m1") == "/scratch/w"


def test_machines_sharing_a_home_get_distinct_default_workdirs() -> None:
    """Two machines whose home directories are one NFS share: one agent workdir each."""
    dirs = {fleet_workdir(DEFAULT_WORKDIR, "ab12cd34", True, m) for m in ("m1", "m2")}
    assert len(dirs) == 2


def test_run_keys_and_the_ssh_workdir_carry_the_cluster_id(tmp_path: Path) -> None:
    cfg = FleetConfig(cluster_name="ident", heartbeat_interval=0.5, machines={
        "m1": MachineConfig(hostname="127.0.0.2", cpus=1, memory_gb=1),
        "m2": MachineConfig(hostname="127.0.0.3", cpus=1, memory_gb=1, workdir="/scratch/w")})
    ctl = Controller(cfg, StatePaths(tmp_path / "home"),
                     transports={"m1": FakeTransport("m1", auto_end=False)})
    try:
        cid = ctl.cluster_id
        assert ctl.machine_workdir("m1") == f"{DEFAULT_WORKDIR}/{cid}/m1"
        assert ctl.machine_workdir("m2") == "/scratch/w"
        m2 = ctl.transport_for("m2")  # an SSH transport (not connected here)
        assert m2.machine.workdir == "/scratch/w"
        assert m2.owner == {"cluster_id": cid, "cluster_name": "ident",
                            "controller": m2.owner["controller"],
                            "config": "(embedded default)"}
        ctl._transports["m2"] = FakeTransport("m2", auto_end=False)
        clock = [time.time()]
        ctl.start(clock[0])
        pump(ctl, lambda: ctl.sched.node_state("m1") == "idle", clock, 0.1)
        job = submit(ctl, clock[0], {"wrap": "x", "nodelist": "m1"}, script="#!/bin/sh\n",
                     cwd=str(tmp_path), script_name="wrap")
        pump(ctl, lambda: ctl.store.task(job)["state"] == "RUNNING", clock, 0.1)
        assert ctl.store.task(job)["run_key"] == f"{job}.0.{cid}"
    finally:
        ctl.close()

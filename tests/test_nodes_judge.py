"""nodes check's verdict on an agent's facts (pure: no machine needed)."""
from __future__ import annotations

from fleetslurm.cli.nodes_cmd import _judge
from fleetslurm.config import MachineConfig


def _machine(**kw) -> MachineConfig:
    return MachineConfig(hostname="10.0.0.9", ssh_user="svc", cpus=2, memory_gb=1, **kw)


def test_an_unwritable_workdir_names_who_must_write_it():
    facts = {"workdir": "/w", "workdir_writable": False, "disk_free_mb": 10_000,
             "cpus": 2, "mem_mb": 1024, "gpus": []}
    plain = _judge("m1", _machine(), facts)
    assert not plain.ok and any("writable for svc there" in n for n in plain.notes)
    # through sudo the agent writes as root: telling the admin to open it to
    # the login would be wrong advice
    sudo = _judge("m1", _machine(become="sudo"), facts)
    assert not sudo.ok and any("writable for root there" in n for n in sudo.notes)

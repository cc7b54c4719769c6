"""The workstation fields of fleet_config.json: a machine's ``policy`` and
``available``, a partition's ``placement``; omitted, nothing changes; a bad
value is one line naming the field and the value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetslurm.config import load_config
from fleetslurm.ctld.jobrequest import node_policy
from fleetslurm.errors import ConfigError


def _load(tmp_path: Path, machine: dict, partitions: dict | None = None):
    data = {"machines": {"ws1": {"hostname": "ws1", **machine}}}
    if partitions is not None:
        data["partitions"] = partitions
    path = tmp_path / "fleet_config.json"
    path.write_text(json.dumps(data))
    return load_config(path)


def test_omitted_is_todays_behaviour(tmp_path: Path) -> None:
    cfg = _load(tmp_path, {})
    m = cfg.machines["ws1"]
    assert m.policy is None and m.available is None and node_policy(m) is None
    assert all(p.placement == "pack" for p in cfg.partitions.values())


def test_an_empty_policy_takes_the_documented_defaults(tmp_path: Path) -> None:
    cfg = _load(tmp_path, {"policy": {}, "available": ["Mon-Fri 19:00-07:00", "Sat-Sun"]},
                {"batch": {"default": True, "placement": "spread"}})
    pol = node_policy(cfg.machines["ws1"])
    assert pol is not None
    assert (pol.max_foreign_load, pol.min_free_mem_mb, pol.owner_idle_s,
            pol.when_owner_active) == (1.0, 2048, 900.0, "stop_starting")
    assert [w.text for w in pol.windows] == ["Mon-Fri 19:00-07:00", "Sat-Sun"]
    assert cfg.partitions["batch"].placement == "spread"
    # null turns a check off
    pol = node_policy(_load(tmp_path, {"policy": {"max_foreign_load": None,
                                                  "owner_idle_minutes": None}}).machines["ws1"])
    assert pol.max_foreign_load is None and pol.owner_idle_s is None


@pytest.mark.parametrize("machine, partitions, message", [
    ({"available": ["Mon-Fry 9:00-17:00"]}, None,
     "machines.ws1.available: invalid window 'Mon-Fry 9:00-17:00': unknown day in 'Mon-Fry'"),
    ({"available": ["Mon 9:00-25:00"]}, None,
     "machines.ws1.available: invalid window 'Mon 9:00-25:00': '25:00' is not a time of day"),
    ({"available": "Mon"}, None,
     'machines.ws1.available: must be a list of windows ("Mon-Fri 19:00-07:00", "Sat-Sun"), '
     'got "Mon"'),
    ({"policy": {"when_owner_active": "kill"}}, None,
     'machines.ws1.policy.when_owner_active: must be "stop_starting", "suspend" or "requeue", '
     'got "kill"'),
    ({"policy": {"max_foreign_load": -1}}, None,
     "machines.ws1.policy.max_foreign_load: must be a non-negative number (null: no check), "
     "got -1"),
    ({"policy": {"idle": 5}}, None,
     "machines.ws1.policy.idle: unknown field; allowed fields are: max_foreign_load, "
     "min_free_mem_gb, owner_idle_minutes, when_owner_active, activity_file"),
    ({}, {"debug": {"default": True, "placement": "round-robin"}},
     'partitions.debug.placement: must be "pack" or "spread", got "round-robin"'),
])
def test_a_bad_value_is_one_line_naming_it(tmp_path: Path, machine, partitions, message) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, machine, partitions)
    text = str(err.value)
    assert "\n" not in text and message in text, text

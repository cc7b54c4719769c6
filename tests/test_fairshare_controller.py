"""priority/multifactor in the controller: real agent subprocess, real SQLite, step(now).

Two submitters on one controller: root and a real second Unix user, created
for the test (tests/second_user.py). The controller charges usage and ranks
by the submitter, whichever user the jobs then run as.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from second_user import other_user  # noqa: F401  (fixture)
from stepping import pump, submit

from fleetslurm.config import FleetConfig, MachineConfig, PriorityConfig
from fleetslurm.ctld.loop import Controller
from fleetslurm.paths import StatePaths
from fleetslurm.store import Store
from fleetslurm.views import user_name

def _controller(home: Path, priority) -> Controller:
    cfg = FleetConfig(cluster_name="fs", kill_wait=1, heartbeat_interval=0.5, priority=priority,
                      machines={"n1": MachineConfig(transport="local", cpus=2, memory_gb=2)})
    ctl = Controller(cfg, StatePaths(home))
    ctl.start(time.time())
    return ctl


def _submit(ctl: Controller, uid: int, seconds: float) -> int:
    return submit(ctl, time.time(), {}, script=f"#!/bin/sh\nsleep {seconds}\n",
                  cwd=str(ctl.paths.home), uid=uid, env={"PATH": os.environ["PATH"]})


def _starts(ctl: Controller, ids) -> list[int]:
    """Job ids in the order they started (those that did)."""
    rows = [ctl.store.task(j) for j in ids]
    return [r["task_id"] for r in sorted((r for r in rows if r["start_time"]),
                                         key=lambda r: (r["start_time"], r["task_id"]))]


def _run(tmp_path: Path, priority, other: int):
    """Root fills the machine with 6 jobs; then the other user submits 2. Returns the
    start order of the jobs that were still pending when the other user came."""
    ctl = _controller(tmp_path / "home", priority)
    try:
        # root's jobs last long enough that both of the other user's jobs are
        # in before a CPU frees, even on a loaded machine (each submit steps
        # the controller: with 1.5 s a root job once started between the two)
        mine = [_submit(ctl, 0, 3.0) for _ in range(6)]
        pump(ctl, lambda: sum(ctl.store.task(j)["state"] == "RUNNING" for j in mine) == 2)
        time.sleep(1.1)  # root's running jobs have used something by now
        theirs = [_submit(ctl, other, 0.2) for _ in range(2)]
        assert [ctl.store.task(j)["state"] for j in mine[2:]] == ["PENDING"] * 4, \
            "a root job started before the other user's jobs were both in"
        waiting = [j for j in mine if ctl.store.task(j)["state"] == "PENDING"] + theirs
        # the other user's jobs may fail where that user cannot write the test's directory;
        # they start all the same, which is what the order is about
        pump(ctl, lambda: all(ctl.store.task(j)["state"] in ("COMPLETED", "FAILED")
                              for j in mine + theirs), timeout=60)
        return ctl, _starts(ctl, waiting), theirs, mine
    finally:
        ctl.close()


def test_an_underserved_user_goes_first_and_usage_survives_a_restart(tmp_path, other_user):
    prio = PriorityConfig(PriorityWeightFairshare=10000, PriorityWeightAge=100)
    OTHER = other_user.pw_uid
    ctl, order, theirs, mine = _run(tmp_path, prio, OTHER)
    # the other user's jobs take the first free CPUs, ahead of root's older jobs
    assert order[:2] == theirs, order
    # usage was charged to each submitter's association and is in the store
    usage = Store(ctl.paths.db).usage()
    assert usage[("root", "root")][0] > usage[(user_name(OTHER), user_name(OTHER))][0] > 0
    # a restarted controller ranks from the stored usage: root is the better served
    ctl2 = _controller(tmp_path / "home", prio)
    try:
        ctl2.step(time.time())
        rows = {k[1]: r for k, r in ctl2.fairshare.assocs.items() if k[1]}
        assert rows[user_name(OTHER)].fairshare > rows["root"].fairshare
        assert rows["root"].raw_usage == pytest.approx(usage[("root", "root")][0], rel=0.01)
    finally:
        ctl2.close()


def test_without_a_priority_section_the_queue_stays_first_come_first_served(tmp_path,
                                                                           other_user):
    ctl, order, theirs, mine = _run(tmp_path, None, other_user.pw_uid)
    assert order == sorted(order) and order[-2:] == theirs
    assert not ctl.fairshare.enabled and Store(ctl.paths.db).usage() == {}


@pytest.mark.parametrize("priority, message", [
    ({"PriorityWeightAge": -1}, "priority.PriorityWeightAge: must be an integer from 0 to 4294967294, got -1"),
    ({"PriorityWeightQOS": 4294967295}, "priority.PriorityWeightQOS: must be an integer from 0 to 4294967294"),
    ({"PriorityMaxAge": "UNLIMITED"}, 'priority.PriorityMaxAge: must be a SLURM time ("60", "1:00:00", '
                                      '"7-0"), not UNLIMITED, got "UNLIMITED"'),
    ({"PriorityDecayHalfLife": "soon"}, "priority.PriorityDecayHalfLife: must be a SLURM time"),
    ({"PriorityCalcPeriod": 0}, "priority.PriorityCalcPeriod: must be an integer from 1 to 1440 (minutes)"),
    ({"TRESBillingWeights": "CPU=x"}, "priority.TRESBillingWeights: must be SLURM's TRES weights"),
    ({"Fairshare": {"alice": -2}}, "priority.Fairshare: must be an object of account names to shares"),
    ({"PriorityType": "priority/fancy"}, 'priority.PriorityType: must be "priority/multifactor" or '
                                         '"priority/basic", got "priority/fancy"'),
    ({"PriorityWeightAgee": 1}, "priority.PriorityWeightAgee: unknown field; allowed fields are: "
                                "PriorityType, PriorityWeightAge,"),
])
def test_a_bad_priority_section_is_refused_naming_the_field(tmp_path, priority, message):
    import json

    from fleetslurm.config import load_config
    from fleetslurm.errors import ConfigError

    path = tmp_path / "fleet_config.json"
    path.write_text(json.dumps({"machines": {"n1": {"transport": "local", "cpus": 1}},
                                "priority": priority}))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert message in str(exc.value)


def test_priority_defaults_are_slurms(tmp_path):
    p = PriorityConfig()
    assert (p.PriorityType, p.PriorityMaxAge, p.PriorityDecayHalfLife, p.PriorityCalcPeriod) == (
        "priority/multifactor", "7-0", "7-0", 5)
    assert (p.PriorityWeightAge, p.PriorityWeightFairshare, p.PriorityWeightJobSize,
            p.PriorityWeightPartition, p.PriorityWeightQOS, p.PriorityFavorSmall) == (0, 0, 0, 0, 0, False)


def test_a_requeued_run_is_charged(tmp_path):
    from fleetslurm.ctld.inbox import Pending, Request

    ctl = _controller(tmp_path / "home", PriorityConfig(PriorityWeightFairshare=100))
    try:
        job = _submit(ctl, 0, 30)
        pump(ctl, lambda: ctl.store.task(job)["state"] == "RUNNING")
        time.sleep(1.0)
        p = Pending("requeue", {"ids": [str(job)]}, 0)
        ctl.inbox.put(Request(p))
        ctl.step(time.time())
        assert p.error is None
        raw, _ = ctl.store.usage()[("root", "root")]
        assert raw >= 0.9  # one CPU for about a second
        p = Pending("cancel", {"ids": [str(job)]}, 0)
        ctl.inbox.put(Request(p))
        ctl.step(time.time())
    finally:
        ctl.close()

"""Time limits up to SLURM's largest (and none at all) run their jobs.

poll() takes a C int of milliseconds, about 24.8 days: a supervisor that
waited for a 30-day limit in one call failed every such job at its start
(``OverflowError: timeout is too large``, FAILED 0:9), and a partition whose
MaxTime is 30 days failed every job submitted without ``-t``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from conftest import Fleet, _teardown, local_config
from test_agent import AgentClient, kill_leftovers, spec

DAY = 86400


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentClient]:
    client = AgentClient(tmp_path / "w")
    yield client
    client.close()
    kill_leftovers(tmp_path / "w")


def test_supervisor_waits_out_limits_beyond_poll_range(agent: AgentClient, tmp_path: Path) -> None:
    # 30 days, SLURM's largest time value (4294967294 minutes) and a signal
    # due long before such a limit: each is further away than poll() can wait
    limits = {"a": 30 * DAY, "b": 4294967294 * 60, "c": 365 * DAY}
    for key, limit in limits.items():
        d = tmp_path / key
        d.mkdir()
        extra = {"signal": {"num": 10, "secs_before": 60, "batch_only": True}} if key == "c" else {}
        started = agent.launch(key, spec("#!/bin/sh\nsleep 0.3\necho done\n", d, cwd=str(d),
                                         stdout=str(d / "o"), time_limit_s=limit, **extra))
        assert started["ev"] == "started", started
    for key in limits:
        result = agent.ended(key)
        assert (result["state"], result["exit_code"], result["signal"]) == ("COMPLETED", 0, 0), result
        assert result["error"] is None
        assert (tmp_path / key / "o").read_text() == "done\n"


@pytest.fixture
def month_fleet(tmp_path: Path) -> Iterator[Fleet]:
    """A default partition whose MaxTime (and so every job's default limit)
    is 30 days."""
    cfg = local_config()
    cfg["partitions"]["debug"]["max_time"] = "30-00:00:00"
    cfg["partitions"]["long"] = {}  # MaxTime=UNLIMITED
    cfg["machines"]["localhost"]["partitions"].append("long")
    f = Fleet(tmp_path, cfg)
    yield f
    _teardown(f)


def test_thirty_days_unlimited_and_partition_max_time(month_fleet: Fleet) -> None:
    fleet = month_fleet
    jobs = {
        "thirty": fleet.sbatch("-t", "30-00:00:00", "--wrap", "sleep 0.3; echo thirty"),
        "unlimited": fleet.sbatch("-t", "UNLIMITED", "-p", "long", "--wrap",
                                  "sleep 0.3; echo unlimited"),
        "default": fleet.sbatch("--wrap", "sleep 0.3; echo default"),
    }
    for name, job in jobs.items():
        rec = fleet.wait(job)
        assert (rec["state"], rec["exit_code"], rec["exit_signal"]) == ("COMPLETED", 0, 0), rec
        assert (fleet.work / f"slurm-{job}.out").read_text() == name + "\n"
    assert fleet.record(jobs["thirty"])["time_limit"] == 30 * 1440
    assert fleet.record(jobs["default"])["time_limit"] == 30 * 1440
    assert fleet.record(jobs["unlimited"])["time_limit"] is None

"""Shared fixtures: a real controller on this machine, driven through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from tests_slurm.sides import kill_left_jobs

FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
         "PREEMPTED", "BOOT_FAIL", "DEADLINE"}


class Fleet:
    """A state directory, a config and helpers to run fleetslurm commands."""

    def __init__(self, root: Path, config: Optional[dict]) -> None:
        self.root = root
        self.home = root / "home"
        self.work = root / "work"
        self.work.mkdir(parents=True)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("SLURM_", "SBATCH_", "SQUEUE_", "SINFO_", "SACCT_"))}
        self.env["FLEETSLURM_HOME"] = str(self.home)
        self.env.pop("FLEETSLURM_CONFIG", None)
        if config is not None:
            path = root / "fleet_config.json"
            path.write_text(json.dumps(config))
            self.env["FLEETSLURM_CONFIG"] = str(path)

    def run(self, *args: str, input: Optional[str] = None, cwd: Optional[Path] = None,
            env: Optional[dict] = None, check: bool = False,
            timeout: float = 60) -> subprocess.CompletedProcess:
        e = dict(self.env)
        if env:
            e.update(env)
        proc = subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", *args],
                              input=input, capture_output=True, text=True,
                              cwd=str(cwd or self.work), env=e, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def sbatch(self, *args: str, **kw) -> int:
        proc = self.run("sbatch", "--parsable", *args, check=True, **kw)
        return int(proc.stdout.strip())

    def client(self):
        from fleetslurm.paths import StatePaths
        from fleetslurm.rpc import connect

        return connect(StatePaths(self.home))

    def records(self, job: "int | str") -> list[dict]:
        with self.client() as c:
            return c.call("jobs", ids=[str(job)])

    def record(self, job: "int | str") -> dict:
        recs = self.records(job)
        assert len(recs) == 1, recs
        return recs[0]

    def wait(self, job: "int | str", states=FINAL, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            recs = self.records(job)
            if recs and all(r["state"] in states for r in recs):
                return recs[0] if len(recs) == 1 else {"tasks": recs}
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job} did not reach {states}: {recs}")
            time.sleep(0.1)

    def controller_pid(self) -> Optional[int]:
        try:
            return int((self.home / "controller.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        self.run("controller", "stop", timeout=60)


def local_config(**overrides) -> dict:
    cfg = {
        "cluster_name": "testfleet",
        "kill_wait": 2,
        "heartbeat_interval": 1.0,
        "partitions": {"debug": {"default": True}, "short": {"max_time": "10", "priority": 5}},
        "machines": {"localhost": {"transport": "local", "cpus": 2, "memory_gb": 4,
                                   "hostname": "localhost", "partitions": ["debug", "short"]}},
    }
    cfg.update(overrides)
    return cfg


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path, local_config())
    yield f
    _teardown(f)


@pytest.fixture
def dash(fleet: Fleet) -> Iterator[Any]:
    """A dashboard (tests.dashboard_helpers.Dashboard) on ``fleet``'s started controller."""
    from tests.dashboard_helpers import Dashboard  # (the dashboard tests' own helpers)

    fleet.run("controller", "start", check=True)
    d = Dashboard(fleet)
    yield d
    d.stop()


@pytest.fixture
def no_slurm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process has none of an enclosing job's SLURM_*/SBATCH_* variables
    (the suite may itself run inside a SLURM or fleetslurm job)."""
    for k in list(os.environ):
        if k.startswith(("SLURM_", "SBATCH_")):
            monkeypatch.delenv(k)


@pytest.fixture
def fleet_env(fleet: Fleet, no_slurm_env: None, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    """The Python API in this process talks to the test's fleet, from its work dir."""
    monkeypatch.setenv("FLEETSLURM_HOME", str(fleet.home))
    monkeypatch.setenv("FLEETSLURM_CONFIG", fleet.env["FLEETSLURM_CONFIG"])
    monkeypatch.chdir(fleet.work)
    return fleet


@pytest.fixture
def wide_fleet(tmp_path: Path) -> Iterator[Fleet]:
    """This machine declared with 8 CPUs: room for several sleepers at once."""
    cfg = local_config()
    cfg["machines"]["localhost"]["cpus"] = 8
    f = Fleet(tmp_path, cfg)
    yield f
    _teardown(f)


@pytest.fixture
def default_fleet(tmp_path: Path) -> Iterator[Fleet]:
    """The embedded default: no config at all."""
    f = Fleet(tmp_path, None)
    yield f
    _teardown(f)


def _teardown(f: Fleet) -> None:
    pid = f.controller_pid()
    f.stop()
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # kill any job left behind (supervisors are in their own sessions)
    kill_left_jobs(f.home)
    shutil.rmtree(f.root, ignore_errors=True)

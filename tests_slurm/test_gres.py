"""sinfo's Gres/GresUsed and scontrol's Gres= for a node with two GPUs,
judged by a real SLURM 22.05 that has them (gres_oracle.py): idle, one GPU
given out, both given out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from .gres_oracle import ensure_gres_oracle, env as gres_env
from .sides import FleetSide, clean_env, kill_left_jobs
from .slurm_oracle import BIN

SINFO = ("sinfo", "-N", "-h", "-O", "NodeList:10,Gres:12,GresUsed:12,StateCompact:8")


class _Fleet:
    """fleetslurm with one local machine named like the GRES oracle's node."""

    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.home.mkdir(mode=0o700)
        cfg = root / "fleet_config.json"
        cfg.write_text(json.dumps({
            "cluster_name": "gresoracle", "partitions": {"debug": {"default": True}},
            "machines": {"localhost": {"transport": "local", "hostname": "localhost",
                                       "cpus": len(os.sched_getaffinity(0)), "memory_gb": 1,
                                       "gpu_available": True, "gpus": 2,
                                       "partitions": ["debug"]}}}))
        self.env = clean_env({"FLEETSLURM_HOME": str(self.home), "FLEETSLURM_CONFIG": str(cfg)})
        self.work = root

    def run(self, *args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", *args], env=self.env,
                              capture_output=True, text=True, cwd=self.work, timeout=60,
                              stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def stop(self) -> None:
        subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", "controller", "stop"],
                       env=self.env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        kill_left_jobs(self.home)


def _slurm(*args: str) -> str:
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], env=gres_env(), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL, cwd="/tmp")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def both(tmp_path: Path) -> Iterator[tuple]:
    why = ensure_gres_oracle()
    if why is not None:
        pytest.skip(f"no real SLURM with GPUs to compare with: {why}")
    fleet = _Fleet(tmp_path)
    jobs: list[str] = []
    yield fleet, jobs
    if jobs:
        _slurm("scancel", *jobs)  # by id: never everything a user has
    fleet.stop()


def _until(fn, want: str, column: int, timeout: float = 30) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got.split()[column:column + 1] == [want] or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def test_gres_and_gres_used_as_slurm_prints_them(both) -> None:  # type: ignore[no-untyped-def]
    fleet, jobs = both
    idle_slurm = _until(lambda: _slurm(*SINFO), "idle", 3)
    assert _until(lambda: fleet.run(*SINFO), "idle", 3) == idle_slurm
    assert idle_slurm.split()[1:3] == ["gpu:2", "gpu:0"]
    assert fleet.run("sinfo", "-h", "-o", "%G") == _slurm("sinfo", "-h", "-o", "%G")
    for n in (1, 2):
        wrap = ["--gres=gpu:1", "--mem=100", "-o", "/dev/null", "--wrap", "sleep 60"]
        jobs.append(_slurm("sbatch", "--parsable", *wrap).strip())
        fleet.run("sbatch", "--parsable", *wrap)
        want = f"gpu:{n}"
        got_slurm = _until(lambda: _slurm(*SINFO), want, 2)
        got_fleet = _until(lambda: fleet.run(*SINFO), want, 2)
        assert got_fleet == got_slurm and got_slurm.split()[2] == want, fleet.run("squeue")
    gres = [line.strip() for line in _slurm("scontrol", "show", "node").splitlines()
            if line.strip().startswith("Gres=")]
    mine = [line.strip() for line in fleet.run("scontrol", "show", "node").splitlines()
            if line.strip().startswith("Gres=")]
    assert mine == gres == ["Gres=gpu:2"]

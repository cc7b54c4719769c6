"""A loopback sshd fleet driven by unmodified SLURM client libraries.

The only thing changed for the libraries is ``PATH``: a directory of
fleetslurm shims comes first, so their ``sbatch``, ``sacct``, ``scancel``...
are fleetslurm's. Jobs inherit the submitter's environment (SLURM's
``--export=ALL``), so inside a job ``srun`` and ``scontrol`` are the shims
too, and ``FLEETSLURM_HOME`` names the controller to talk to; the "machines"
share this host's filesystem, which is what lets the libraries' job folders
be read from the jobs (see the README on real multi-host fleets).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from fleetslurm.shims import install_shims

_CLIENT_VARS = ("SLURM_", "SBATCH_", "SQUEUE_", "SACCT_", "SINFO_", "SALLOC_", "SRUN_")


@dataclass
class ClientFleet:
    files: object          #: conftest.FleetFiles
    machines: list         #: sshd Machine objects
    shims: Path            #: the directory first on PATH
    work: Path             #: the submit directory (cwd of the test)

    def fleetslurm(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", *args],
                              capture_output=True, text=True, timeout=timeout)

    def sacct(self, job: str, fields: str = "JobID,State,NodeList") -> list[dict]:
        """What `sacct -P` says about a job (through the shim on PATH)."""
        out = subprocess.run(["sacct", "-P", "-j", job, "-o", fields], capture_output=True,
                             text=True, check=True).stdout.splitlines()
        names = out[0].split("|")
        return [dict(zip(names, line.split("|"))) for line in out[1:]]

    def wait_nodes_idle(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        want = {m.name for m in self.machines}
        while True:
            out = subprocess.run(["sinfo", "-N", "-h", "-o", "%N %t"], capture_output=True,
                                 text=True).stdout
            idle = {line.split()[0] for line in out.splitlines() if line.endswith(" idle")}
            if want <= idle:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"machines not idle: {out}")
            time.sleep(0.2)


@pytest.fixture
def client_fleet(sshd_fleet, make_config, ssh_home, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientFleet]:
    """Three sshd machines, a controller, and fleetslurm's shims first on PATH."""
    machines = sshd_fleet(3)
    files = make_config(machines, heartbeat_interval=0.5, kill_wait=2)
    shims = tmp_path / "shims"
    install_shims(shims)
    for name in list(os.environ):
        if name.startswith(_CLIENT_VARS):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}")
    for name, value in files.env.items():
        monkeypatch.setenv(name, value)
    work = tmp_path / "submit"
    work.mkdir()
    monkeypatch.chdir(work)
    assert shutil.which("sbatch") == str(shims / "sbatch")
    fleet = ClientFleet(files, machines, shims, work)
    fleet.wait_nodes_idle()
    yield fleet
    pid_file = files.home / "controller.pid"
    fleet.fleetslurm("controller", "stop")
    try:
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass

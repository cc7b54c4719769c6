"""A lab controller run by root over loopback sshd machines, for the tests of
jobs run as their users over SSH: its root under /tmp (the second user must
reach it), a shared work directory, ``fleetslurm`` commands as root or as a
user, and ``sacct``'s view of a job's end."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from second_user import run_as  # noqa: E402

REPO = str(Path(__file__).resolve().parents[1])
PY = sys.executable


class SshLab:
    """``lab init`` (service user root) with ``files``' config, its machines'
    host keys trusted, ``lab start``; :meth:`close` stops it and removes its
    directories. ``path`` is the commands' PATH."""

    def __init__(self, files: Any, path: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fsl-lab-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.work = Path(tempfile.mkdtemp(prefix="fsl-shared-", dir="/tmp"))
        os.chmod(self.work, 0o1777)
        self.env = {"PATH": path, "PYTHONPATH": REPO, "FLEETSLURM_LAB_ROOT": str(self.root),
                    "LANG": "C.UTF-8"}
        self.state = self.root / "var/lib/fleetslurm"
        try:
            init = self.fs("lab", "init", "--config", str(files.path), "--service-user", "root")
            assert init.returncode == 0, init.stderr
            shutil.copy(files.known_hosts, self.state / "known_hosts")
            start = self.fs("lab", "start")
            assert start.returncode == 0, start.stderr
        except BaseException:
            self.close()
            raise

    def fs(self, *args: str, user: Optional[Any] = None) -> subprocess.CompletedProcess:
        """``fleetslurm ARGS`` as root, or as ``user`` (a pwd entry)."""
        argv = [PY, "-m", "fleetslurm", *args]
        if user is None:
            return subprocess.run(argv, capture_output=True, text=True, env=self.env,
                                  cwd=self.work, timeout=90)
        return run_as(user, argv, dict(self.env, HOME=user.pw_dir), str(self.work), timeout=90)

    def sacct(self, job: str, field: str) -> str:
        return self.fs("sacct", "-a", "-X", "-n", "-P", "-j", job, "-o", field).stdout.strip()

    def wait(self, job: str) -> str:
        """The job's final state, once it has one (90 s at most)."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            st = self.sacct(job, "State")
            if st and st not in ("PENDING", "RUNNING", "COMPLETING"):
                return st
            time.sleep(0.3)
        raise AssertionError(f"job {job} did not end")

    def close(self) -> None:
        self.fs("lab", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)

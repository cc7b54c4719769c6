"""The two sides of the differential suite: real SLURM and fleetslurm.

Both are driven the same way, by running their commands (``sbatch``,
``squeue``, ``scontrol``...) as processes from a private working directory
with a clean environment. Helpers that wait or look at a job use the
commands themselves (``squeue -t all``), so they exercise both sides alike.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

from .slurm_oracle import BIN, Oracle

__all__ = ["Result", "Side", "SlurmSide", "FleetSide", "LIVE", "MARK", "clean_env", "kill_left_jobs"]

#: states of a job that has not ended (SLURM_COMPAT.md "Job states")
LIVE = frozenset({"PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "REQUEUED", "SUSPENDED",
                  "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT",
                  "PREEMPTED"})

#: a variable of the submitter's environment, to see what --export passes on
MARK = "DIFF_SUBMIT_MARK"

#: fleetslurm's first job id here: far from the small numbers (CPUs, MB,
#: array indexes) that ids are told apart from when output is normalised
FLEET_FIRST_JOB_ID = 7_000_001


def clean_env(extra: Optional[dict] = None) -> dict:
    """The caller's environment without anything SLURM or fleetslurm reads."""
    prefixes = ("SLURM_", "SBATCH_", "SQUEUE_", "SINFO_", "SACCT_", "SCANCEL_", "SRUN_",
                "SALLOC_", "FLEETSLURM_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["LC_ALL"] = "C"
    env[MARK] = "exported"  # --export=ALL must carry it into jobs, NONE must not
    env.update(extra or {})
    return env


@dataclass
class Result:
    """What a command printed and returned."""

    rc: int
    out: str
    err: str

    def __str__(self) -> str:  # shown by assertion messages
        return f"rc={self.rc}\n--- stdout\n{self.out}--- stderr\n{self.err}"


@dataclass
class Side:
    """One system under comparison, with its own working directory."""

    label: str
    work: Path
    env: dict = field(repr=False)
    submitted: list = field(default_factory=list, repr=False)

    def argv(self, cmd: str) -> list[str]:
        raise NotImplementedError

    def run(self, cmd: str, *args: str, cwd: Optional[Path] = None, input: Optional[str] = None,
            env: Optional[dict] = None, timeout: float = 60) -> Result:
        e = dict(self.env)
        e.update(env or {})
        proc = subprocess.run([*self.argv(cmd), *args], input=input, capture_output=True,
                              text=True, cwd=str(cwd or self.work), env=e, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def write(self, name: str, text: str, mode: int = 0o755) -> Path:
        path = self.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        return path

    def sbatch(self, *args: str, cwd: Optional[Path] = None, input: Optional[str] = None,
               env: Optional[dict] = None) -> int:
        """Submit with ``--parsable``; the job id (remembered for clean-up)."""
        res = self.run("sbatch", "--parsable", *args, cwd=cwd, input=input, env=env)
        if res.rc != 0 or not res.out.strip().isdigit():
            raise AssertionError(f"{self.label}: sbatch {' '.join(args)} failed:\n{res}")
        job = int(res.out.strip())
        self.submitted.append(job)
        return job

    def states(self, ids: Iterable[int]) -> dict[str, tuple[str, str]]:
        """``{jobid text: (STATE, REASON)}`` for every row squeue shows for ``ids``."""
        res = self.run("squeue", "-h", "-t", "all", "-j", ",".join(str(i) for i in ids),
                       "-o", "%i|%T|%r")
        out: dict[str, tuple[str, str]] = {}
        for line in res.out.splitlines():
            jid, state, reason = line.split("|")
            out[jid] = (state, reason)
        return out

    def settled(self, ids: Sequence[int], *, running: Sequence[int] = ()) -> bool:
        """Every job in ``ids`` has ended and every job in ``running`` runs."""
        states = self.states([*ids, *running]) if (ids or running) else {}
        if not states:
            return False
        for jid, (state, _) in states.items():
            master = int(re.split(r"[_\[]", jid)[0])
            if master in running and state != "RUNNING":
                return False
            if master in ids and state in LIVE:
                return False
        seen = {int(re.split(r"[_\[]", jid)[0]) for jid in states}
        return set(ids) | set(running) <= seen

    def scancel(self, *ids: int) -> Result:
        return self.run("scancel", *[str(i) for i in ids])

    def cleanup(self) -> None:
        """Cancel whatever this side still has queued or running."""
        if self.submitted:
            self.scancel(*self.submitted)

    def tasks(self, master: int) -> dict[int, int]:
        """``{own job id: array index}`` of an array's started tasks."""
        res = self.run("squeue", "-h", "-t", "all", "-r", "-j", str(master), "-o", "%A|%K|%i")
        out = {}
        for line in res.out.splitlines():
            own, index, jid = line.split("|")
            if index.isdigit():
                out[int(own)] = int(index)
        return out


class SlurmSide(Side):
    """The real SLURM: its own binaries, never whatever is first on PATH."""

    def __init__(self, root: Path, oracle: Oracle) -> None:
        work = root / "slurm"
        work.mkdir(parents=True)
        env = clean_env({"PATH": f"{BIN}:{os.environ.get('PATH', '')}"})
        super().__init__("slurm", work, env)
        self.oracle = oracle

    def argv(self, cmd: str) -> list[str]:
        return [self.oracle.cmd(cmd)]


class FleetSide(Side):
    """fleetslurm with a private FLEETSLURM_HOME and a one-machine fleet named
    like the oracle's cluster, partition and node, so names line up."""

    def __init__(self, root: Path, oracle: Oracle) -> None:
        from fleetslurm.shims import install_shims

        work = root / "fleet"
        work.mkdir(parents=True)
        self.home = root / "fleet-home"
        self.home.mkdir(mode=0o700)
        self.bin = root / "fleet-bin"
        install_shims(self.bin)
        config = {
            "cluster_name": oracle.cluster,
            # the oracle has no accounting (AccountingStorageEnforce=none): any -A, any --qos
            "accounting_storage_enforce": "none",
            "partitions": {oracle.partition: {"default": True}},
            "machines": {oracle.node: {"transport": "local", "hostname": oracle.node,
                                       "cpus": oracle.cpus,
                                       "memory_gb": oracle.real_memory_mb / 1024,
                                       "partitions": [oracle.partition]}},
        }
        cfg = root / "fleet_config.json"
        cfg.write_text(json.dumps(config))
        self._first_job_id()
        env = clean_env({"FLEETSLURM_HOME": str(self.home), "FLEETSLURM_CONFIG": str(cfg),
                         "PATH": f"{self.bin}:{os.environ.get('PATH', '')}"})
        super().__init__("fleet", work, env)

    def _first_job_id(self) -> None:
        """Start job ids at FLEET_FIRST_JOB_ID (SLURM's FirstJobId) by seeding
        the store before the controller first opens it."""
        from fleetslurm.paths import StatePaths
        from fleetslurm.store import Store

        db = StatePaths(self.home).db
        Store(db)  # creates the schema
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE meta SET value=? WHERE key='next_job_id'",
                         (str(FLEET_FIRST_JOB_ID),))

    def argv(self, cmd: str) -> list[str]:
        return [str(self.bin / cmd)]

    def stop(self) -> None:
        """Stop the controller and anything a job left behind."""
        pid_file = self.home / "controller.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = None
        subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", "controller", "stop"],
                       env=self.env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        kill_left_jobs(self.home)


def kill_left_jobs(home: Path) -> None:
    """SIGKILL every job a fleetslurm home's supervisors recorded (also used by
    tests/conftest.py): each supervisor's session and the job's own process
    group (the job is a group of its own inside that session)."""
    for sup in (home / "node").glob("*/jobs/*/supervisor.json"):
        try:
            record = json.loads(sup.read_text())
        except (OSError, ValueError):
            continue
        for key in ("job_pid", "pid"):
            try:
                os.killpg(int(record.get(key)), signal.SIGKILL)
            except (OSError, ValueError, TypeError):
                pass


def wait_until(pred, timeout: float, what: str, interval: float = 1.0) -> None:
    """Poll ``pred()`` until true; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

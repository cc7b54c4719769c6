"""Workstation policies on the loopback sshd fleet: real controller, SSH,
agents, supervisors and jobs.

- a machine with a CPU hog started outside fleetslurm (by someone logged in
  over SSH) gets no new job while another is free; it does again once the
  hog is gone. That machine's sshd runs in a PID namespace of its own, so
  its agent sees its own processes only, as on a separate computer (the
  host's other load would otherwise count as every machine's);
- the owner's activity (the configured activity file, touched) suspends a
  running job (``S``/SUSPENDED in squeue, its processes stopped) and resumes
  it when the owner has been idle long enough;
- with ``requeue`` the job goes back to the queue and runs again after.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from .sshd_machines import SSHD, Machine
from .test_fleet import Cli

HB = 0.5


def _unshare_works() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


class PidnsMachine(Machine):
    """A machine whose sshd (and so its agent and jobs) runs in a PID
    namespace of its own with its own /proc: what its agent measures is this
    machine's load, not the host's."""

    def launch(self) -> None:
        if self.running:
            return
        config = self._write_config()
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", SSHD, "-D", "-f",
             str(config), "-E", str(self.log_path)], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def _job_processes(self, table: dict) -> set:
        # the pids its supervisors record are the namespace's, not the host's:
        # everything of the machine descends from the unshare process instead
        return set()

    def ssh(self, command: str) -> subprocess.Popen:
        """Someone logs in and runs ``command`` (not through fleetslurm)."""
        return subprocess.Popen(
            ["ssh", "-i", str(self.client_key), "-p", str(self.port), "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "LogLevel=ERROR", f"root@{self.address}", command],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def destroy(self) -> None:
        self.kill(jobs=True)


def _reasons(cli: Cli) -> dict[str, str]:
    out = cli.run("sinfo", "-R", "-h", "-o", "%N|%E", check=True).stdout
    return dict(line.split("|", 1) for line in out.splitlines() if "|" in line)


def _wait_reason(cli: Cli, node: str, start: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        got = _reasons(cli).get(node, "")
        if got.startswith(start):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"sinfo -R never said {start!r} for {node}: {_reasons(cli)}")
        time.sleep(0.2)


def _squeue(cli: Cli, job: int) -> str:
    return cli.run("squeue", "-h", "-j", str(job), "-o", "%t|%T|%N", check=True).stdout.strip()


@pytest.mark.skipif(not _unshare_works(), reason="PID namespaces cannot be made here")
def test_a_foreign_cpu_hog_keeps_new_jobs_off_its_machine(sshd_pool, sshd_fleet, make_config,
                                                         ssh_home, tmp_path: Path) -> None:
    ws = PidnsMachine("ws", 60, tmp_path / "ws", sshd_pool.client_key)
    cli = None
    hog = None
    try:
        ws.start()
        (m1,) = sshd_fleet(1)
        policy = {"max_foreign_load": 0.3, "min_free_mem_gb": None, "owner_idle_minutes": None}
        files = make_config([ws, m1], heartbeat_interval=HB, overrides={
            "ws": {"cpus": 4, "memory_gb": 2, "weight": 1, "policy": policy},
            "m1": {"cpus": 2, "weight": 2}})
        cli = Cli(files, tmp_path / "submit")
        cli.wait_nodes({"ws": "idle", "m1": "idle"})
        time.sleep(3 * HB)  # two heartbeats: the foreign load is measured
        # quiet: the preferred machine (lower weight) takes the job
        first = cli.sbatch("-c", "1", "--wrap", "true")
        assert cli.wait(first)["nodes"] == ["ws"]
        pidfile = tmp_path / "hog.pid"
        hog = ws.ssh(f"echo $$ > {pidfile}; exec python3 -c 'while True: pass'")
        reason = _wait_reason(cli, "ws", "Foreign load ")
        assert reason.endswith(" > 0.3"), reason
        assert cli.node_states()["ws"] == "idle"  # its state stays what its jobs make it
        jobs = [cli.sbatch("-c", "1", "--wrap", "sleep 3") for _ in range(3)]
        recs = [cli.wait(j, {"RUNNING", "PENDING"}) for j in jobs]
        time.sleep(1.0)  # a pass or two more: still nothing on ws
        recs = [cli.records(j)[0] for j in jobs]
        assert [r["nodes"] for r in recs if r["state"] == "RUNNING"] == [["m1"], ["m1"]], recs
        waiting = [r for r in recs if r["state"] == "PENDING"]
        assert len(waiting) == 1
        explained = cli.run("explain", str(waiting[0]["job_id"]), check=True).stdout
        assert "node ws is idle (no new jobs by its workstation policy: Foreign load" in \
            explained, explained
        # the hog ends: ws takes work again
        assert ws.ssh(f"kill $(cat {pidfile})").wait(30) == 0
        hog.wait(30)
        deadline = time.monotonic() + 30
        while _reasons(cli).get("ws"):
            assert time.monotonic() < deadline, _reasons(cli)
            time.sleep(0.2)
        for j in jobs:
            assert cli.wait(j)["state"] == "COMPLETED"
        assert cli.wait(cli.sbatch("-c", "1", "--wrap", "true"))["nodes"] == ["ws"]
    finally:
        if hog is not None and hog.poll() is None:
            hog.kill()
        if cli is not None:
            cli.stop()
        ws.destroy()


class Owner:
    """Someone at the machine: the activity file touched every 0.2 s while active."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.active = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(0.2):
            if self.active.is_set():
                self.path.touch()

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


@pytest.fixture
def owned(sshd_fleet, make_config, ssh_home, tmp_path: Path) -> Iterator:
    made: list = []

    def make(when: str) -> tuple[Cli, Owner, Path]:
        (m1,) = sshd_fleet(1)
        activity = tmp_path / "activity"
        policy = {"max_foreign_load": None, "min_free_mem_gb": None,
                  "owner_idle_minutes": 0.05, "when_owner_active": when,
                  "activity_file": str(activity)}
        files = make_config([m1], heartbeat_interval=HB, kill_wait=2,
                            overrides={"m1": {"policy": policy}})
        cli = Cli(files, tmp_path / "submit")
        made.append(cli)
        owner = Owner(activity)
        made.append(owner)
        cli.wait_nodes({"m1": "idle"})
        return cli, owner, tmp_path / "count"

    yield make
    for thing in reversed(made):
        thing.stop()


def _grows(path: Path, within: float) -> bool:
    before = path.read_text().count("\n") if path.exists() else 0
    time.sleep(within)
    return (path.read_text().count("\n") if path.exists() else 0) > before


def test_owner_activity_suspends_and_its_end_resumes(owned) -> None:
    cli, owner, count = owned("suspend")
    job = cli.sbatch("-t", "5", "--wrap", f"while true; do echo x >> {count}; sleep 0.1; done")
    cli.wait(job, {"RUNNING"})
    assert _grows(count, 1.0)
    owner.active.set()
    rec = cli.wait(job, {"SUSPENDED"}, timeout=30)
    assert rec["nodes"] == ["m1"]
    assert _squeue(cli, job) == "S|SUSPENDED|m1"
    assert cli.run("squeue", "-h", "-t", "S", "-o", "%i", check=True).stdout.split() == [str(job)]
    assert _wait_reason(cli, "m1", "Owner active") == "Owner active"
    assert not _grows(count, 1.5)  # stopped: SIGSTOP reached it
    shown = cli.run("scontrol", "show", "job", str(job), check=True).stdout
    assert "JobState=SUSPENDED" in shown and "SuspendTime=None" not in shown
    explained = cli.run("explain", str(job), check=True).stdout
    assert "it is suspended since" in explained and "Owner active" in explained
    # a job submitted meanwhile waits: the owner is there
    other = cli.sbatch("--wrap", "true")
    time.sleep(1.0)
    assert cli.records(other)[0]["state"] == "PENDING"
    owner.active.clear()  # the owner leaves: 3 s idle and it runs again
    cli.wait(job, {"RUNNING"}, timeout=30)
    assert _grows(count, 1.0)
    assert cli.wait(other)["state"] == "COMPLETED"
    cli.run("scancel", str(job), check=True)
    rec = cli.wait(job)
    assert rec["state"] == "CANCELLED"
    acct = cli.run("sacct", "-n", "-X", "-j", str(job), "-o", "Suspended", check=True).stdout
    assert acct.strip() not in ("", "00:00:00"), acct


def test_a_suspended_job_is_cancelled_at_once(owned) -> None:
    cli, owner, count = owned("suspend")
    job = cli.sbatch("--wrap", "sleep 300")
    cli.wait(job, {"RUNNING"})
    owner.active.set()
    cli.wait(job, {"SUSPENDED"}, timeout=30)
    began = time.monotonic()
    cli.run("scancel", str(job), check=True)
    assert cli.wait(job, timeout=30)["state"] == "CANCELLED"
    # SIGCONT follows the SIGTERM: it does not wait for KillWait's SIGKILL
    assert time.monotonic() - began < 10


def test_owner_activity_requeues_with_the_requeue_policy(owned) -> None:
    cli, owner, count = owned("requeue")
    job = cli.sbatch("--wrap", f"echo run >> {count}; sleep 300")
    cli.wait(job, {"RUNNING"})
    owner.active.set()
    rec = cli.wait(job, {"PENDING"}, timeout=30)
    assert rec["restart_count"] == 1
    time.sleep(1.0)
    assert cli.records(job)[0]["state"] == "PENDING"  # not while the owner is there
    owner.active.clear()
    rec = cli.wait(job, {"RUNNING"}, timeout=30)
    assert rec["nodes"] == ["m1"]
    deadline = time.monotonic() + 10
    while count.read_text() != "run\nrun\n":
        assert time.monotonic() < deadline, count.read_text()
        time.sleep(0.1)
    cli.run("scancel", str(job), check=True)
    cli.wait(job)


def test_time_suspended_does_not_count_against_the_limit(owned) -> None:
    """A 1-minute job that needs ~45 s of running, suspended for 30 s: it
    ends COMPLETED after more than a minute of wall time, as in SLURM (its
    end moves by the time it was suspended)."""
    cli, owner, count = owned("suspend")
    job = cli.sbatch("-t", "1", "--wrap",
                     f"for i in $(seq 400); do echo x >> {count}; sleep 0.1; done")
    cli.wait(job, {"RUNNING"})
    time.sleep(3)
    owner.active.set()
    cli.wait(job, {"SUSPENDED"}, timeout=30)
    time.sleep(30)
    owner.active.clear()
    cli.wait(job, {"RUNNING"}, timeout=30)
    end = cli.run("squeue", "-h", "-j", str(job), "-o", "%e|%S", check=True).stdout.strip()
    ends, starts = (time.mktime(time.strptime(t, "%Y-%m-%dT%H:%M:%S")) for t in end.split("|"))
    assert ends - starts >= 60 + 29, end  # its end moved by the time suspended
    rec = cli.wait(job, timeout=120)
    assert rec["state"] == "COMPLETED", rec
    assert rec["end_time"] - rec["start_time"] > 62, rec
    assert count.read_text().count("\n") == 400

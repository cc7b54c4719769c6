"""A machine that hangs (every process of it stopped with SIGSTOP) on the
loopback sshd fleet: real controller, SSH, agents, supervisors and jobs.

Frozen for longer than three heartbeats but less than ``node_timeout``, it is
only *not responding* (sinfo's ``*``): its job is not requeued and completes
once. Frozen past ``node_timeout``, it is DOWN and its job requeued elsewhere;
when it thaws, its old run is stopped before it can finish: the job's side
effects show one completion.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .test_fleet import Cli

HB = 0.5


def _starts(cli: Cli, job: int) -> int:
    """The job's 'start' events in its accounting history."""
    from fleetslurm.store import Store

    store = Store(cli.files.paths.db)
    try:
        return store.count_events(job, "start")
    finally:
        store.close()


def _sinfo_state(cli: Cli, node: str) -> str:
    return cli.run("sinfo", "-h", "-N", "-n", node, "-o", "%t", check=True).stdout.strip()


@pytest.fixture
def two(sshd_fleet, make_config, ssh_home, tmp_path):
    def make(node_timeout: float) -> tuple[Cli, list]:
        machines = sshd_fleet(2)
        files = make_config(machines, heartbeat_interval=HB, kill_wait=2,
                            node_timeout=node_timeout)
        cli = Cli(files, tmp_path / "submit")
        made.append(cli)
        cli.run("sinfo", check=True)
        cli.wait_nodes({m.name: "idle" for m in machines})
        return cli, machines

    made: list[Cli] = []
    yield make
    for cli in made:
        cli.stop()


def test_frozen_less_than_node_timeout_is_not_responding_and_its_job_runs_once(
        two, tmp_path: Path) -> None:
    cli, (m1, m2) = two(node_timeout=30)
    marks = tmp_path / "marks"
    job = cli.sbatch("-w", "m1", "--wrap", f"echo start >> {marks}; sleep 8; echo done >> {marks}")
    cli.wait(job, {"RUNNING"})
    frozen = m1.freeze()
    try:
        t0 = time.monotonic()
        # three heartbeats later: not responding, still doing what it did
        deadline = t0 + 10
        while _sinfo_state(cli, "m1") != "mix*":
            assert time.monotonic() < deadline, _sinfo_state(cli, "m1")
            time.sleep(0.2)
        show = cli.run("scontrol", "show", "node", "m1", check=True).stdout
        assert "State=MIXED+NOT_RESPONDING" in show, show
        # no new job goes there meanwhile
        other = cli.sbatch("--wrap", "true")
        assert cli.wait(other)["nodes"] == ["m2"]
        time.sleep(max(0.0, t0 + 6 - time.monotonic()))
        assert cli.records(job)[0]["state"] == "RUNNING"
    finally:
        m1.thaw(frozen)
    rec = cli.wait(job, timeout=60)
    assert (rec["state"], rec["restart_count"], rec["nodes"]) == ("COMPLETED", 0, ["m1"])
    assert marks.read_text() == "start\ndone\n"
    assert _starts(cli, job) == 1
    cli.wait_nodes({"m1": "idle"})


def test_frozen_past_node_timeout_is_down_and_the_old_run_never_completes(
        two, tmp_path: Path) -> None:
    cli, (m1, m2) = two(node_timeout=3)
    marks = tmp_path / "marks"
    sleep = 20
    job = cli.sbatch("--wrap",
                     f"echo start >> {marks}; sleep {sleep}; echo done $SLURMD_NODENAME >> {marks}")
    assert cli.wait(job, {"RUNNING"})["nodes"] == ["m1"]
    started = time.monotonic()
    frozen = m1.freeze()
    try:
        cli.wait_nodes({"m1": "down*"}, timeout=15)
        rec = cli.wait(job, {"RUNNING"}, timeout=20)
        assert (rec["nodes"], rec["restart_count"]) == (["m2"], 1)
        time.sleep(max(0.0, started + 6 - time.monotonic()))
    finally:
        m1.thaw(frozen)  # the old run would finish `sleep` seconds after its start
    cli.wait_nodes({"m1": "idle"}, timeout=30)
    rec = cli.wait(job, timeout=60)
    assert (rec["state"], rec["restart_count"], rec["nodes"]) == ("COMPLETED", 1, ["m2"])
    # past the time the old run would have ended: it never did
    time.sleep(max(0.0, started + sleep + 2 - time.monotonic()))
    assert marks.read_text() == "start\nstart\ndone m2\n"
    assert _starts(cli, job) == 2
    assert cli.records(job)[0]["state"] == "COMPLETED"

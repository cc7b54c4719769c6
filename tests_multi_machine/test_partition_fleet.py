"""A machine cut off by the network (its sshd in a network namespace of its
own, reached over a veth pair whose far end the test sets down), on the
loopback sshd fleet: real controller, SSH, agents, supervisors and jobs.

Unlike a frozen machine, a partitioned one keeps running its jobs. Past
``node_timeout`` it is DOWN and its job requeued; when the link returns:
- a run that ended during the partition, before any new run started, is the
  job's result (the job does not run again);
- a run still going is stopped before it can finish (the new run elsewhere is
  the one that completes).

Skipped where network namespaces cannot be made (needs root and ``ip netns``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from .sshd_machines import SSHD, Machine
from .test_fleet import Cli
from .test_node_health_fleet import _starts

HB = 0.5


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _netns_works() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    name = f"fsl-probe-{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", name)
    except (subprocess.SubprocessError, OSError):
        return False
    try:
        _ip("netns", "del", name)
    except (subprocess.SubprocessError, OSError):
        pass
    return True


pytestmark = pytest.mark.skipif(not _netns_works(),
                                reason="network namespaces cannot be made here")


class NetnsMachine(Machine):
    """A machine whose sshd runs in its own network namespace ``ns``, at
    10.254.N.2 behind a veth pair; :meth:`cut` and :meth:`heal` drop and
    restore its link without any process noticing at once."""

    def __init__(self, root: Path, client_key: Path) -> None:
        super().__init__("p1", 0, root, client_key)
        tag = secrets.token_hex(3)
        self.ns, self.host_if, self.ns_if = f"fsl-{tag}", f"fh{tag}", f"fn{tag}"
        net = 100 + int(tag[:2], 16) % 100
        self.host_ip, self.address, self.port = f"10.254.{net}.1", f"10.254.{net}.2", 2222
        _ip("netns", "add", self.ns)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
            "netns", self.ns)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        self._in_ns("addr", "add", f"{self.address}/30", "dev", self.ns_if)
        self._in_ns("link", "set", self.ns_if, "up")
        self._in_ns("link", "set", "lo", "up")

    def _in_ns(self, *args: str) -> None:
        _ip("netns", "exec", self.ns, "ip", *args)

    def launch(self) -> None:
        if self.running:
            return
        config = self._write_config()
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, SSHD, "-D", "-f", str(config), "-E",
             str(self.log_path)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)

    def cut(self) -> None:
        """The far end goes down: packets to and from the machine are lost."""
        self._in_ns("link", "set", self.ns_if, "down")

    def heal(self) -> None:
        self._in_ns("link", "set", self.ns_if, "up")

    def destroy(self) -> None:
        self.kill(jobs=True)
        for args in (("link", "del", self.host_if), ("netns", "del", self.ns)):
            try:
                _ip(*args)
            except subprocess.SubprocessError:
                pass


@pytest.fixture
def partitioned(sshd_pool, sshd_fleet, make_config, ssh_home, tmp_path) -> Iterator:
    made: list = []

    def make(with_m1: bool) -> tuple[Cli, NetnsMachine]:
        p1 = NetnsMachine(tmp_path / "p1", sshd_pool.client_key)
        made.append(p1)
        p1.start()
        machines = [p1] + (sshd_fleet(1) if with_m1 else [])
        files = make_config(machines, heartbeat_interval=HB, kill_wait=2, node_timeout=3,
                            overrides={"m1": {"weight": 2}})
        cli = Cli(files, tmp_path / "submit")
        made.append(cli)
        cli.run("sinfo", check=True)
        cli.wait_nodes({m.name: "idle" for m in machines})
        return cli, p1

    yield make
    for thing in reversed(made):
        if isinstance(thing, Cli):
            thing.stop()
        else:
            thing.destroy()


def test_a_run_that_ended_during_the_partition_is_the_result_not_run_again(
        partitioned, tmp_path: Path) -> None:
    cli, p1 = partitioned(with_m1=False)
    marks = tmp_path / "marks"
    job = cli.sbatch("--wrap", f"echo start >> {marks}; sleep 2; echo done >> {marks}; "
                               "echo output")
    cli.wait(job, {"RUNNING"})
    p1.cut()
    try:
        cli.wait_nodes({"p1": "down*"}, timeout=20)
        rec = cli.wait(job, {"PENDING"}, timeout=10)
        assert rec["restart_count"] == 1  # requeued: nowhere else to run
        deadline = time.monotonic() + 10
        while marks.read_text() != "start\ndone\n":  # it ended, cut off
            assert time.monotonic() < deadline, marks.read_text()
            time.sleep(0.1)
    finally:
        p1.heal()
    rec = cli.wait(job, timeout=90)
    assert (rec["state"], rec["exit_code"], rec["nodes"]) == ("COMPLETED", 0, ["p1"]), rec
    time.sleep(3)  # nothing starts it again
    assert marks.read_text() == "start\ndone\n"
    assert _starts(cli, job) == 1
    assert cli.records(job)[0]["state"] == "COMPLETED"
    assert (cli.work / f"slurm-{job}.out").read_text() == "output\n"  # home once


def test_a_run_still_going_when_the_link_returns_is_stopped(partitioned,
                                                            tmp_path: Path) -> None:
    cli, p1 = partitioned(with_m1=True)
    marks = tmp_path / "marks"
    sleep = 15
    job = cli.sbatch("--wrap", f"echo start >> {marks}; sleep {sleep}; "
                               f"echo done $SLURMD_NODENAME >> {marks}")
    assert cli.wait(job, {"RUNNING"})["nodes"] == ["p1"]
    started = time.monotonic()
    p1.cut()
    try:
        cli.wait_nodes({"p1": "down*"}, timeout=20)
        rec = cli.wait(job, {"RUNNING"}, timeout=20)
        assert (rec["nodes"], rec["restart_count"]) == (["m1"], 1)
    finally:
        p1.heal()
    cli.wait_nodes({"p1": "idle"}, timeout=60)
    assert time.monotonic() - started < sleep, "the link came back too late to tell"
    rec = cli.wait(job, timeout=60)
    assert (rec["state"], rec["nodes"]) == ("COMPLETED", ["m1"]), rec
    time.sleep(max(0.0, started + sleep + 2 - time.monotonic()))
    assert marks.read_text() == "start\nstart\ndone m1\n"
    assert _starts(cli, job) == 2

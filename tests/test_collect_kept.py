"""A job's output that cannot come home stays on its machine.

Without a shared filesystem the controller copies a finished run's stdout and
stderr home, then tells the agent to forget the run's directory. When the
copy fails for another reason than a lost link (a file on the machine it may
not read, an output path on the submit host it cannot write), the job must
still finish, and the run's directory must stay on the machine, with the
job's output file (when it can be written) and the controller's log saying
where. A file the job never wrote is not such a failure: it comes home empty.

Driven by step(now) in-process against FakeTransport machines, so the
failing file is exact; the same path over real sshd is in
tests_multi_machine/test_fleet.py.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from stepping import pump, submit

from fleetslurm.config import FleetConfig, MachineConfig
from fleetslurm.ctld.loop import Controller
from fleetslurm.errors import FileMissing, FileUnreadable, NodeUnreachable
from fleetslurm.paths import JobPaths, StatePaths
from fleetslurm.transport.fake import FakeTransport


class _Fleet:
    """One fake machine without a shared filesystem, and its controller."""

    def __init__(self, tmp_path: Path) -> None:
        cfg = FleetConfig(cluster_name="kept", machines={
            "m1": MachineConfig(hostname="127.0.0.2", cpus=1, memory_gb=1)})
        self.fake = FakeTransport("m1", workdir="/fake/m1", auto_end=False)
        self.clock = [time.time()]
        self.ctl = Controller(cfg, StatePaths(tmp_path / "home"), transports={"m1": self.fake})
        self.ctl.start(self.clock[0])
        self.work = tmp_path / "work"
        self.work.mkdir()
        self.pump(lambda: self.ctl.sched.node_state("m1") == "idle")

    def pump(self, until, timeout: float = 20.0) -> None:
        pump(self.ctl, until, self.clock, 0.01, timeout)

    def step(self) -> None:
        self.clock[0] += 0.01
        self.ctl.step(self.clock[0])

    def submit(self, **options: str) -> int:
        job = submit(self.ctl, self.clock[0], {"wrap": "echo hi", **options},
                     script="#!/bin/sh\necho hi\n", cwd=str(self.work), script_name="wrap")
        self.pump(lambda: self.ctl.store.task(job)["state"] == "RUNNING")
        return job

    def paths(self, job: int) -> JobPaths:
        return JobPaths("/fake/m1", self.ctl.store.task(job)["run_key"])

    def finish(self, job: int, output: "dict | None" = None) -> dict:
        """The run ends on the machine; returns the task once it is final."""
        key = self.ctl.store.task(job)["run_key"]
        event = self.fake._ended(key, "COMPLETED", 0)
        if output is not None:
            event["output"] = output
        self.fake.push(event)
        self.pump(lambda: self.ctl.store.task(job)["state"] == "COMPLETED")
        return self.ctl.store.task(job)

    def forgotten(self) -> list:
        """Keys the agent was told to delete."""
        return [r["key"] for r in self.fake.requests
                if r.get("op") == "forget" and not r.get("keep")]

    def kept(self) -> list:
        """Keys the agent was told to move aside (``forget`` with ``keep``)."""
        return [r["key"] for r in self.fake.requests
                if r.get("op") == "forget" and r.get("keep")]

    def close(self) -> None:
        self.ctl.close()


@pytest.fixture
def fleet(tmp_path: Path):
    f = _Fleet(tmp_path)
    yield f
    f.close()


def test_an_unreadable_output_file_stays_on_the_machine(fleet, capfd) -> None:
    job = fleet.submit(error="err-%j.txt")
    jp = fleet.paths(job)
    fleet.fake.files[jp.stdout] = b"the stdout\n"
    fleet.fake.unreadable[jp.stderr] = "permission denied; make it readable for lab"
    task = fleet.finish(job)
    assert task["collected"] == 1  # finished, not stuck in COMPLETING
    # what could be read came home; the other file names the problem and the place
    assert (fleet.work / f"slurm-{job}.out").read_bytes() == b"the stdout\n"
    assert (fleet.work / f"err-{job}.txt").read_text() == (
        f"fleetslurm: error: job {job}: node m1: cannot read {jp.stderr}: permission denied; "
        f"make it readable for lab; its output is kept on m1 in {jp.kept}\n")
    # the run's directory is moved aside on the machine, not deleted
    fleet.pump(lambda: jp.key in fleet.kept())
    assert jp.key not in fleet.forgotten()
    assert f"job {job}: node m1: cannot read {jp.stderr}" in capfd.readouterr().err


def test_a_file_the_job_never_wrote_comes_home_empty_and_the_run_is_forgotten(fleet) -> None:
    job = fleet.submit()
    jp = fleet.paths(job)
    assert jp.stdout not in fleet.fake.files
    fleet.finish(job)
    fleet.pump(lambda: jp.key in fleet.forgotten())
    assert (fleet.work / f"slurm-{job}.out").read_bytes() == b""


def test_an_output_path_the_submit_host_cannot_write_stays_on_the_machine(fleet, capfd) -> None:
    (fleet.work / "afile").write_text("a file, not a directory\n")
    job = fleet.submit(output="afile/out-%j.txt")
    jp = fleet.paths(job)
    fleet.fake.files[jp.stdout] = b"precious\n"
    task = fleet.finish(job)
    assert task["collected"] == 1
    fleet.pump(lambda: jp.key in fleet.kept())
    assert jp.key not in fleet.forgotten()
    err = capfd.readouterr().err
    assert (f"job {job}: its output could not be written on this host: " in err
            and f"its output is kept on m1 in {jp.kept}: copy it from there" in err), err


def test_inline_output_the_submit_host_cannot_write_stays_on_the_machine(fleet, capfd) -> None:
    (fleet.work / "afile").write_text("a file, not a directory\n")
    job = fleet.submit(output="afile/out-%j.txt")
    jp = fleet.paths(job)
    task = fleet.finish(job, output={"stdout": base64.b64encode(b"precious\n").decode()})
    assert task["collected"] == 1
    fleet.pump(lambda: jp.key in fleet.kept())
    assert jp.key not in fleet.forgotten()
    assert f"its output is kept on m1 in {jp.kept}" in capfd.readouterr().err


def test_the_fake_and_local_transports_tell_a_missing_file_from_an_unreadable_one(
        tmp_path: Path) -> None:
    from fleetslurm.transport.local import LocalTransport

    fake = FakeTransport("m1")
    fake.unreadable["/x"] = "permission denied"
    with pytest.raises(FileMissing):
        fake.get_bytes("/nothing")
    with pytest.raises(FileUnreadable):
        fake.get_bytes("/x")
    local = LocalTransport("here", str(tmp_path))
    with pytest.raises(FileMissing, match="No such file"):
        local.get_bytes(str(tmp_path / "nothing"))
    with pytest.raises(FileUnreadable, match="Is a directory"):
        local.get_bytes(str(tmp_path))


def test_a_copy_cut_by_a_lost_link_is_retried_not_kept(fleet, monkeypatch) -> None:
    """Only a file that is there but unreadable is kept; a link that fails
    mid-copy leaves the job COMPLETING until the machine answers again."""
    job = fleet.submit()
    jp = fleet.paths(job)
    fleet.fake.files[jp.stdout] = b"later\n"
    real = fleet.fake.get_bytes
    calls = []

    def flaky(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 1:
            raise NodeUnreachable("node m1: the link dropped (test)", "m1")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(fleet.fake, "get_bytes", flaky)
    key = fleet.ctl.store.task(job)["run_key"]
    fleet.fake.push(fleet.fake._ended(key, "COMPLETED", 0))
    fleet.pump(lambda: calls)
    for _ in range(20):
        fleet.step()
    assert fleet.ctl.store.task(job)["state"] == "COMPLETING"
    assert jp.key not in fleet.kept() and jp.key not in fleet.forgotten()
    # the machine says hello again (it still reports the ended run): copied now
    fleet.fake.drop()
    fleet.pump(lambda: fleet.ctl.store.task(job)["state"] == "COMPLETED", timeout=30)
    assert (fleet.work / f"slurm-{job}.out").read_bytes() == b"later\n"
    fleet.pump(lambda: jp.key in fleet.forgotten())

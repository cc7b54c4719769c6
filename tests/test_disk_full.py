"""A job that fills the disk fails with a reason; its machine is not blamed.

The agent's work directory is on a real small filesystem (a tmpfs with
``size=``, mounted by the test: needs root) that the job fills. Before, the
supervisor could not write result.json (ENOSPC), the run counted as LOST, the
machine was drained and the job ran again; now the result is written into a
file the supervisor reserved before the job started, and says why.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from test_agent import AgentClient, kill_leftovers, spec

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs: needs root")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(disk)],
                   check=True)
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def agent(small_disk: Path) -> Iterator[AgentClient]:
    client = AgentClient(small_disk / "w")
    yield client
    client.close()
    kill_leftovers(small_disk / "w")


FILL = "cat /dev/zero > {disk}/fill 2>/dev/null\n"


def test_job_that_fills_the_disk_fails_with_a_reason(agent: AgentClient, small_disk: Path,
                                                     tmp_path: Path) -> None:
    jobdir = small_disk / "w" / "jobs" / "1.0"
    out = jobdir / "stdout.txt"  # the node-side output, as without a shared filesystem
    started = agent.launch("1.0", spec("#!/bin/sh\necho before\n" + FILL.format(disk=small_disk)
                                       + "echo after\nexit 0\n", tmp_path, cwd=str(jobdir),
                                       stdout=str(out), stderr=str(out), inline_output=1 << 16))
    assert started["ev"] == "started", started
    ended = agent.wait_for(lambda e: e.get("ev") == "ended" and e.get("key") == "1.0")
    result = ended["result"]
    # the job's failure, not a lost run (which the controller blames on the machine)
    assert result["state"] == "FAILED", result
    assert result["exit_code"] == 0 and result["signal"] == 0
    assert "No space left on device" in result["error"], result
    assert str(small_disk) in result["error"]
    # what the job wrote is there, and comes home inline (its last line and
    # slurmstepd's fit in the file's last page)
    text = out.read_text()
    assert text.startswith("before\nafter\nslurmstepd: error: No space left on device"), text
    import base64
    assert base64.b64decode(ended["output"]["stdout"]).decode() == text
    # the agent (re)reads the same result from disk
    status = agent.request({"op": "status"})
    assert [j["result"]["state"] for j in status["jobs"]] == ["FAILED"]
    assert (jobdir / "result.json").is_file() and not (jobdir / "result.spare").exists()


def test_cancel_reaches_a_job_on_a_full_disk(agent: AgentClient, small_disk: Path,
                                             tmp_path: Path) -> None:
    """scancel leaves its request in a file: on a full disk it still arrives."""
    out = small_disk / "out"
    agent.launch("2.0", spec("#!/bin/sh\necho before\n" + FILL.format(disk=small_disk)
                             + "touch %s/full\nsleep 300\n" % tmp_path, tmp_path,
                             stdout=str(out), stderr=str(out), kill_wait_s=1))
    import time
    deadline = time.monotonic() + 20
    while not (tmp_path / "full").exists():
        assert time.monotonic() < deadline, "the job never filled the disk"
        time.sleep(0.05)
    reply = agent.request({"op": "cancel", "key": "2.0"})
    assert reply.get("ok") is True, reply
    result = agent.ended("2.0")
    assert result["state"] == "CANCELLED", result
    text = out.read_text()  # slurmstepd's line fit in the file's last page
    assert text.startswith("before\nslurmstepd-") and " CANCELLED AT " in text, text


@pytest.fixture
def disk_fleet(tmp_path: Path):
    """This machine with its agent's work directory on a 4 MiB tmpfs
    (FLEETSLURM_HOME/node is where the local transport keeps it)."""
    from conftest import Fleet, _teardown, local_config

    f = Fleet(tmp_path / "fleet", local_config())
    disk = f.home / "node"
    disk.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(disk)],
                   check=True)
    f.disk = disk
    try:
        yield f
    finally:
        _teardown(f)
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_disk_full_fails_the_job_not_the_machine(disk_fleet) -> None:
    fleet = disk_fleet
    job = fleet.sbatch("--wrap", "echo before; " + FILL.format(disk=fleet.disk).strip()
                       + "; echo after")
    rec = fleet.wait(job)
    assert (rec["state"], rec["exit_code"], rec["exit_signal"]) == ("FAILED", 0, 0), rec
    assert rec["restart_count"] == 0, rec  # not requeued: it ran once
    assert "No space left on device" in (rec["steps"][0].get("error") or ""), rec["steps"]
    # its output (on another disk here) says why
    out = (fleet.work / f"slurm-{job}.out").read_text()
    assert out.startswith("before\nafter\nslurmstepd: error: No space left on device: "), out
    # the machine takes the next job (it is not drained)
    (fleet.disk / "fill").unlink()
    nxt = fleet.sbatch("--wrap", "echo next")
    assert fleet.wait(nxt)["state"] == "COMPLETED"
    proc = fleet.run("sinfo", "-h", "-o", "%t", check=True)
    assert set(proc.stdout.split()) == {"idle"}, proc.stdout  # one line a partition

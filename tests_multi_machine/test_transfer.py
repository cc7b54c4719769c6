"""A big output comes home over a real sshd: streamed in chunks (the
controller's memory stays bounded), verified, resumed after a dropped link,
while squeue, tail and the job's COMPLETING line stay available.

The copy is held still where a test needs it by stopping the program that
sends the file on the machine (SIGSTOP): no timing assumption decides what
is observed.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import time
from pathlib import Path

import pytest

from .test_fleet import Cli

pytestmark = pytest.mark.usefixtures("ssh_home")

SIZE_MB = 200  # enough that reading it whole would show in the controller's memory
CHUNK = 1 << 20


def _expected() -> bytes:
    """What the job writes: SIZE_MB MiB of text (hex of seeded random bytes)."""
    r = random.Random(5)
    return b"".join(r.randbytes(CHUNK // 2).hex().encode() for _ in range(SIZE_MB))


JOB = ("python3 -c \"import random,sys; r=random.Random(5); w=sys.stdout.buffer.write; "
       f"[w(r.randbytes({CHUNK // 2}).hex().encode()) for _ in range({SIZE_MB})]\"")


@pytest.fixture(scope="module")
def expected() -> tuple[int, str, bytes]:
    data = _expected()
    return len(data), hashlib.sha256(data).hexdigest(), data[:4 << 20]


@pytest.fixture
def fleet1(sshd_fleet, make_config, tmp_path):
    (m1,) = sshd_fleet(1)
    files = make_config([m1], heartbeat_interval=0.5, kill_wait=2, min_job_age=1)
    cli = Cli(files, tmp_path / "submit")
    cli.run("sinfo", check=True)
    cli.wait_nodes({"m1": "idle"})
    yield cli, m1
    cli.stop()


def _hwm_kb(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM")).split()[1])


def _controller_pid(cli: Cli) -> int:
    return int((cli.files.home / "controller.pid").read_text().split()[0])


def _sender(job_dir_part: str, timeout: float = 60) -> int:
    """The pid of the program sending a run's stdout on the machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if b"sha256" in cmd and job_dir_part.encode() in cmd and b"stdout.txt" in cmd:
                return int(name)
        time.sleep(0.002)
    raise AssertionError("the copy's sending program never started on the machine")


def _part(cli: Cli, job: int) -> Path:
    found = list((cli.files.home / "output" / str(job)).glob("*.stdout.part"))
    return found[0] if found else cli.files.home / "output" / str(job) / "none"


def _hold_copy_after(cli: Cli, machine, job: int, nbytes: int) -> int:
    """Stop the copy of the job's stdout (SIGSTOP its sender on the machine)
    once at least ``nbytes`` are home; returns the sender's pid."""
    rec = cli.wait(job, {"COMPLETING", "COMPLETED", "FAILED"}, timeout=120)
    assert rec["state"] == "COMPLETING", rec
    # this job's run directory on this machine: other tests (other xdist
    # workers) copy outputs home at the same time
    pid = _sender(f"{machine.workdir}/jobs/{job}.")
    deadline = time.monotonic() + 120
    while True:
        part = _part(cli, job)
        if part.exists() and part.stat().st_size >= nbytes:
            os.kill(pid, signal.SIGSTOP)
            return pid
        assert time.monotonic() < deadline, "the copy made no progress"
        time.sleep(0.001)


def _sha(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return path.stat().st_size, h.hexdigest()


def test_big_output_streams_home_while_the_controller_answers(fleet1, expected):
    cli, m1 = fleet1
    size, sha, head = expected
    pid = _controller_pid(cli)
    before = _hwm_kb(pid)
    job = cli.sbatch("--wrap", JOB)
    sender = _hold_copy_after(cli, m1, job, 4 << 20)
    try:
        time.sleep(1.5)  # past MinJobAge (1 s) since the job ended
        # still listed, as COMPLETING, by every squeue, and by state "all"
        for args in ([], ["-t", "all"], ["-t", "CG"]):
            q = cli.run("squeue", "-h", "-j", str(job), "-o", "%i|%T", *args, check=True)
            assert q.stdout == f"{job}|COMPLETING\n", (args, q.stdout)
        q = cli.run("squeue", "-h", "-o", "%i|%T", "-t", "all", check=True)
        assert f"{job}|COMPLETING" in q.stdout
        # tail reads the output on the machine meanwhile (its first 4 MiB)
        t = cli.run("tail", str(job), check=True)
        assert t.stdout.encode() == head
        # and the controller takes new work
        other = cli.sbatch("--wrap", "echo other")
        assert cli.wait(other)["state"] == "COMPLETED"
        out = (cli.work / f"slurm-{job}.out")
        assert not out.exists() or out.stat().st_size == 0  # nothing half-written in place
    finally:
        os.kill(sender, signal.SIGCONT)
    rec = cli.wait(job, timeout=300)
    assert rec["state"] == "COMPLETED", rec
    assert _sha(cli.work / f"slurm-{job}.out") == (size, sha)
    grown_mb = (_hwm_kb(pid) - before) / 1024
    # bounded by the copy's window and chunks, not by the file (200 MiB)
    assert grown_mb < 64, f"the controller's peak memory grew by {grown_mb:.0f} MiB"
    assert not list((cli.files.home / "output" / str(job)).glob("*.part"))


def _log(cli: Cli) -> str:
    return (cli.files.home / "controller.log").read_text(errors="replace")


def test_a_copy_cut_by_a_dropped_link_resumes_where_it_stopped(fleet1, expected):
    cli, m1 = fleet1
    size, sha, _ = expected
    job = cli.sbatch("--wrap", JOB)
    _hold_copy_after(cli, m1, job, 16 << 20)
    held = _part(cli, job).stat().st_size
    m1.kill_sessions(jobs=False)  # the link drops: sshd, agent, the sender
    rec = cli.wait(job, timeout=300)
    assert rec["state"] == "COMPLETED", rec
    assert _sha(cli.work / f"slurm-{job}.out") == (size, sha)
    found = re.findall(rf"job {job}: its stdout copy from m1 resumed at byte (\d+) of (\d+) "
                       r"\((\d+) bytes moved\)", _log(cli))
    assert found, _log(cli)[-3000:]
    offset, total, moved = (int(x) for x in found[-1])
    assert total == size and offset >= held and moved == size - offset  # not from zero


def test_a_corrupt_partial_copy_is_found_and_copied_again(fleet1, expected):
    cli, m1 = fleet1
    size, sha, _ = expected
    job = cli.sbatch("--wrap", JOB)
    _hold_copy_after(cli, m1, job, 8 << 20)
    part = _part(cli, job)
    # what is home is damaged (one byte), then the link drops: the next copy
    # would continue after it; the sizes will agree, the hashes not
    with open(part, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    m1.kill_sessions(jobs=False)
    rec = cli.wait(job, timeout=300)
    assert rec["state"] == "COMPLETED", rec
    assert _sha(cli.work / f"slurm-{job}.out") == (size, sha)
    log = _log(cli)
    assert re.search(rf"job {job}: node m1: the copy of \S+stdout.txt does not match the file "
                     "there", log), log[-3000:]


def test_the_connection_is_set_up_for_big_copies(sshd_fleet, make_config):
    """AES-GCM (no separate HMAC pass) and no paramiko-initiated rekey at
    512 MiB, whose race with a closing channel dropped the connection."""
    from fleetslurm.transport import ssh_tuning
    from fleetslurm.transport.ssh import SSHTransport

    (m1,) = sshd_fleet(1)
    files = make_config([m1])
    t = SSHTransport("m1", files.config.machines["m1"], files.config, files.paths)
    try:
        t.start_agent().close()
        conn = t._connection().get_transport()
        assert conn.remote_cipher.startswith("aes128-gcm"), conn.remote_cipher
        assert conn.packetizer.REKEY_BYTES == ssh_tuning.REKEY_BYTES >= 1 << 36
    finally:
        t.close()

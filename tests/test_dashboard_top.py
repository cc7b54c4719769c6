"""``fleetslurm top`` under a real pseudo-terminal: it draws the machines and
the queue, redraws in place, and ``q`` ends it."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time


def _controlling_tty() -> None:
    """In the child: a session of its own whose controlling terminal is the
    pty, so ^C typed there is SIGINT, as at a real terminal."""
    import fcntl
    import termios

    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _spawn(fleet, *args: str):  # type: ignore[no-untyped-def]
    master, slave = pty.openpty()
    env = dict(fleet.env, COLUMNS="160", LINES="40", TERM="xterm")
    proc = subprocess.Popen([sys.executable, "-m", "fleetslurm.cli.main", "top", *args],
                            stdin=slave, stdout=slave, stderr=slave, cwd=str(fleet.work),
                            env=env, preexec_fn=_controlling_tty)
    os.close(slave)
    return proc, master


def _read_until(master: int, want: bytes, seen: bytearray, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while want not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{want!r} not shown: {bytes(seen[-2000:])!r}"
        ready, _, _ = select.select([master], [], [], left)
        if ready:
            try:
                seen.extend(os.read(master, 65536))
            except OSError:  # the child closed the terminal
                assert want in seen, f"{want!r} not shown: {bytes(seen[-2000:])!r}"
                return


def test_top_shows_machines_and_queue_and_quits_on_q(fleet) -> None:  # type: ignore[no-untyped-def]
    job = fleet.sbatch("-J", "topjob", "--wrap", "sleep 300")
    fleet.wait(job, states={"RUNNING"})
    proc, master = _spawn(fleet, "--interval", "0.2")
    seen = bytearray()
    try:
        _read_until(master, b"localhost", seen)
        _read_until(master, b"topjob", seen)
        # a new job shows up without restarting it: redrawn in place
        # (rich's Live moves the cursor up over the last frame)
        second = fleet.sbatch("-J", "laterjob", "--hold", "--wrap", "true")
        _read_until(master, b"laterjob", seen)
        assert b"\x1b[1A" in seen or b"\x1b[2K" in seen
        os.write(master, b"q")
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(master)
        fleet.run("scancel", str(job))
    assert second


def test_top_ends_on_ctrl_c(fleet) -> None:  # type: ignore[no-untyped-def]
    proc, master = _spawn(fleet)
    seen = bytearray()
    try:
        _read_until(master, b"localhost", seen)
        os.write(master, b"\x03")  # the terminal turns it into SIGINT
        assert proc.wait(timeout=15) == 0
        # the terminal is left as it was found: echo back on, no traceback
        assert b"Traceback" not in seen
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(master)

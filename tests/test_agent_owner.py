"""The agent's workstation facts: the owner's idle time (a real pty in a utmp
file, the activity file) and the foreign load (real processes, a job's
excluded), and both in the agent's heartbeat."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetslurm.node.agent import owner

from test_agent import AgentClient, agent, spec, workdir  # noqa: F401  (fixtures)

_TICKS = os.sysconf("SC_CLK_TCK")


def utmp_record(line: str, user: str = "owner", kind: int = 7) -> bytes:
    """One glibc ``struct utmp`` (384 bytes) as login(1) writes it."""
    rec = struct.pack("hi32s4s32s256shhiii4i20s", kind, os.getpid(), line.encode(),
                      b"ts/1", user.encode(), b"", 0, 0, 0, int(time.time()), 0, 0, 0, 0, 0,
                      b"")
    assert len(rec) == 384
    return rec


def test_tty_idle_is_the_terminal_device_access_time(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        dev = os.ttyname(slave)  # /dev/pts/N: a real terminal
        utmp = tmp_path / "utmp"
        # a dead-process record and the live login: only the login counts
        utmp.write_bytes(utmp_record("pts/9999", kind=8) + utmp_record(dev[len("/dev/"):]))
        now = time.time()
        os.utime(dev, (now - 600, now - 600))  # last keystroke 10 minutes ago
        assert owner.tty_idle_s(now, str(utmp)) == pytest.approx(600, abs=1)
        assert owner.owner_idle_s(now, None, str(utmp)) == pytest.approx(600, abs=1)
        # a stale record (its tty is gone) is no owner
        utmp.write_bytes(utmp_record("pts/987654"))
        assert owner.tty_idle_s(now, str(utmp)) is None
    finally:
        os.close(master)
        os.close(slave)


def test_activity_file_mtime_is_the_last_activity(tmp_path: Path) -> None:
    empty = tmp_path / "utmp"
    empty.write_bytes(b"")
    f = tmp_path / "active"
    now = time.time()
    assert owner.owner_idle_s(now, str(f), str(empty)) is None  # no file yet: no sign
    f.touch()
    os.utime(f, (now - 120, now - 120))
    assert owner.owner_idle_s(now, str(f), str(empty)) == pytest.approx(120, abs=1)


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        rest = fh.read().rsplit(b")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / _TICKS


def test_foreign_load_counts_a_hog_unless_it_is_a_jobs() -> None:
    """Two meters read at the same moments, one told the hog's session is a
    job's: they differ by exactly the hog's CPU use (whatever else this busy
    host runs)."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        with_hog, without = owner.LoadMeter(), owner.LoadMeter()
        time.sleep(0.3)
        t0 = time.monotonic()
        assert with_hog.read([], t0) is None and without.read([hog.pid], t0) is None
        c0 = _cpu_s(hog.pid)
        time.sleep(2.0)
        t1 = time.monotonic()
        a, b = with_hog.read([], t1), without.read([hog.pid], t1)
        used = (_cpu_s(hog.pid) - c0) / (t1 - t0)
        assert used > 0.2  # it ran, even on a loaded host
        assert a is not None and b is not None
        assert a - b == pytest.approx(used, abs=0.15)
    finally:
        hog.kill()
        hog.wait()


def test_heartbeat_reports_foreign_load_and_owner_idle(agent: AgentClient, tmp_path: Path) -> None:  # noqa: F811
    f = tmp_path / "active"
    f.touch()
    # not asked to measure (a controller without policies): nothing scanned
    plain = agent.request({"op": "facts", "activity_file": str(f)})
    assert plain["foreign_load"] is None and plain["owner_idle_s"] is None
    first = agent.request({"op": "facts", "measure": True, "activity_file": str(f)})
    assert first["foreign_load"] is None  # one reading: no interval yet
    assert first["owner_idle_s"] == pytest.approx(0, abs=5)
    time.sleep(0.5)
    second = agent.request({"op": "facts", "measure": True})
    assert isinstance(second["foreign_load"], float) and second["foreign_load"] >= 0
    # without the file (and, here, no tty login): no sign of an owner
    assert second["owner_idle_s"] is None or second["owner_idle_s"] > 0


def test_a_jobs_own_cpu_is_not_foreign(agent: AgentClient, tmp_path: Path) -> None:  # noqa: F811
    """A job spinning a CPU under the agent: the agent's foreign load stays
    below what a meter that does not know about the job measures."""
    agent.request({"op": "hello"})
    r = agent.launch("spin", spec("#!/bin/sh\nexec python3 -c 'while True: pass'\n", tmp_path))
    assert r["ev"] == "started"
    outside = owner.LoadMeter()
    agent.request({"op": "facts", "measure": True})
    outside.read([])
    time.sleep(2.0)
    mine = agent.request({"op": "facts", "measure": True})["foreign_load"]
    theirs = outside.read([])
    pid = r["pid"]
    assert mine is not None and theirs is not None
    assert theirs - mine > 0.2, (theirs, mine)
    agent.request({"op": "cancel", "key": "spin", "signal": 9})
    agent.ended("spin")
    assert pid


def test_the_foreign_load_is_damped_like_a_load_average(monkeypatch) -> None:
    """Fed CPU seconds by hand: the first interval's mean, then damped with
    a 15 s time constant (one busy CPU for 15 s after idling: 1 - 1/e)."""
    gains = iter([0.0, 15.0, 150.0])
    monkeypatch.setattr(owner, "snapshot", lambda sessions, agents=(): {})
    monkeypatch.setattr(owner, "cpu_gained", lambda before, after: next(gains))
    m = owner.LoadMeter()
    assert m.read([], 100.0) is None
    assert m.read([], 110.0) == 0.0             # idle for 10 s
    assert m.read([], 125.0) == pytest.approx(1 - 2.718281828 ** -1, abs=0.01)
    # within 0.2 s: the same value, no new reading
    assert m.read([], 125.1) == pytest.approx(0.63, abs=0.01)
    # then ten busy CPUs for 15 s: it moves 1 - 1/e of the way to 10
    v = m.read([], 140.0)
    assert v == pytest.approx(0.63 + (10.0 - 0.63) * (1 - 2.718281828 ** -1), abs=0.02)


def _lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def test_a_stop_that_comes_before_the_start_is_kept(agent: AgentClient, tmp_path: Path) -> None:  # noqa: F811
    """SIGSTOP sent right behind the launch (an owner back at that moment),
    before the agent knows the job's pid: applied as soon as it does; the
    SIGCONT later lets it run."""
    import signal as _signal

    agent.request({"op": "hello"})
    count = tmp_path / "count"
    rid = agent.send({"op": "launch", "key": "early", "spec": spec(
        f"#!/bin/sh\nwhile true; do echo x >> {count}; sleep 0.05; done\n", tmp_path)})
    ack = agent.request({"op": "signal", "key": "early", "signal": int(_signal.SIGSTOP),
                         "scope": "full"})
    assert ack["ok"] and ack["error"] is None, ack
    agent.wait_for(lambda e: e.get("re") == rid and e.get("ev") == "started")
    time.sleep(0.3)
    n = _lines(count)
    time.sleep(1.0)
    assert _lines(count) == n  # stopped
    agent.request({"op": "signal", "key": "early", "signal": int(_signal.SIGCONT),
                   "scope": "full"})
    time.sleep(1.0)
    assert _lines(count) > n
    agent.request({"op": "cancel", "key": "early", "signal": 9})
    agent.ended("early")


def test_cpu_gained_neither_double_counts_nor_loses_ended_processes() -> None:
    """Snapshots by hand: pid -> (start, parent, own, reaped, fleetslurm's, reaped not counted)."""
    before = {1: (0, 0, 1.0, 50.0, False, True),
              10: (5, 1, 2.0, 0.0, False, False),          # make
              11: (6, 10, 600.0, 0.0, False, False),       # its compiler, 600 s so far
              20: (7, 1, 30.0, 0.0, False, False),         # a daemon's orphan, under PID 1
              30: (8, 1, 5.0, 0.0, True, True),            # the agent
              31: (9, 30, 40.0, 0.0, True, True)}          # a job (its supervisor's session)
    after = {1: (0, 0, 1.0, 50.0 + 31.0, False, True),    # PID 1 reaped the orphan (+1 s)
             10: (5, 1, 2.5, 603.0, False, False),         # make reaped its compiler (+3 s)
             12: (50, 10, 1.0, 0.0, False, False),         # a new compiler
             30: (8, 1, 5.2, 45.0, True, True),            # the agent reaped the job
             40: (60, 1, 2.0, 0.0, False, False)}          # pid 40: new
    # make +0.5, compiler's last 3 s, new compiler 1, new pid 2; nothing of the
    # orphan's past (nor its last second, seen only by PID 1), nothing of the job
    assert owner.cpu_gained(before, after) == pytest.approx(0.5 + 3.0 + 1.0 + 2.0)
    # a pid reused by a new process: all its time is new
    reused = {**after, 40: (61, 1, 0.5, 0.0, False, False)}
    assert owner.cpu_gained(after, reused) == pytest.approx(0.5)

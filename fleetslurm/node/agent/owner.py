"""What a workstation's owner is doing, for load-aware placement: how long
since someone used the machine (ttys in utmp, as ``w`` computes IDLE, and an
optional activity file) and the *foreign load*, the CPUs busy with work that
is not fleetslurm's. Standard library only.

Foreign load, as measured here: between two heartbeats, the CPU seconds
gained by every process visible in /proc that is neither a fleetslurm job
(a process in a job's session: the supervisor's, which every job child and
step inherits) nor the agent, divided by the wall seconds between them
(:func:`cpu_gained`). A process counts what its own time and the time of
the children it reaped (``cutime``/``cstime``) grew by, so a compile's
short-lived compilers are counted too; PID 1's reaped time and the agent's
are left out (the agent reaps the supervisors, PID 1 reaps orphans of every
kind, jobs' included). One busy
CPU is 1.0, as a load average counts it. The first value is the mean over
the first interval; later ones are damped with a time constant of
:data:`DAMPING_S` (15 s), so a hog shows within seconds, and a short burst
or one starved interval does not flip a machine's availability.
"""
from __future__ import annotations

import math
import os
import struct
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Iterable, Optional, Tuple

from .fsio import read_small

__all__ = ["tty_idle_s", "owner_idle_s", "snapshot", "cpu_gained", "LoadMeter", "UTMP_PATHS",
           "DAMPING_S"]

_TICKS = float(os.sysconf("SC_CLK_TCK"))
#: where glibc keeps the login records
UTMP_PATHS = ("/run/utmp", "/var/run/utmp")
# struct utmp (glibc, every 64-bit and 32-bit Linux): type, pid, line[32],
# id[4], user[32], host[256], exit(2 shorts), session, tv(2 int32), addr_v6[4],
# unused[20]: 384 bytes
_UTMP = struct.Struct("hi32s4s32s256shhiii4i20s")
_USER_PROCESS = 7
#: the foreign load's time constant (seconds): an exponentially damped mean,
#: as the kernel's load averages are (theirs: 60 s for the 1-minute one)
DAMPING_S = 15.0


def _utmp_lines(path: str) -> "Iterable[str]":
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    out = []
    size = _UTMP.size
    for at in range(0, len(data) - size + 1, size):
        rec = _UTMP.unpack_from(data, at)
        if rec[0] == _USER_PROCESS:
            line = rec[2].split(b"\0", 1)[0].decode("utf-8", "replace")
            if line:
                out.append(line)
    return out


def tty_idle_s(now: float, utmp: "Optional[str]" = None) -> "Optional[float]":
    """Seconds since the most recent input on a logged-in terminal, as ``w``
    shows IDLE (the tty device's access time), or None when nobody is logged
    in on one. X sessions (``:0``) have no tty device: they count only
    through their login record's terminal, or the activity file."""
    paths = (utmp,) if utmp else UTMP_PATHS
    best = None  # type: Optional[float]
    for path in paths:
        lines = _utmp_lines(path)
        for line in lines:
            dev = line if line.startswith("/") else "/dev/" + line
            try:
                atime = os.stat(dev).st_atime
            except OSError:
                continue  # a stale record, or an X display
            idle = max(0.0, now - atime)
            best = idle if best is None else min(best, idle)
        if lines:
            break  # /run/utmp and /var/run/utmp are usually one file
    return best


def owner_idle_s(now: float, activity_file: "Optional[str]" = None,
                 utmp: "Optional[str]" = None) -> "Optional[float]":
    """Seconds since the owner was last active: the least of the ttys' idle
    time and the activity file's age (its mtime is the last activity); None
    when neither says anything (nobody logged in, no such file)."""
    best = tty_idle_s(now, utmp)
    if activity_file:
        try:
            age = max(0.0, now - os.stat(activity_file).st_mtime)
        except OSError:
            age = None
        if age is not None:
            best = age if best is None else min(best, age)
    return best


#: one process at a reading: (start time in ticks, parent pid, own CPU
#: seconds, its reaped children's CPU seconds, fleetslurm's (a job's or the
#: agent's: not counted), its reaped children not counted (PID 1, the agent))
Proc = "Tuple[int, int, float, float, bool, bool]"


def _proc(pid: int) -> "Optional[Tuple[int, int, int, float, float]]":
    """(session, start ticks, parent, own CPU s, reaped children's CPU s) of ``pid``."""
    try:
        data = read_small("/proc/%d/stat" % pid)
        rest = data[data.rindex(b")") + 2:].split()
        return (int(rest[3]), int(rest[19]), int(rest[1]),
                (int(rest[11]) + int(rest[12])) / _TICKS,
                (int(rest[13]) + int(rest[14])) / _TICKS)
    except (OSError, ValueError, IndexError):
        return None


def snapshot(job_sessions: "Iterable[int]", agent_pids: "Iterable[int]" = ()) -> "Dict[int, Proc]":
    """Every visible process's CPU times, marked as fleetslurm's (in one of
    ``job_sessions``, or one of ``agent_pids``) or not."""
    sessions = set(job_sessions)
    agents = set(agent_pids)
    out = {}  # type: Dict[int, Proc]
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        st = _proc(pid)
        if st is None:
            continue
        ours = st[0] in sessions or pid in sessions or pid in agents
        out[pid] = (st[1], st[2], st[3], st[4], ours, ours or pid == 1)
    return out


def cpu_gained(before: "Dict[int, Proc]", after: "Dict[int, Proc]") -> float:
    """CPU seconds the foreign processes used between two snapshots.

    Each process counts what its own and its reaped children's times grew
    by (all of them for one that started in between). A process that ended
    was reaped: its reaper's children's time then holds its whole life, of
    which what the earlier snapshot had already seen is taken off again, so
    an ending process neither counts twice nor takes its past away (when its
    reaper counts; when the reaper is PID 1 or fleetslurm's, its last moments
    are simply not seen).
    """
    gained = 0.0
    for pid, now in after.items():
        if now[4]:
            continue
        was = before.get(pid)
        if was is not None and was[0] != now[0]:
            was = None  # the pid was reused: a new process
        gained += now[2] - (was[2] if was else 0.0)
        if not now[5]:
            gained += now[3] - (was[3] if was else 0.0)
    for pid, was in before.items():
        now = after.get(pid)
        if was[4] or (now is not None and now[0] == was[0]):
            continue
        # ended: the nearest ancestor still there reaped it (through any
        # that ended too); if that one's reaped time counts, take this
        # one's already-seen time off
        parent, seen = was[1], 0
        while parent in before and (parent not in after or after[parent][0] != before[parent][0]):
            parent = before[parent][1]
            seen += 1
            if seen > 64:  # a cycle through reused pids: give up on this one
                parent = 0
                break
        up = after.get(parent)
        if up is not None and not up[5] and not up[4]:
            gained -= was[2] + was[3]
    return gained


class LoadMeter:
    """The foreign load between successive readings (see the module's text)."""

    __slots__ = ("table", "at", "value")

    def __init__(self) -> None:
        self.table = None  # type: Optional[Dict[int, Proc]]
        self.at = 0.0
        self.value = None  # type: Optional[float]

    def read(self, job_sessions: "Iterable[int]", now: "Optional[float]" = None) -> "Optional[float]":
        """CPUs busy with foreign work since the last reading (None at the
        first; within 0.2 s of the last reading, that reading's value again)."""
        now = time.monotonic() if now is None else now
        if self.table is not None and now - self.at < 0.2:
            return self.value  # asked twice at once (a hello, then a heartbeat)
        table = snapshot(job_sessions, (os.getpid(),))
        if self.table is not None:
            dt = now - self.at
            # (a process reparented to PID 1 before it ended can make this
            # slightly negative: not negative load)
            inst = max(0.0, cpu_gained(self.table, table) / dt)
            if self.value is None:
                self.value = round(inst, 2)
            else:  # damped, as a load average is: a burst or a starved
                # heartbeat does not flip the machine back and forth
                alpha = 1.0 - math.exp(-dt / DAMPING_S)
                self.value = round(self.value + alpha * (inst - self.value), 2)
        self.table, self.at = table, now
        return self.value


def facts(meter: LoadMeter, job_sessions: "Iterable[int]",
          activity_file: "Optional[str]") -> "Dict[str, object]":
    """The owner's part of FACTS: ``foreign_load`` (None until two readings),
    ``owner_idle_s`` (None: no sign of an owner)."""
    return {"foreign_load": meter.read(job_sessions),
            "owner_idle_s": owner_idle_s(time.time(), activity_file)}

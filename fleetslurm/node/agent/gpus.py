"""Per-GPU utilization and memory for the heartbeat: ``nvidia-smi
--query-gpu=index,uuid,utilization.gpu,memory.used,memory.total``, run in
the background so the agent's single-threaded loop never waits on it.

Each heartbeat (``facts``) reports the latest reading and starts the next
query, at most once every :data:`MIN_INTERVAL` seconds, and only on a machine
where nvidia-smi listed GPUs at the start (GPUs do not come and go). A
failing, hanging or absent nvidia-smi, or output that does not parse, leaves
no reading: the heartbeat then carries no ``gpu_usage`` at all, and the
machine goes on working. Standard library only.

The query's exit is collected by the agent's own reaper (``JobBook.reap``
waits for any child and hands over the ones that are not supervisors), so
its pid is never waited for twice.
"""
from __future__ import annotations

import os
import signal
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

#: seconds between two queries, however often the controller asks for facts
#: (the default heartbeat: nvidia-smi costs tens of ms of CPU, more without
#: persistence mode)
MIN_INTERVAL = 5.0
#: a query still running after this long is killed (a wedged driver), and
#: the reading before it dropped
TIMEOUT = 10.0
#: what is asked of nvidia-smi (its units: percent and MiB)
QUERY = ["--query-gpu=index,uuid,utilization.gpu,memory.used,memory.total",
         "--format=csv,noheader,nounits"]
_MAX_OUTPUT = 1 << 16


def smi_path() -> "Optional[str]":
    """nvidia-smi as ``PATH`` finds it, or None."""
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        candidate = os.path.join(d or ".", "nvidia-smi")
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


def parse_usage(text: str) -> "Optional[List[Dict[str, Any]]]":
    """The GPUs in nvidia-smi's CSV answer, or None when any line is not
    one (an error message, a "[N/A]" utilization): half a reading would
    show an idle GPU that is not."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5:
            return None
        try:
            gpus.append({"index": int(parts[0]), "uuid": parts[1],
                         "util": int(float(parts[2])), "mem_used_mb": int(float(parts[3])),
                         "mem_total_mb": int(float(parts[4]))})
        except ValueError:
            return None
        g = gpus[-1]
        if not (0 <= g["util"] <= 100 and 0 <= g["mem_used_mb"] and 0 <= g["mem_total_mb"]):
            return None
    return gpus or None


class GpuProbe:
    """The background nvidia-smi query and its latest reading."""

    def __init__(self) -> None:
        self.pid = None  # type: Optional[int]
        self.fd = -1     # read end of the query's stdout
        self.started = 0.0
        self.last_start = float("-inf")
        self.reading = None  # type: Optional[List[Dict[str, Any]]]
        self.read_at = 0.0
        #: counts readings, so the controller counts each one once
        self.seq = 0

    def fds(self) -> "List[int]":
        """The fds a forked supervisor must close."""
        return [self.fd] if self.fd >= 0 else []

    def report(self, has_gpus: bool) -> "Optional[Dict[str, Any]]":
        """The heartbeat's ``gpu_usage`` ({seq, age, gpus}) or None; starts
        the next query when one is due."""
        if not has_gpus:
            return None
        now = time.monotonic()
        if self.pid is not None and now - self.started > TIMEOUT:
            try:
                os.kill(self.pid, signal.SIGKILL)  # reaped as any other child
            except OSError:
                pass
            self.reading = None
        if self.pid is None and now - self.last_start >= MIN_INTERVAL:
            self.start(now)
        # no age limit of its own: a failed, garbled or killed query has
        # already dropped the reading, and a good one is at most one
        # heartbeat old (however far apart the controller sets them)
        if self.reading is None:
            return None
        return {"seq": self.seq, "age": round(now - self.read_at, 3), "gpus": self.reading}

    def start(self, now: float) -> None:
        """Start one query; nothing happens when it cannot start."""
        self.last_start = now
        exe = smi_path()
        spawn = getattr(os, "posix_spawn", None)
        if exe is None or spawn is None:
            self.reading = None
            return
        r, w = os.pipe()
        try:
            self.pid = spawn(exe, [exe] + QUERY, os.environ, file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, w, 1),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)],
                # Python ignores SIGPIPE; a program it starts should not
                setsigdef=(signal.SIGPIPE,), setsid=True)
        except (OSError, NotImplementedError, ValueError):
            # (NotImplementedError: a libc without POSIX_SPAWN_SETSID)
            os.close(r)
            self.reading = None
            return
        finally:
            os.close(w)
        os.set_blocking(r, False)
        self.fd = r
        self.started = now

    def exited(self, pid: int, status: int) -> bool:
        """A child the agent reaped; True if it was our query (then its
        answer, if good, becomes the reading)."""
        if pid != self.pid:
            return False
        self.pid = None
        data = b""
        try:
            while len(data) < _MAX_OUTPUT:
                chunk = os.read(self.fd, 8192)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass  # nothing more now: a grandchild may hold the pipe
        os.close(self.fd)
        self.fd = -1
        ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        gpus = parse_usage(data.decode("utf-8", "replace")) if ok else None
        self.reading = gpus
        if gpus is not None:
            self.read_at = time.monotonic()
            self.seq += 1
        return True

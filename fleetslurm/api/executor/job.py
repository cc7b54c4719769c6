"""``Job``: the future of one Python call submitted by an Executor.

Mirrors :class:`concurrent.futures.Future`: ``done()``, ``result(timeout)``,
``exception(timeout)``, ``cancel()``; plus SLURM's view: ``job_id`` (``N`` or
``A_i``), ``state`` (SLURM's state name), ``stdout()``/``stderr()``,
``usage()`` (CPU time, peak RSS, elapsed, node from the accounting) and
``Job.load(job_id)`` to re-attach from another process.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any, Optional

from ...errors import FleetError, InvalidJobId, JobTimeout, RemoteJobError, UsageError
from .backends.base import JobUsage, default_home
from .client import is_finished
from .payload import read_result

if TYPE_CHECKING:
    from .backends import Backend

__all__ = ["Job", "JobUsage", "index_path", "save_index"]


def index_path(home: str, backend: str, master_id: str) -> str:
    """Where the Executor notes a submission, for Job.load."""
    return os.path.join(home, "executor", "jobs", backend, f"{master_id}.json")


def save_index(home: str, backend: str, master_id: str, record: dict) -> None:
    from ...paths import private_dir
    from pathlib import Path

    path = index_path(home, backend, master_id)
    private_dir(Path(path).parent)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
    os.replace(tmp, path)


class Job:
    """One submitted call (one job, or one task of an array).

    Created by :meth:`Executor.submit`/``map``; inside ``with
    executor.batch():`` the job has no id until the block ends.
    """

    def __init__(self, backend: "Backend", folder: str, index: Optional[int] = None,
                 job_id: Optional[str] = None) -> None:
        self._backend = backend
        self._folder = folder
        self._index = index
        self._job_id = job_id
        self._final: Optional[str] = None
        self._usage: Optional[JobUsage] = None

    # -- identity -------------------------------------------------------------------
    @property
    def job_id(self) -> str:
        """``"N"``, or ``"A_i"`` for task i of array A."""
        if self._job_id is None:
            raise UsageError("this job is part of an unfinished executor.batch(): it gets its "
                             "id when the `with` block ends", prog="fleetslurm")
        return self._job_id

    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def paths(self) -> dict[str, str]:
        """The job's files on this host: ``call``, ``result``, ``stdout``, ``stderr``."""
        from .script import call_name, log_names, result_name

        array = self._index is not None
        sub = (lambda n: n.replace("%a", str(self._index))) if array else (lambda n: n)
        out, err = log_names(array)
        return {k: os.path.join(self._folder, sub(v)) for k, v in (
            ("call", call_name(array)), ("result", result_name(array)),
            ("stdout", out), ("stderr", err))}

    def __repr__(self) -> str:
        jid = self._job_id or "(batch pending)"
        return f"<fleetslurm.Job {jid} on {self._backend.name}: {self._final or '...'}>"

    # -- state ----------------------------------------------------------------------
    @property
    def state(self) -> str:
        """SLURM's state name: PENDING, RUNNING, COMPLETING, COMPLETED, FAILED,
        CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL..."""
        if self._final is not None:
            return self._final
        st = self._backend.states([self.job_id]).get(self.job_id)
        if st is None:
            st = self._backend.lost_state(self)
        if is_finished(st):
            self._final = st
        return st

    def done(self) -> bool:
        """Whether the job is over (whatever its end)."""
        return is_finished(self.state)

    def wait(self, timeout: Optional[float] = None) -> str:
        """Block until the job is over; returns its final state. Raises
        JobTimeout (a TimeoutError) after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.02
        over = False
        while True:
            st = self.state
            if is_finished(st):
                return st
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeout(f"job {self.job_id} is still {st} after {timeout:g} s "
                                 f"(it goes on; wait again, or cancel() it)")
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if over:  # over for the backend, not yet for its records: a short pause
                time.sleep(0.05 if left is None else min(0.05, left))
            # the fleet's controller says when the job ends; other backends pause
            over = self._backend.pause([self.job_id], delay, left)
            delay = min(1.0, delay * 1.5)

    # -- outcome --------------------------------------------------------------------
    def result(self, timeout: Optional[float] = None) -> Any:
        """The call's return value, waiting for it. Raises RemoteJobError (the
        remote traceback as text in it) when the call failed or the job ended
        without a result, JobTimeout after ``timeout`` seconds."""
        state = self.wait(timeout)
        return self._outcome(state)

    def exception(self, timeout: Optional[float] = None) -> Optional[RemoteJobError]:
        """The RemoteJobError the job ended with (None when it returned),
        waiting for it; JobTimeout after ``timeout`` seconds."""
        state = self.wait(timeout)
        try:
            self._outcome(state)
        except RemoteJobError as exc:
            return exc
        return None

    def _outcome(self, state: str) -> Any:
        path = self.paths["result"]
        try:
            return read_result(path, self.job_id)
        except RemoteJobError as exc:
            exc.state = state
            raise
        except FileNotFoundError:
            pass
        why = {"CANCELLED": "it was cancelled", "TIMEOUT": "it reached its time limit",
               "OUT_OF_MEMORY": "it ran out of memory (raise mem)",
               "NODE_FAIL": "its machine failed"}.get(state, f"it ended {state}")
        tail = self._tail("stderr")
        text = (f"job {self.job_id} ended without a result: {why}. Look at its output: "
                f"{self.paths['stderr']}")
        if tail:
            text += "\n--- end of its stderr ---\n" + tail
        raise RemoteJobError(text, self.job_id, state, remote_message=why,
                             remote_traceback=tail)

    def _tail(self, which: str, limit: int = 3000) -> str:
        try:
            text = self._backend.read_output(self, which)
        except (OSError, FleetError):
            return ""
        return text[-limit:].rstrip("\n")

    def cancel(self) -> bool:
        """scancel the job. True when it was still pending or running (it
        will end CANCELLED), False when it had already finished."""
        if self.done():
            return False
        self._backend.cancel([self.job_id])
        return True

    def stdout(self) -> str:
        """What the job wrote to standard output so far (also while it runs)."""
        return self._backend.read_output(self, "stdout")

    def stderr(self) -> str:
        return self._backend.read_output(self, "stderr")

    def usage(self) -> JobUsage:
        """CPU time, peak memory, elapsed time and node of the finished job, from
        the accounting (for a running job: what is known so far)."""
        if self._usage is None:
            usage = self._backend.usage(self)
            if is_finished(usage.state):
                self._usage = usage
            return usage
        return self._usage

    # -- re-attaching ---------------------------------------------------------------
    @classmethod
    def load(cls, job_id: str, backend: Optional[str] = None, *,
             home: Optional[str] = None) -> "Job":
        """Re-attach to a job an Executor submitted (from any process of the same
        user): ``Job.load("123")`` or ``Job.load("120_4")``. ``backend`` narrows
        the search when the same id exists on several backends."""
        import re

        from .backends import make_backend

        home = home or default_home()
        m = re.fullmatch(r"(\d+)(?:_(\d+))?", str(job_id).strip())
        if not m:
            raise InvalidJobId(f"job id {job_id!r}: use N or A_i (e.g. 123 or 120_4)")
        master, idx = m.group(1), m.group(2)
        names = [backend] if backend else ["fleet", "local", "slurm", "debug"]
        found = [(n, index_path(home, n, master)) for n in names
                 if os.path.exists(index_path(home, n, master))]
        if not found:
            raise InvalidJobId(f"job {job_id}: no Executor job with this id in {home}/executor "
                               "(submitted by another user or FLEETSLURM_HOME?)")
        if len(found) > 1:
            raise InvalidJobId(f"job {job_id} exists on several backends "
                               f"({', '.join(n for n, _ in found)}): pass backend=...")
        name, path = found[0]
        with open(path) as f:
            rec = json.load(f)
        if (idx is None) != (rec.get("tasks") is None):
            what = f"an array of {rec['tasks']} tasks: name one as {master}_i" \
                if rec.get("tasks") is not None else "not an array"
            raise InvalidJobId(f"job {job_id}: job {master} is {what}")
        if idx is not None and not 0 <= int(idx) < int(rec["tasks"]):
            raise InvalidJobId(f"job {job_id}: array {master} has tasks 0-{rec['tasks'] - 1}")
        be = make_backend(name, rec.get("backend_options") or {})
        return cls(be, rec["folder"], None if idx is None else int(idx), str(job_id))

"""The ``local`` backend: jobs run as subprocesses of a small detached
supervisor on this machine (:mod:`fleetslurm.api.executor.local_run`), no controller.

Each submission gets ``$FLEETSLURM_HOME/executor/local/runs/<N>/`` with the
script, the supervisor's pid and one ``task_<i>.json`` per task (state, times,
exit code, CPU time, peak RSS), so any process of the user can follow it.
Job ids come from one counter (a locked file), shared with ``debug``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Optional

from ....errors import SubmitError

from .base import HomeBackend

if TYPE_CHECKING:
    from .base import JobHandle, JobUsage

__all__ = ["LocalBackend", "next_id", "run_dir", "task_file"]


def next_id(home: str) -> int:
    """The next job id of the local and debug backends (a locked counter file)."""
    from pathlib import Path

    from ....paths import private_dir, take_next

    return take_next(str(private_dir(Path(home) / "executor" / "local") / "next_id"), 1)


def run_dir(home: str, master: str) -> str:
    return os.path.join(home, "executor", "local", "runs", str(master))


def task_file(rundir: str, index: Optional[int]) -> str:
    return os.path.join(rundir, "task.json" if index is None else f"task_{index}.json")


def _read(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _alive(rundir: str) -> bool:
    """Is the run's supervisor still there (its pid, and it is ours)?"""
    try:
        with open(os.path.join(rundir, "pid")) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        # the old module path too: a supervisor started before api/ had packages
        return (b"fleetslurm.api.executor.local_run" in cmdline
                or b"fleetslurm.api.local_run" in cmdline)
    except (OSError, ValueError):
        return False


class LocalBackend(HomeBackend):
    """Subprocesses on this machine; SLURM options that matter here are
    honoured (--time, --output/--error, --array with its %N throttle,
    --cpus-per-task for how many run at once, --chdir); others are ignored."""

    name = "local"

    def submit(self, script: str, folder: str, tasks: Optional[int], job_name: str,
               stage_in: list[str], stage_out: list[str]) -> str:
        from pathlib import Path

        from ....paths import private_dir

        master = next_id(self.home)
        rundir = run_dir(self.home, str(master))
        private_dir(Path(rundir))
        path = os.path.join(rundir, "script")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
        with os.fdopen(fd, "w") as f:
            f.write(script)
        with open(os.path.join(rundir, "spec.json"), "w") as f:
            json.dump({"job_id": master, "name": job_name, "cwd": os.getcwd()}, f)
        try:
            proc = subprocess.Popen(  # detached: it outlives this process
                [sys.executable, "-m", "fleetslurm.api.executor.local_run", rundir],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(rundir, "supervisor.log"), "ab"),
                start_new_session=True, close_fds=True,
                env={**os.environ, "PYTHONPATH": _pythonpath()})
        except OSError as exc:
            raise SubmitError(f"cannot start a local job supervisor: {exc}") from exc
        del proc  # it writes its own pid file once it runs (see _alive)
        return str(master)

    def _task(self, job_id: str) -> tuple[str, Optional[int]]:
        master, _, idx = job_id.partition("_")
        return run_dir(self.home, master), (int(idx) if idx else None)

    def states(self, ids: list[str]) -> dict[str, str]:
        out = {}
        for job_id in ids:
            rundir, idx = self._task(job_id)
            if not os.path.isdir(rundir):
                continue
            rec = _read(task_file(rundir, idx))
            live = _alive(rundir)
            if rec is None:
                out[job_id] = "PENDING" if live or _starting(rundir) else "FAILED"
            elif rec["state"] == "RUNNING" and not live:
                out[job_id] = "FAILED"  # its supervisor was killed
            else:
                out[job_id] = rec["state"]
        return out

    def cancel(self, ids: list[str]) -> None:
        for job_id in ids:
            rundir, idx = self._task(job_id)
            name = "cancel" if idx is None else f"cancel_{idx}"
            if os.path.isdir(rundir):
                open(os.path.join(rundir, name), "w").close()

    def usage(self, job: "JobHandle") -> "JobUsage":
        from .base import JobUsage

        rundir, idx = self._task(job.job_id)
        rec = _read(task_file(rundir, idx)) or {}
        state = self.states([job.job_id]).get(job.job_id, "FAILED")
        start, end = rec.get("start"), rec.get("end")
        return JobUsage(state, rec.get("cpu"), rec.get("max_rss_kb"),
                        (end - start) if start and end else None, rec.get("node"),
                        rec.get("exit_code"), rec.get("signal"))


def _starting(rundir: str) -> bool:
    """Submitted, its supervisor not running yet (it writes ``pid`` first thing;
    one that has not within a minute never will)."""
    import time

    if os.path.exists(os.path.join(rundir, "pid")):
        return False
    try:
        return time.time() - os.stat(os.path.join(rundir, "spec.json")).st_mtime < 60
    except OSError:
        return False


def _pythonpath() -> str:
    """This fleetslurm first on the supervisor's path (it may not be installed)."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))))
    old = os.environ.get("PYTHONPATH")
    return f"{here}:{old}" if old else here

"""Where an Executor's jobs run. Every backend runs the same batch script
(:mod:`fleetslurm.api.script`) and answers in SLURM's state names:

- ``fleet`` (default): fleetslurm's controller (the embedded localhost when
  there is no config); payloads staged through the transport;
- ``local``: subprocesses on this machine, no controller
  (:mod:`fleetslurm.api.backend_local`);
- ``debug``: in this process, synchronously, at submit time;
- ``slurm``: a real SLURM's ``sbatch``/``sacct`` on PATH
  (:mod:`fleetslurm.api.backend_slurm`).
"""

from __future__ import annotations

import abc
import os
from typing import TYPE_CHECKING, Any, Optional

from ..errors import UsageError

if TYPE_CHECKING:
    from .job import Job, JobUsage

__all__ = ["Backend", "HomeBackend", "FleetBackend", "DebugBackend", "make_backend", "BACKENDS"]

BACKENDS = ("fleet", "local", "debug", "slurm")


class Backend(abc.ABC):
    """One place jobs run. ``options`` are what :meth:`Job.load` needs to
    rebuild it in another process (JSON)."""

    name: str = ""
    options: dict = {}

    @abc.abstractmethod
    def submit(self, script: str, folder: str, tasks: Optional[int], job_name: str,
               stage_in: list[str], stage_out: list[str]) -> str:
        """Submit the script; the job id (``N``; an array's tasks are ``N_i``)."""

    @abc.abstractmethod
    def states(self, ids: list[str]) -> dict[str, str]:
        """``{id: SLURM state}`` for the ids the backend still knows."""

    @abc.abstractmethod
    def cancel(self, ids: list[str]) -> None:
        """Cancel the jobs (finished ones are left alone)."""

    @abc.abstractmethod
    def usage(self, job: "Job") -> "JobUsage":
        """The job's accounting (state, CPU time, peak RSS, elapsed, node)."""

    def read_output(self, job: "Job", which: str) -> str:
        """The job's stdout or stderr so far (files on this host by default)."""
        try:
            with open(job.paths[which], "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def lost_state(self, job: "Job") -> str:
        """The state of a job the backend no longer knows (aged out of the
        scheduler): what its result file says, else FAILED (it cannot be
        waited for any longer)."""
        from .payload import runner

        try:
            with open(job.paths["result"], "rb") as f:
                head = f.read(runner._HEADER.size)
            kind = runner._HEADER.unpack(head)[2]
            return "COMPLETED" if kind in (b"V", b"H") else "FAILED"
        except (OSError, Exception):
            return "FAILED"


class FleetBackend(Backend):
    """fleetslurm's controller, through :class:`fleetslurm.api.client.FleetClient`."""

    name = "fleet"

    def __init__(self, config: Optional[str] = None, home: Optional[str] = None) -> None:
        from .client import FleetClient

        self.client = FleetClient(config, home)
        self.options = {"config": self.client.config, "home": str(self.client.paths.home)}

    def submit(self, script: str, folder: str, tasks: Optional[int], job_name: str,
               stage_in: list[str], stage_out: list[str]) -> str:
        return self.client.submit(script, cwd=os.getcwd(), name=job_name,
                                  stage_in=stage_in, stage_out=stage_out)

    def states(self, ids: list[str]) -> dict[str, str]:
        return self.client.states(ids)

    def lost_state(self, job: "Job") -> str:
        from ..errors import InvalidJobId

        raise InvalidJobId(f"job {job.job_id}: the controller at {self.client.paths.home} "
                           "does not know it (another FLEETSLURM_HOME or config?)")

    def cancel(self, ids: list[str]) -> None:
        self.client.cancel(ids)

    def usage(self, job: "Job") -> "JobUsage":
        from .job import JobUsage

        rec = self.client.job(job.job_id)
        start, end = rec.get("start_time"), rec.get("end_time")
        return JobUsage(
            state=rec["state"], cpu_time_s=rec.get("total_cpu"),
            max_rss_kb=rec.get("max_rss_kb"),
            elapsed_s=(end - start) if start and end else None,
            node=(rec.get("nodes") or [None])[0], exit_code=rec.get("exit_code"),
            exit_signal=rec.get("exit_signal"))

    def read_output(self, job: "Job", which: str) -> str:
        # from the machine while it runs, from this host once it is home
        chunks, offset = [], 0
        while True:
            text, new = self.client.read_output(job.job_id, which, offset)
            if new == offset:
                return "".join(chunks)
            chunks.append(text)
            offset = new


class HomeBackend(Backend):
    """A backend that keeps its jobs under FLEETSLURM_HOME on this machine."""

    def __init__(self, home: Optional[str] = None) -> None:
        from .job import _home

        self.home = home or _home()
        self.options = {"home": self.home}


class DebugBackend(HomeBackend):
    """Runs each call in this process when it is submitted (pdb-friendly); the
    same payload round trip as the others, so what cannot travel fails here too."""

    name = "debug"

    def submit(self, script: str, folder: str, tasks: Optional[int], job_name: str,
               stage_in: list[str], stage_out: list[str]) -> str:
        from .backend_local import next_id

        master = next_id(self.home)
        for i in ([None] if tasks is None else range(tasks)):
            self._run(folder, i)
        return str(master)

    @staticmethod
    def _run(folder: str, index: Optional[int]) -> None:
        import contextlib
        import io
        import json

        from . import runner
        from .script import call_name, log_names, result_name

        sub = (lambda n: n) if index is None else (lambda n: n.replace("%a", str(index)))
        array = index is not None
        out, err = io.StringIO(), io.StringIO()
        result = os.path.join(folder, sub(result_name(array)))
        start = _cpu()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runner.main(["runner", os.path.join(folder, sub(call_name(array))), result])
        wall = _cpu()
        names = log_names(array)
        for stream, name in ((out, names[0]), (err, names[1])):
            runner.write_atomic(os.path.join(folder, sub(name)), stream.getvalue().encode())
        import resource

        runner.write_atomic(result + ".usage", json.dumps({
            "cpu": wall[0] - start[0], "elapsed": wall[1] - start[1],
            "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}).encode())

    def states(self, ids: list[str]) -> dict[str, str]:
        return {}  # everything ran at submit: lost_state reads the result

    def cancel(self, ids: list[str]) -> None:
        pass  # it already ran

    def usage(self, job: "Job") -> "JobUsage":
        import json
        import socket

        from .job import JobUsage

        try:
            with open(job.paths["result"] + ".usage") as f:
                u = json.load(f)
        except (OSError, ValueError):
            u = {}
        state = self.lost_state(job)
        return JobUsage(state, u.get("cpu"), u.get("max_rss_kb"), u.get("elapsed"),
                        socket.gethostname(), 0 if state == "COMPLETED" else 1)


def _cpu() -> tuple[float, float]:
    import time

    return time.thread_time(), time.monotonic()


def make_backend(name: str, options: Optional[dict[str, Any]] = None) -> Backend:
    """A backend by name (``fleet``, ``local``, ``debug``, ``slurm``)."""
    options = {k: v for k, v in (options or {}).items() if v is not None}
    if name == "fleet":
        return FleetBackend(options.get("config"), options.get("home"))
    if name == "debug":
        return DebugBackend(options.get("home"))
    if name == "local":
        from .backend_local import LocalBackend

        return LocalBackend(options.get("home"))
    if name == "slurm":
        from .backend_slurm import SlurmBackend

        return SlurmBackend()
    raise UsageError(f"unknown backend {name!r}; valid backends are: {', '.join(BACKENDS)}",
                     prog="fleetslurm")

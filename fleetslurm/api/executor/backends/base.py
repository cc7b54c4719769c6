"""What every backend is: :class:`Backend` (submit, states, cancel, usage),
:class:`HomeBackend` (jobs kept under FLEETSLURM_HOME on this machine),
:class:`JobUsage` (what a finished job used) and :class:`JobHandle` (what a
backend reads of a :class:`~fleetslurm.api.executor.job.Job`: its id and its
files), so that backends never import the Job class that uses them.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from typing import Optional, Protocol

__all__ = ["Backend", "HomeBackend", "JobHandle", "JobUsage", "default_home"]


@dataclasses.dataclass(frozen=True)
class JobUsage:
    """What a finished job used, from the accounting (``sacct``'s TotalCPU,
    MaxRSS, Elapsed, NodeList, ExitCode). A field the backend cannot know is
    None (a real SLURM without accounting has no CPU time or MaxRSS)."""

    state: str
    cpu_time_s: Optional[float]   # user + system CPU seconds
    max_rss_kb: Optional[int]     # peak resident memory, KiB
    elapsed_s: Optional[float]    # wall clock from start to end
    node: Optional[str]
    exit_code: Optional[int]
    exit_signal: Optional[int] = None


class JobHandle(Protocol):
    """What a backend reads of a job (:class:`fleetslurm.Job` is one)."""

    @property
    def job_id(self) -> str: ...

    @property
    def paths(self) -> dict[str, str]: ...


def default_home() -> str:
    """FLEETSLURM_HOME (``~/.fleetslurm`` by default)."""
    from ....paths import home_dir

    return str(home_dir())


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
    def usage(self, job: "JobHandle") -> "JobUsage":
        """The job's accounting (state, CPU time, peak RSS, elapsed, node)."""

    def read_output(self, job: "JobHandle", which: str) -> str:
        """The job's stdout or stderr so far (files on this host by default)."""
        try:
            with open(job.paths[which], "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def pause(self, ids: list[str], delay: float, left: Optional[float]) -> bool:
        """Wait before looking at the jobs' states again: ``delay`` seconds
        (polling backends), never past ``left`` (None: no limit). True when
        the backend knows they have ended (a backend that is told, not polled)."""
        time.sleep(delay if left is None else min(delay, left))
        return False

    def lost_state(self, job: "JobHandle") -> str:
        """The state of a job the backend no longer knows (aged out of the
        scheduler): what its result file says, else FAILED (it cannot be
        waited for any longer)."""
        from .. import runner

        try:
            with open(job.paths["result"], "rb") as f:
                head = f.read(runner._HEADER.size)
            kind = runner._HEADER.unpack(head)[2]
            return "COMPLETED" if kind in (b"V", b"H") else "FAILED"
        except (OSError, Exception):
            return "FAILED"


class HomeBackend(Backend):
    """A backend that keeps its jobs under FLEETSLURM_HOME on this machine."""

    def __init__(self, home: Optional[str] = None) -> None:
        self.home = home or default_home()
        self.options = {"home": self.home}

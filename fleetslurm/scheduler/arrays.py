"""Job arrays as the scheduler sees them: a few tasks at a time, and counts.

The controller submits an array's tasks a few at a time (as many as could
start soon, and never more than the ``%N`` throttle allows); the rest are
only counted (:class:`~fleetslurm.scheduler.events.ArrayTasks`). An
:class:`ArrayEntry` keeps, per array, how many tasks are pending, running
and ended, so that a dependency on the whole array (``afterok:<array id>``)
is decided in O(1) over every task, submitted or not.

A task that has ended leaves the scheduler's job table (a finished 100,000
task array must not hold 100,000 job entries); what dependencies still need
to know of it stays as one small :class:`~fleetslurm.slurm.deps.Facts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from fleetslurm.scheduler.events import ArrayTasks
from fleetslurm.scheduler.lifecycle import ENDED, PENDING, RUNNING
from fleetslurm.slurm.deps import Facts

if TYPE_CHECKING:  # pragma: no cover
    from fleetslurm.scheduler.records import JobEntry
    from fleetslurm.scheduler.state import SchedulerState

__all__ = ["ArrayEntry", "on_array_tasks", "on_phase", "forget_ended", "entry_facts", "task_facts",
           "index_facts"]

#: (phase, final state) of a job before a change; None: it was unknown
Before = Optional[tuple[str, str]]


@dataclass(eq=False)
class ArrayEntry:
    """Counts over every task of one array."""

    array_job_id: int
    unsubmitted: int = 0   # not yet submitted to the scheduler: pending
    base_ok: int = 0       # ended COMPLETED without being submitted (controller's count)
    base_bad: int = 0      # ended otherwise without being submitted (cancelled remainder)
    pending: int = 0       # submitted tasks now PENDING
    running: int = 0
    ended_ok: int = 0
    ended_bad: int = 0
    #: array index -> task (job) id, for every task submitted
    tasks: dict[int, int] = field(default_factory=dict)

    def facts(self) -> Facts:
        """The whole array, as SLURM's ``test_job_array_*`` judge it."""
        pending = self.unsubmitted > 0 or self.pending > 0
        finished = not pending and self.running == 0
        return Facts(pending=pending, finished=finished,
                     ok=finished and self.base_bad == 0 and self.ended_bad == 0,
                     is_array=True)

    def _count(self, phase: str, final: str, delta: int) -> None:
        if phase == PENDING:
            self.pending += delta
        elif phase == RUNNING:
            self.running += delta
        elif final == "COMPLETED":
            self.ended_ok += delta
        else:
            self.ended_bad += delta


def _entry(st: "SchedulerState", array_job_id: int) -> ArrayEntry:
    entry = st._arrays.get(array_job_id)
    if entry is None:
        entry = st._arrays[array_job_id] = ArrayEntry(array_job_id)
    return entry


def on_array_tasks(st: "SchedulerState", ev: ArrayTasks, now: float) -> None:
    """Record the controller's counts of the tasks it has not submitted."""
    entry = _entry(st, ev.array_job_id)
    entry.unsubmitted, entry.base_ok, entry.base_bad = ev.unsubmitted, ev.ended_ok, ev.ended_bad


def on_phase(st: "SchedulerState", job: "JobEntry", before: Before) -> None:
    """A task's phase changed (``before`` -> ``job.phase``): keep its array's counts."""
    req = job.req
    if req.array_job_id is None:
        return
    entry = _entry(st, req.array_job_id)
    if before is None:
        # first seen, or seen again after it ended and was forgotten
        old = st._ended_tasks.pop(req.job_id, None)
        if old is not None:
            entry._count(ENDED, "COMPLETED" if old.ok else "FAILED", -1)
    else:
        entry._count(before[0], before[1], -1)
    entry._count(job.phase, job.final, +1)
    if req.array_task_id is not None:
        entry.tasks[req.array_task_id] = req.job_id


def entry_facts(job: "JobEntry") -> Facts:
    """Facts of one job the scheduler holds. ``after`` counts a job as started
    once it has run, even if it was requeued since (the term was met then)."""
    if job.phase == ENDED:
        return Facts(pending=False, finished=True, ok=job.final == "COMPLETED",
                     start=job.first_start if job.first_start is not None else job.end_time)
    return Facts(pending=job.phase == PENDING and job.first_start is None, finished=False,
                 start=job.first_start)


def forget_ended(st: "SchedulerState", job: "JobEntry") -> None:
    """Drop an ended array task's entry, keeping only its facts."""
    if job.req.array_job_id is None or job.phase != ENDED:
        return
    st._ended_tasks[job.req.job_id] = entry_facts(job)
    del st._jobs[job.req.job_id]


def task_facts(st: "SchedulerState", job_id: int) -> Optional[Facts]:
    """Facts of a job by its own id: held, or an array task that ended."""
    job = st._jobs.get(job_id)
    if job is not None:
        return entry_facts(job)
    return st._ended_tasks.get(job_id)


def index_facts(st: "SchedulerState", entry: ArrayEntry, index: int) -> Optional[Facts]:
    """Facts of task ``index`` of an array: a task not submitted yet is pending
    (the controller refuses ``A_i`` for an index the array does not have)."""
    task_id = entry.tasks.get(index)
    if task_id is not None:
        return task_facts(st, task_id)
    if entry.unsubmitted > 0:
        return Facts(pending=True, finished=False)
    return None

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

from typing import TYPE_CHECKING, Optional

from fleetslurm.scheduler.events import ArrayTasks
from fleetslurm.scheduler.lifecycle import ENDED, PENDING
from fleetslurm.scheduler.records import ArrayEntry
from fleetslurm.slurm.deps import Facts

if TYPE_CHECKING:  # pragma: no cover
    from fleetslurm.scheduler.records import JobEntry
    from fleetslurm.scheduler.view import SchedulerView

__all__ = ["ArrayEntry", "on_array_tasks", "on_phase", "forget_ended", "entry_facts", "task_facts",
           "index_facts"]

#: (phase, final state) of a job before a change; None: it was unknown
Before = Optional[tuple[str, str]]


def _entry(st: "SchedulerView", array_job_id: int) -> ArrayEntry:
    entry = st._arrays.get(array_job_id)
    if entry is None:
        entry = st._arrays[array_job_id] = ArrayEntry(array_job_id)
    return entry


def on_array_tasks(st: "SchedulerView", ev: ArrayTasks, now: float) -> None:
    """Record the controller's counts of the tasks it has not submitted."""
    entry = _entry(st, ev.array_job_id)
    entry.unsubmitted, entry.base_ok, entry.base_bad = ev.unsubmitted, ev.ended_ok, ev.ended_bad


def on_phase(st: "SchedulerView", job: "JobEntry", before: Before) -> None:
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


def forget_ended(st: "SchedulerView", job: "JobEntry") -> None:
    """Drop an ended array task's entry, keeping only its facts."""
    if job.req.array_job_id is None or job.phase != ENDED:
        return
    st._ended_tasks[job.req.job_id] = entry_facts(job)
    del st._jobs[job.req.job_id]


def task_facts(st: "SchedulerView", job_id: int) -> Optional[Facts]:
    """Facts of a job by its own id: held, or an array task that ended."""
    job = st._jobs.get(job_id)
    if job is not None:
        return entry_facts(job)
    return st._ended_tasks.get(job_id)


def index_facts(st: "SchedulerView", entry: ArrayEntry, index: int) -> Optional[Facts]:
    """Facts of task ``index`` of an array: a task not submitted yet is pending
    (the controller refuses ``A_i`` for an index the array does not have)."""
    task_id = entry.tasks.get(index)
    if task_id is not None:
        return task_facts(st, task_id)
    if entry.unsubmitted > 0:
        return Facts(pending=True, finished=False)
    return None

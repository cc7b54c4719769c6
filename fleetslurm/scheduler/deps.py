"""SLURM job dependencies, as the scheduler decides them.

The language and its semantics (``afterok:12:13?afternotok:14``, what each
kind means for a job, an array task or a whole array) live in
:mod:`fleetslurm.slurm.deps`; this module supplies what only the scheduler
knows: the facts of the jobs, tasks and arrays a dependency names, and who
holds a ``singleton`` back.

A dependency on a job the scheduler has never seen (or has forgotten)
counts as satisfied whatever its kind, as SLURM's ``test_job_dependency``
does when a job has been purged ("job is gone, dependency lifted"); the
controller refuses ids nobody ever knew at submission.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

from fleetslurm.scheduler.arrays import index_facts, task_facts
from fleetslurm.scheduler.lifecycle import RUNNING
from fleetslurm.slurm import deps as _slurm
from fleetslurm.slurm.deps import ALL_TASKS, Dependency, DepTerm, Facts

if TYPE_CHECKING:  # pragma: no cover
    from fleetslurm.scheduler.records import JobEntry
    from fleetslurm.scheduler.view import SchedulerView

__all__ = [
    "SATISFIED",
    "WAITING",
    "NEVER",
    "DepTerm",
    "Dependency",
    "Facts",
    "parse_dependency",
    "facts",
    "term_status",
    "evaluate",
    "shown",
    "singleton_blocker",
]

SATISFIED = "satisfied"
WAITING = "waiting"
NEVER = "never"

_WORDS = {"ok": SATISFIED, "wait": WAITING, "fail": NEVER, "never": NEVER}


def parse_dependency(text: str) -> Optional[Dependency]:
    """Parse SLURM's dependency string; ``None`` for an empty one.

    Raises:
        InvalidValue: ``Job dependency problem: ... in "afterok:x"``.
    """
    return _slurm.parse_dependency(text) if text.strip() else None


def facts(st: "SchedulerView", job_id: int, task: Optional[int] = None) -> Optional[Facts]:
    """What the scheduler knows of job ``job_id`` (``task`` None), of its task
    ``task``, or of the whole array (``task`` ALL_TASKS, or None when
    ``job_id`` is an array's id, as SLURM reads ``afterok:<array id>``)."""
    array = st._arrays.get(job_id)
    if array is not None and (task is None or task == ALL_TASKS):
        return array.facts()
    if task is None or task == ALL_TASKS:
        return task_facts(st, job_id)
    return index_facts(st, array, task) if array is not None else None


def _singleton_blocked(st: "SchedulerView", job: "JobEntry") -> Callable[[], bool]:
    return lambda: singleton_blocker(st, job) is not None


def _submit_order(job: "JobEntry") -> int:
    # an array task was submitted when its array was (SLURM compares the
    # array's record, whose id is the array's)
    req = job.req
    return req.array_job_id if req.array_job_id is not None else req.job_id


def singleton_blocker(st: "SchedulerView", job: "JobEntry") -> Optional[int]:
    """A running job, or a pending one submitted earlier, of the same user and name."""
    group = (job.req.user, job.req.name)
    cached = st._singleton_cache.get(group)
    if cached is None:
        running: Optional[int] = None
        lowest: Optional[tuple[int, int]] = None
        for jid in st._groups.get(group, ()):
            other = st._jobs[jid]
            if other.phase == RUNNING:
                running = jid if running is None else min(running, jid)
            elif lowest is None or (_submit_order(other), jid) < lowest:
                lowest = (_submit_order(other), jid)
        cached = st._singleton_cache[group] = (running, lowest)
    running, lowest = cached
    if running is not None:
        return running
    if lowest is not None and lowest[0] < _submit_order(job):
        return lowest[1]
    return None


def term_status(st: "SchedulerView", job: "JobEntry", term: DepTerm, now: float) -> str:
    """SATISFIED, WAITING or NEVER for one term of ``job``'s dependency."""
    status = _slurm.term_status(term, lambda j, t: facts(st, j, t), now, job.req.array_task_id,
                                _singleton_blocked(st, job))
    return _WORDS[status]


def evaluate(st: "SchedulerView", job: "JobEntry", now: float) -> str:
    """SATISFIED, WAITING or NEVER for ``job``'s whole dependency (None: satisfied)."""
    result = _slurm.evaluate(job.dep, lambda j, t: facts(st, j, t), now,
                             array_task_id=job.req.array_task_id,
                             singleton_blocked=_singleton_blocked(st, job))
    return _WORDS[result]


def shown(st: "SchedulerView", job: "JobEntry", now: float) -> str:
    """squeue's ``%E`` for a pending job: the terms not met yet, ``(unfulfilled)``
    or ``(failed)``, a whole array as ``A_*``; ``""`` when nothing is left."""
    if job.dep_error is not None:
        return job.req.dependency
    text = _slurm.format_dependency(job.dep, lambda j, t: facts(st, j, t), now,
                                    array_task_id=job.req.array_task_id,
                                    singleton_blocked=_singleton_blocked(st, job))
    return "" if text == "(null)" else text

"""Dependencies in the controller: checked at submission, made known to the
scheduler, and ``--kill-on-invalid-dep=yes``.

SLURM's language and semantics are :mod:`fleetslurm.slurm.deps`; the
scheduler decides them over its facts (:mod:`fleetslurm.scheduler.deps`).
What the controller adds:

* A dependency naming a job nobody ever knew (``afterok:99999``, or
  ``afterok:12_7`` when array 12 has no index 7) is refused with SLURM's
  ``Job dependency problem`` and nothing is stored. SLURM 22.05 accepts
  such a job and lifts the dependency at once, which runs the job at once;
  later releases refuse it, and so does fleetslurm: a typo in a job id must
  not start a pipeline step early.
* The scheduler knows the jobs it was given since the controller started.
  A dependency on a job that ended before (or on a task it only counted) is
  told to it first, so ``afterok`` on a job that FAILED last week never runs.
* ``--kill-on-invalid-dep=yes``: a job whose dependency can never be met is
  cancelled (CANCELLED, reason DependencyNeverSatisfied), as SLURM does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from ..errors import InvalidValue, SubmitError
from ..jobids import MAX_JOB_ID
from ..model import ACTIVE_STATE_NAMES
from ..scheduler import ArrayTasks, JobEnded, JobSubmitted
from ..slurm.deps import ALL_TASKS, Dependency, parse_dependency

if TYPE_CHECKING:
    from .context import Context
    from ..store import Store

__all__ = ["DEPENDENCY_PROBLEM", "check", "announce", "kill_invalid", "first_shown",
           "update_shown"]

DEPENDENCY_PROBLEM = "Batch job submission failed: Job dependency problem"


def _parsed(text: str) -> "Dependency | None":
    if not text.strip():
        return None
    try:
        return parse_dependency(text)
    except InvalidValue:
        raise SubmitError(DEPENDENCY_PROBLEM) from None


def _known(store: "Store", job_id: int, task: "int | None") -> bool:
    if not 0 <= job_id <= MAX_JOB_ID:
        return False  # SLURM's job ids are 32-bit: no such job (and none SQLite holds)
    job = store.job(job_id)
    if task is None or task == ALL_TASKS:
        return job is not None or store.task(job_id) is not None
    if job is None or not job["array_spec"]:
        return False
    from ..slurm.arrays import parse_array_set

    try:
        indices, _ = parse_array_set(job["array_spec"], max_array_size=2**62)
    except InvalidValue:
        return False
    return task in indices


def check(store: "Store", text: str) -> None:
    """Refuse a dependency SLURM cannot parse, or that names an unknown job or task.

    Raises:
        SubmitError: ``Batch job submission failed: Job dependency problem``.
    """
    dep = _parsed(text)
    if dep is None:
        return
    for term in dep.terms:
        if term.job_id is not None and not _known(store, term.job_id, term.array_task):
            raise SubmitError(DEPENDENCY_PROBLEM)


def announce(ctx: "Context", texts: Iterable[str]) -> None:
    """Tell the scheduler about every job the dependencies name that it may not know."""
    store = ctx.store
    done: set[tuple[int, "int | None"]] = set()
    for text in texts:
        try:
            dep = parse_dependency(text) if text.strip() else None
        except InvalidValue:
            continue  # the scheduler reports it (DependencyNeverSatisfied)
        for term in dep.terms if dep else ():
            if term.job_id is None or (term.job_id, term.array_task) in done:
                continue
            done.add((term.job_id, term.array_task))
            job = store.job(term.job_id)
            if job is not None and job["array_spec"]:
                _announce_array(ctx, term.job_id)
                if term.array_task not in (None, ALL_TASKS):
                    task = store.array_task(term.job_id, term.array_task)
                    if task is not None:
                        _announce_task(ctx, task, job)
                continue
            task = store.task(term.job_id)
            if task is not None and task["task_id"] not in ctx.fed:
                _announce_task(ctx, task, store.job(task["job_id"]))  # type: ignore[arg-type]


def _announce_array(ctx: "Context", job_id: int) -> None:
    arrays = ctx.arrays
    if job_id in arrays.told:
        return
    ok, bad = ctx.store.array_outcomes(job_id)
    arrays.told.add(job_id)
    arrays.base[job_id] = [ok, bad]
    ctx.emit(ArrayTasks(job_id, 0, ok, bad))


def _announce_task(ctx: "Context", task: dict, job: dict) -> None:
    """A job that ended (or an array task the scheduler only counted): its outcome."""
    if task["state"] in ACTIVE_STATE_NAMES:
        return  # the scheduler has it, or counts it as pending
    arrays = ctx.arrays
    in_array = task["array_index"] is not None
    if in_array and task["task_id"] in arrays.ever_fed:
        return  # seen one by one since the start: its facts are there
    ctx.emit(JobSubmitted(ctx.request_of(task, job)))
    ctx.emit(JobEnded(task["task_id"], task["state"], task["end_time"] or ctx.now))
    if in_array:
        # it was in the array's ended counts; now the scheduler counts it itself
        arrays.ever_fed.add(task["task_id"])
        arrays.uncount(task["job_id"], task["state"] == "COMPLETED")


def kill_invalid(ctx: "Context", reasons: dict[int, str], now: float) -> None:
    """Cancel the jobs submitted with ``--kill-on-invalid-dep=yes`` whose
    dependency can never be met (an array: its tasks and its remainder)."""
    from .lifecycle import cancel_task

    for task_id, reason in reasons.items():
        if reason != "DependencyNeverSatisfied":
            continue
        task = ctx.store.task(task_id)
        if task is None or task["state"] != "PENDING":
            continue
        job = ctx.store.job(task["job_id"])
        if not job or not job["spec"].get("kill_on_invalid_dep"):
            continue
        targets = [task]
        if task["array_index"] is not None or task["array_pending"] is not None:
            # the array's tasks share the dependency: all that wait, and its record
            targets = [t for t in ctx.store.tasks_of_job(task["job_id"]) if t["state"] == "PENDING"]
        for target in targets:
            fresh = ctx.store.task(target["task_id"])
            if fresh is not None and fresh["state"] == "PENDING":
                cancel_task(ctx, fresh, job["uid"], now, reason="DependencyNeverSatisfied")


def first_shown(store: "Store", text: str) -> str:
    """What squeue shows for a new job's dependency before the scheduler judged it."""
    dep = _parsed(text)
    if dep is None:
        return ""
    from ..slurm.deps import format_dependency

    def is_array(job_id: int) -> bool:
        job = store.job(job_id)
        return job is not None and bool(job["array_spec"])

    return format_dependency(dep, is_array=is_array)


def update_shown(ctx: "Context") -> None:
    """Keep each pending job's dependency in the store as squeue shows it (an
    array's record: as its first waiting task's). SLURM clears a dependency
    once it is met; a job cancelled for it keeps it (``afterok:7_*(failed)``)."""
    shown: dict[int, str] = {}
    arrays = ctx.arrays
    for task_id in ctx.sched.pending():
        text = ctx.sched.dependency_text(task_id)
        if text is None:
            continue
        if arrays.is_window_task(task_id):
            task_id = arrays.of_task[task_id]
            if task_id in shown:
                continue  # the first in priority order speaks for the record
        shown[task_id] = text
    old = ctx.dep_shown
    for task_id, text in shown.items():
        if old.get(task_id) != text:
            ctx.store.update_task(task_id, dep_shown=text)
    for task_id in old.keys() - shown.keys():
        task = ctx.store.task(task_id)
        if task is not None and task["state"] not in ("PENDING", "CANCELLED"):
            ctx.store.update_task(task_id, dep_shown="")
    ctx.dep_shown = shown

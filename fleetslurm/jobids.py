"""What a job id names: ``N``, ``N_i``, ``N_[1-3,7]``, ``N.batch``.

``N`` is a job, or every task of array N (its record included); a task's own
id (JobIDRaw) names that task. ``N_i`` is one task of array N. An index of a
pending array may have no task row yet (tasks are created as they start):
such indices come back as :class:`Pick` (the array's record and the index),
for the caller to split out, drop or show.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

from .errors import InvalidJobId, InvalidValue

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Pick", "Selection", "select", "resolve", "find_tasks"]

#: the largest job id (and array index) SLURM has: ids are 32-bit
MAX_JOB_ID = 2**32 - 1
_ID_RE = re.compile(r"(\d+)(?:_(\d+|\[[0-9,\-:%]+\]))?(?:\.(\w+))?")


class Pick(NamedTuple):
    """Index ``index`` of array ``record["task_id"]``, which has no task row yet."""

    record: dict
    index: int


class Selection(NamedTuple):
    """What a job id names: whole jobs (every task of an array, its record
    included), single tasks by their own id, and picks."""

    jobs: set[int]
    tasks: set[int]
    picks: list[Pick]


def select(store: "Store", text: str) -> Selection:
    """What a job id names, without loading the rows (an array of 100,000 tasks
    is one job id here). Raises InvalidJobId when the text is not a job id."""
    from .slurm.arrays import IndexSet, parse_array_set

    match = _ID_RE.fullmatch(str(text).strip())
    if not match:
        raise InvalidJobId("Invalid job id specified")
    job_id, selector = int(match.group(1)), match.group(2)
    if job_id > MAX_JOB_ID or (selector and selector.isdigit() and int(selector) > MAX_JOB_ID):
        # SLURM's ids are 32-bit: such an id names no job (as SLURM answers it)
        return Selection(set(), set(), [])
    job = store.jobs_brief([job_id]).get(job_id)
    is_array = job is not None and job["array_spec"] is not None
    if selector is None:
        if is_array:
            return Selection({job_id}, set(), [])
        return Selection(set(), {job_id} if store.task_exists(job_id) else set(), [])
    if not is_array:
        return Selection(set(), set(), [])
    if selector.startswith("["):
        try:
            wanted, _ = parse_array_set(selector.strip("[]"), max_array_size=2**62)
        except InvalidValue:
            raise InvalidJobId("Invalid job id specified") from None
    else:
        wanted = IndexSet.of([int(selector)])
    if wanted.first() > MAX_JOB_ID:
        return Selection(set(), set(), [])
    tasks = {t for t, index in store.array_task_ids(job_id, wanted.first() if len(wanted) == 1
                                                    else None) if index in wanted}
    record = store.task(job_id)
    picks: list[Pick] = []
    if record is not None and record["array_pending"] is not None:
        remaining = IndexSet.from_text(record["array_pending"])
        small, large = (wanted, remaining) if len(wanted) <= len(remaining) else (remaining, wanted)
        picks = [Pick(record, i) for i in small if i in large]
    return Selection(set(), tasks, picks)


def resolve(store: "Store", text: str) -> tuple[list[dict], list[Pick]]:
    """(task rows, picks) that a job id names; both empty for an unknown job.

    Raises:
        InvalidJobId: the text is not a job id at all.
    """
    sel = select(store, text)
    rows = [t for job_id in sorted(sel.jobs) for t in store.tasks_of_job(job_id)]
    rows.extend(t for t in (store.task(task_id) for task_id in sorted(sel.tasks)) if t)
    return rows, sel.picks


def find_tasks(store: "Store", text: str) -> list[dict]:
    """The task rows a job id names (indices without a row are left out)."""
    return resolve(store, text)[0]


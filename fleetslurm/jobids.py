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

__all__ = ["Pick", "resolve", "find_tasks"]

_ID_RE = re.compile(r"(\d+)(?:_(\d+|\[[0-9,\-:%]+\]))?(?:\.(\w+))?")


class Pick(NamedTuple):
    """Index ``index`` of array ``record["task_id"]``, which has no task row yet."""

    record: dict
    index: int


def resolve(store: "Store", text: str) -> tuple[list[dict], list[Pick]]:
    """(task rows, picks) that a job id names; both empty for an unknown job.

    Raises:
        InvalidJobId: the text is not a job id at all.
    """
    from .slurm.arrays import IndexSet, parse_array_set

    match = _ID_RE.fullmatch(str(text).strip())
    if not match:
        raise InvalidJobId("Invalid job id specified")
    job_id, selector = int(match.group(1)), match.group(2)
    job = store.job(job_id)
    is_array = job is not None and job["array_spec"] is not None
    if selector is None:
        if is_array:
            return store.tasks_of_job(job_id), []
        task = store.task(job_id)
        return ([task] if task else []), []
    if not is_array:
        return [], []
    if selector.startswith("["):
        try:
            wanted, _ = parse_array_set(selector.strip("[]"), max_array_size=2**62)
        except InvalidValue:
            raise InvalidJobId("Invalid job id specified") from None
    else:
        wanted = IndexSet.of([int(selector)])
    if len(wanted) == 1:
        row = store.array_task(job_id, wanted.first())
        rows = [row] if row is not None else []
    else:
        rows = [t for t in store.tasks_of_job(job_id) if t["array_index"] in wanted]
    record = store.task(job_id)
    picks: list[Pick] = []
    if record is not None and record["array_pending"] is not None:
        remaining = IndexSet.from_text(record["array_pending"])
        small, large = (wanted, remaining) if len(wanted) <= len(remaining) else (remaining, wanted)
        picks = [Pick(record, i) for i in small if i in large]
    return rows, picks


def find_tasks(store: "Store", text: str) -> list[dict]:
    """The task rows a job id names (indices without a row are left out)."""
    return resolve(store, text)[0]


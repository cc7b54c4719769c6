"""What the controller's queries decoded, built and rendered last time, kept
while the rows they came from stay the same.

squeue over 10,000 separate pending jobs spent most of its second decoding
two JSON documents per job (its task's request, its job's spec) and building
each job's record, again on every call, though between two calls few jobs
change. A row compared with the one kept costs about a microsecond; decoding
and building cost some sixty. Records and decoded rows from here are shared
between calls and threads: callers read them and copy before changing them.
squeue's lines are kept with the record they came from, for the jobs whose
line cannot change with the clock (see squeue_fmt.render).

Right after a change, reading the 10,000 rows again to compare them cost
squeue more than all the rest: each task row carries its ``rev`` (the
store's change count at its last write, ``store_bulk.TASK_REVS``), and
:meth:`RecordMemo.tasks_since` reads only the rows whose rev moved.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Iterable, Sequence

from .model import JobRecord
from .slurm.squeue_fmt import default_sort_key
from .store import Store, decode_task
from .views import job_record

__all__ = ["RecordMemo"]

#: past this many kept tasks (or jobs), everything is dropped and built again
#: (a few kB each): the memory stays bounded, whatever squeue is asked for
MAX_KEPT = 50_000
#: squeue formats whose lines are kept per record (most users have one or two)
MAX_FORMATS = 4


def _interned(d: dict) -> dict:
    """``d`` with its keys interned: each decoded JSON document has its own copy
    of every key, and a job's spec has some fifty; kept for 10,000 jobs, the
    copies alone took 28 MB."""
    return {sys.intern(k): v for k, v in d.items()}


def _put(kept: dict, key: int, value: Any) -> None:
    """``kept[key] = value``, everything dropped first once MAX_KEPT are kept."""
    if len(kept) >= MAX_KEPT:
        kept.clear()
    kept[key] = value


def _prune(kept: dict, keys: "set[int]") -> None:
    """Drop what ``kept`` holds for any key not in ``keys``."""
    if kept.keys() <= keys:
        return  # (most calls: nothing ended; a set comparison runs in C)
    for key in [k for k in kept if k not in keys]:
        del kept[key]


class RecordMemo:
    """Decoded task and job rows, and the records built from them (without
    steps: squeue's), each rebuilt only when a row it came from changed."""

    def __init__(self) -> None:
        # task id -> (the row's values, decoded task)
        self._tasks: dict[int, tuple[tuple, dict]] = {}
        # task id -> (the row's rev, decoded task): tasks_since's
        self._revs: dict[int, tuple[int, dict]] = {}
        # job id -> (rev, decoded brief job row)
        self._jobs: dict[int, tuple[int, dict]] = {}
        # task id -> (decoded task, decoded job, record): the record stands while
        # both decoded rows are the very objects it was built from
        self._records: dict[int, tuple[dict, dict, JobRecord]] = {}
        # job id -> (record, {squeue format: its line}): the lines stand while
        # the record is the very object they were rendered from
        self._lines: dict[int, tuple[JobRecord, dict[str, str]]] = {}
        # job id -> (record, its squeue_fmt.default_sort_key): likewise
        self._keys: dict[int, tuple[JobRecord, tuple]] = {}
        # the query threads share this memo; a lock keeps clear/prune whole
        self._lock = threading.Lock()

    def tasks(self, rows: Sequence[Any]) -> list[dict]:
        """The task rows (``Store.task_rows``) decoded."""
        with self._lock:
            return [self._task(row) for row in rows]

    def _task(self, row: Any) -> dict:
        values = tuple(row)
        hit = self._tasks.get(row["task_id"])
        if hit is not None and hit[0] == values:
            return hit[1]
        task = decode_task(row)
        task["req"] = _interned(task["req"])
        _put(self._tasks, task["task_id"], (values, task))
        return task

    def tasks_since(self, store: "Store", heads: Sequence[Any]) -> list[dict]:
        """The tasks of ``heads`` (``store.task_heads``: task id and rev first)
        decoded, reading again only the rows whose rev is not the one kept.
        Only for a store on disk, read in a snapshot: there a rev names one
        committed version of a row (in memory, a write rolled back can give
        the next one the same rev; use :meth:`tasks` there)."""
        with self._lock:
            kept = [self._revs.get(h[0]) for h in heads]
        stale = [h[0] for h, hit in zip(heads, kept) if hit is None or hit[0] != h[1]]
        fresh: dict[int, dict] = {}
        if stale:
            rows = store.task_rows_in(stale)
            with self._lock:
                for row in rows:
                    task = self._task(row)
                    fresh[task["task_id"]] = task
                    _put(self._revs, task["task_id"], (row["rev"], task))
        return [hit[1] if hit is not None and hit[0] == h[1] else fresh[h[0]]
                for h, hit in zip(heads, kept)]

    def jobs(self, store: "Store", job_ids: Iterable[int],
             revs: "dict[int, int] | None" = None) -> dict[int, dict]:
        """``store.jobs_brief(job_ids)``, reading only the specs that changed
        (the rest are known by their rev, a much lighter read; ``revs``:
        job id -> rev, already read with the tasks)."""
        heads = revs if revs is not None else \
            {row[0]: row[1] for row in store.job_heads(job_ids)}
        with self._lock:
            out = {j: hit[1] for j, hit in
                   ((j, self._jobs.get(j)) for j in heads) if hit is not None and hit[0] == heads[j]}
        missing = [j for j in heads if j not in out]
        if missing:
            fresh = store.jobs_brief(missing)
            with self._lock:
                for j, job in fresh.items():
                    job["spec"] = _interned(job["spec"])
                    # the rev read first: a spec changed since is read again next time
                    _put(self._jobs, j, (heads[j], job))
            out.update(fresh)
        return out

    def record(self, task: dict, job: dict, cluster: str) -> JobRecord:
        """``job_record(task, job, (), cluster)``, built once per row version."""
        hit = self._records.get(task["task_id"])
        if hit is not None and hit[0] is task and hit[1] is job:
            return hit[2]
        rec = job_record(task, job, (), cluster)
        with self._lock:
            _put(self._records, task["task_id"], (task, job, rec))
        return rec

    def line(self, rec: JobRecord, fmt: str) -> "str | None":
        """The squeue line kept for this very record under ``fmt``, if any."""
        hit = self._lines.get(rec["job_id"])
        return hit[1].get(fmt) if hit is not None and hit[0] is rec else None

    def keep_line(self, rec: JobRecord, fmt: str, line: str) -> None:
        """Keep ``rec``'s line under ``fmt`` (a few formats per record)."""
        key = rec["job_id"]
        hit = self._lines.get(key)
        if hit is None or hit[0] is not rec:
            hit = (rec, {})
            with self._lock:
                _put(self._lines, key, hit)
        if len(hit[1]) >= MAX_FORMATS:
            hit[1].clear()
        hit[1][fmt] = line

    def sort_key(self, rec: JobRecord) -> tuple:
        """``squeue_fmt.default_sort_key(rec)``, made once per record."""
        hit = self._keys.get(rec["job_id"])
        if hit is not None and hit[0] is rec:
            return hit[1]
        key = default_sort_key(rec)
        with self._lock:
            _put(self._keys, rec["job_id"], (rec, key))
        return key

    def keep_only(self, task_ids: Iterable[int], job_ids: Iterable[int]) -> None:
        """Forget all but these (after a query that saw every active job)."""
        tasks, jobs = set(task_ids), set(job_ids)
        with self._lock:
            _prune(self._tasks, tasks)
            _prune(self._revs, tasks)
            _prune(self._records, tasks)
            _prune(self._lines, tasks)
            _prune(self._keys, tasks)
            _prune(self._jobs, jobs)

"""What the controller's queries decoded and built last time, kept while the
rows they came from stay the same.

squeue over 10,000 separate pending jobs spent most of its second decoding
two JSON documents per job (its task's request, its job's spec) and building
each job's record, again on every call, though between two calls few jobs
change. A row compared with the one kept costs about a microsecond; decoding
and building cost some sixty. Records and decoded rows from here are shared
between calls and threads: callers read them and copy before changing them.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable, Iterable, Sequence

from .model import JobRecord
from .store import Store, decode_task
from .views import job_record

__all__ = ["RecordMemo"]

#: past this many kept tasks (or jobs), everything is dropped and built again
#: (a few kB each): the memory stays bounded, whatever squeue is asked for
MAX_KEPT = 50_000


def _interned(d: dict) -> dict:
    """``d`` with its keys interned: each decoded JSON document has its own copy
    of every key, and a job's spec has some fifty; kept for 10,000 jobs, the
    copies alone took 28 MB."""
    return {sys.intern(k): v for k, v in d.items()}


def _decode_task(row: Any) -> dict:
    task = decode_task(row)
    task["req"] = _interned(task["req"])
    return task


class _Decoded:
    """Rows decoded by ``decode``, kept by their key with the row's values."""

    def __init__(self, decode: Callable[[Any], dict]) -> None:
        self.decode = decode
        self.kept: dict[int, tuple[tuple, dict]] = {}

    def get(self, key: int, row: Any) -> dict:
        values = tuple(row)
        hit = self.kept.get(key)
        if hit is not None and hit[0] == values:
            return hit[1]
        value = self.decode(row)
        if len(self.kept) >= MAX_KEPT:
            self.kept.clear()
        self.kept[key] = (values, value)
        return value

    def keep_only(self, keys: "set[int]") -> None:
        for key in [k for k in self.kept if k not in keys]:
            del self.kept[key]


class RecordMemo:
    """Decoded task and job rows, and the records built from them (without
    steps: squeue's), each rebuilt only when a row it came from changed."""

    def __init__(self) -> None:
        self._tasks = _Decoded(_decode_task)
        # job id -> (rev, decoded brief job row)
        self._jobs: dict[int, tuple[int, dict]] = {}
        # task id -> (decoded task, decoded job, record): the record stands while
        # both decoded rows are the very objects it was built from
        self._records: dict[int, tuple[dict, dict, JobRecord]] = {}
        # the query threads share this memo; a lock keeps clear/prune whole
        self._lock = threading.Lock()

    def tasks(self, rows: Sequence[Any]) -> list[dict]:
        """The task rows (``Store.task_rows``) decoded."""
        with self._lock:
            return [self._tasks.get(row["task_id"], row) for row in rows]

    def jobs(self, store: "Store", job_ids: Iterable[int]) -> dict[int, dict]:
        """``store.jobs_brief(job_ids)``, reading only the specs that changed
        (the rest are known by their rev, a much lighter read)."""
        heads = {row[0]: row[1] for row in store.job_heads(job_ids)}
        with self._lock:
            out = {j: hit[1] for j, hit in
                   ((j, self._jobs.get(j)) for j in heads) if hit is not None and hit[0] == heads[j]}
        missing = [j for j in heads if j not in out]
        if missing:
            fresh = store.jobs_brief(missing)
            with self._lock:
                if len(self._jobs) + len(fresh) > MAX_KEPT:
                    self._jobs.clear()
                for j, job in fresh.items():
                    job["spec"] = _interned(job["spec"])
                    # the rev read first: a spec changed since is read again next time
                    self._jobs[j] = (heads[j], job)
            out.update(fresh)
        return out

    def record(self, task: dict, job: dict, cluster: str) -> JobRecord:
        """``job_record(task, job, (), cluster)``, built once per row version."""
        hit = self._records.get(task["task_id"])
        if hit is not None and hit[0] is task and hit[1] is job:
            return hit[2]
        rec = job_record(task, job, (), cluster)
        with self._lock:
            if len(self._records) >= MAX_KEPT:
                self._records.clear()
            self._records[task["task_id"]] = (task, job, rec)
        return rec

    def keep_only(self, task_ids: Iterable[int], job_ids: Iterable[int]) -> None:
        """Forget all but these (after a query that saw every active job)."""
        task_ids = set(task_ids)
        with self._lock:
            self._tasks.keep_only(task_ids)
            job_ids = set(job_ids)
            for key in [k for k in self._jobs if k not in job_ids]:
                del self._jobs[key]
            for key in [k for k in self._records if k not in task_ids]:
                del self._records[key]

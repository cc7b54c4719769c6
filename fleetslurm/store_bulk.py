"""The store's queries for many jobs at once: sacct's lines, and the rows
squeue and sacct records need (part of :class:`fleetslurm.store.Store`,
which owns all SQL; kept apart to keep that module small)."""

from __future__ import annotations

import json
from typing import Any, Iterable

__all__ = ["BulkQueries", "FINAL_SQL", "JOB_CHANGES_SQL", "JOB_CHANGES_KEPT", "TASK_REVS"]

#: the final states, as an SQL list
FINAL_SQL = ("('COMPLETED','CANCELLED','FAILED','TIMEOUT','NODE_FAIL','PREEMPTED','BOOT_FAIL',"
             "'DEADLINE','OUT_OF_MEMORY')")

#: a migration (store._MIGRATIONS): each task row's ``rev``, the change count
#: (``changes.n``) as of its last write, so squeue reads again only the rows
#: written since it last looked (``task_heads``, record_memo); a trigger's own
#: UPDATE does not fire it again (SQLite's recursive_triggers is off)
TASK_REVS = """
ALTER TABLE tasks ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
DROP TRIGGER tasks_inserted;
DROP TRIGGER tasks_updated;
CREATE TRIGGER tasks_inserted AFTER INSERT ON tasks BEGIN UPDATE changes SET n = n + 1;
    UPDATE tasks SET rev = (SELECT n FROM changes) WHERE task_id = NEW.task_id; END;
CREATE TRIGGER tasks_updated AFTER UPDATE ON tasks BEGIN UPDATE changes SET n = n + 1;
    UPDATE tasks SET rev = (SELECT n FROM changes) WHERE task_id = NEW.task_id; END;
"""

#: how many entries of the change log are kept: a reader further behind
#: reads everything again
JOB_CHANGES_KEPT = 50_000

#: Migration 16: the job each change to a job or task row touched, in order
#: (seq), kept by triggers beside migration 6's counter: a reader that kept a
#: view of the queue (the dashboard's) asks which jobs changed since the last
#: seq it saw and reads only those again, not 10,000 jobs for one changed.
#: A finished task given its sacct lines is no change to the queue, nor is
#: migration 15's own UPDATE of a row's ``rev`` (its trigger's statement
#: fires this one: only recursion is off), which would log each write twice.
JOB_CHANGES_SQL = """
    CREATE TABLE job_changes (seq INTEGER PRIMARY KEY, job_id INTEGER NOT NULL);
    CREATE TRIGGER job_changes_kept AFTER INSERT ON job_changes BEGIN
        DELETE FROM job_changes WHERE seq <= NEW.seq - %(kept)d; END;
    CREATE TRIGGER tasks_inserted_log AFTER INSERT ON tasks BEGIN
        INSERT INTO job_changes(job_id) VALUES (NEW.job_id); END;
    CREATE TRIGGER tasks_updated_log AFTER UPDATE ON tasks
        WHEN OLD.acct_lines IS NEW.acct_lines AND OLD.rev IS NEW.rev BEGIN
        INSERT INTO job_changes(job_id) VALUES (NEW.job_id); END;
    CREATE TRIGGER tasks_deleted_log AFTER DELETE ON tasks BEGIN
        INSERT INTO job_changes(job_id) VALUES (OLD.job_id); END;
    CREATE TRIGGER jobs_inserted_log AFTER INSERT ON jobs BEGIN
        INSERT INTO job_changes(job_id) VALUES (NEW.job_id); END;
    CREATE TRIGGER jobs_updated_log AFTER UPDATE ON jobs BEGIN
        INSERT INTO job_changes(job_id) VALUES (NEW.job_id); END;
    CREATE TRIGGER jobs_deleted_log AFTER DELETE ON jobs BEGIN
        INSERT INTO job_changes(job_id) VALUES (OLD.job_id); END;
""" % {"kept": JOB_CHANGES_KEPT}


class BulkQueries:
    """Mixed into :class:`~fleetslurm.store.Store` (which provides ``_x``)."""

    def _x(self, sql: str, args: Any = ()) -> Any:  # pragma: no cover - Store's
        raise NotImplementedError

    def jobs_brief(self, job_ids: Iterable[int]) -> dict[int, dict]:
        """Job rows for many jobs at once, their spec without the submitter's
        environment (most of its bytes), and no script: what records need."""
        out: dict[int, dict] = {}
        for row in self._jobs_in("job_id, uid, user, submit_time, array_spec, "
                                 "json_remove(spec, '$.env') AS spec", job_ids):
            d = dict(row)
            d["spec"] = json.loads(d["spec"])
            out[d["job_id"]] = d
        return out

    def task_heads(self, where: str) -> list[Any]:
        """(task_id, rev, job_id, its job's rev) of the tasks ``where`` selects
        (``t.`` a task's columns, ``j.`` its job's), by task id: which rows
        changed since they were read (see TASK_REVS), at a small part of
        the cost of reading them all."""
        return self._x("SELECT t.task_id, t.rev, t.job_id, j.rev FROM tasks t JOIN jobs j "
                       f"ON j.job_id = t.job_id WHERE {where} ORDER BY t.task_id").fetchall()

    def task_rows_in(self, task_ids: Iterable[int]) -> list[Any]:
        """The rows of these tasks (``Store.task_rows``'), by task id."""
        return self._rows_in("SELECT * FROM tasks", "task_id", task_ids)

    def job_heads(self, job_ids: Iterable[int]) -> list[Any]:
        """(job_id, rev) of these jobs: whether a spec read before still holds."""
        return self._jobs_in("job_id, rev", job_ids)

    def _jobs_in(self, columns: str, job_ids: Iterable[int]) -> list[Any]:
        return self._rows_in(f"SELECT {columns} FROM jobs", "job_id", job_ids)

    def _rows_in(self, select: str, key: str, ids: Iterable[int]) -> list[Any]:
        """The rows of ``select`` (``SELECT ... FROM table``) whose ``key`` is
        one of ``ids``, by key; asked in chunks under SQLite's limit on
        parameters."""
        wanted = sorted(set(ids))
        rows: list[Any] = []
        for i in range(0, len(wanted), 900):
            chunk = wanted[i:i + 900]
            rows.extend(self._x(f"{select} WHERE {key} IN ({','.join('?' * len(chunk))}) "
                                f"ORDER BY {key}", chunk))
        return rows

    def job_changes(self, since: "int | None") -> "tuple[int, list[int] | None]":
        """The change log's last seq, and the jobs changed after seq ``since``
        (in any order, once each); None when ``since`` is None or older than
        the log keeps (read everything again). Read it in the same snapshot
        as the rows it dates."""
        # one aggregate a subquery: SQLite reads max and min off the key only
        # when each is alone (together, it scans the whole log)
        row = self._x("SELECT coalesce((SELECT max(seq) FROM job_changes), 0), "
                      "coalesce((SELECT min(seq) FROM job_changes), 1)").fetchone()
        last, first = int(row[0]), int(row[1])
        if since is None or since > last or since < first - 1:
            return last, None
        return last, [r[0] for r in self._x(
            "SELECT DISTINCT job_id FROM job_changes WHERE seq > ?", (since,))]

    def task_exists(self, task_id: int) -> bool:
        return self._x("SELECT 1 FROM tasks WHERE task_id=?", (task_id,)).fetchone() is not None

    def array_task_ids(self, job_id: int, index: "int | None" = None) -> list[tuple[int, int]]:
        """(task id, index) of the tasks of array ``job_id`` that have rows (only
        index ``index`` when given)."""
        if index is not None:
            sql, args = ("SELECT task_id, array_index FROM tasks WHERE job_id=? "
                         "AND array_index=?", (job_id, index))
        else:
            sql, args = ("SELECT task_id, array_index FROM tasks WHERE job_id=? "
                         "AND array_index IS NOT NULL", (job_id,))
        return [tuple(r) for r in self._x(sql, args)]  # type: ignore[misc]

    def keep_acct_lines(self, limit: int = 20_000) -> int:
        """Give up to ``limit`` finished tasks their lines in sacct's default format
        (written by SQLite from each row: :mod:`fleetslurm.acct`), so plain
        ``sacct`` reads one string a job. The controller calls this now and then;
        a task without them is rendered when asked. Returns how many were written."""
        from .acct import CACHED

        return self._x(
            f"UPDATE tasks AS t SET acct_lines = (SELECT {CACHED} FROM jobs j "
            f"WHERE j.job_id = t.job_id) WHERE t.task_id IN (SELECT task_id FROM tasks "
            # the partial index holds only the tasks still to do; left to itself
            # SQLite walks tasks_state instead, every finished task each second
            f"INDEXED BY tasks_acct_todo WHERE acct_lines IS NULL AND array_pending IS NULL "
            f"AND state IN {FINAL_SQL} "
            f"LIMIT ?)", (limit,)).rowcount

    def _acct_query(self, select: str, line_sql: str, where: list[str], params: list,
                    users: list[str], names: list[str], partitions: list[str], now: float,
                    cluster: str) -> tuple[str, dict]:
        from .acct import ELAPSED, needs_job_join

        inner = " AND ".join([*where, "array_pending IS NULL"])
        outer: list[str] = []
        args: dict = {}
        for key, values, column in (("u", users, None), ("n", names, "t.name"),
                                    ("p", partitions, "t.partition")):
            if not values:
                continue
            marks = ",".join(f":{key}{i}" for i in range(len(values)))
            args.update({f"{key}{i}": v for i, v in enumerate(values)})
            outer.append(f"(j.user IN ({marks}) OR CAST(j.uid AS TEXT) IN ({marks}))"
                         if column is None else f"{column} IN ({marks})")
        numbered = iter(range(len(params)))
        inner = "".join(f":w{next(numbered)}" if c == "?" else c for c in inner)
        args.update({f"w{i}": v for i, v in enumerate(params)}, now=now, cluster=cluster)
        join = "JOIN jobs j ON j.job_id = t.job_id" if outer or needs_job_join(line_sql) else ""
        rows = (f"SELECT t.task_id AS id, {line_sql} AS line FROM (SELECT *, {ELAPSED} AS el "
                f"FROM tasks t WHERE {inner}) AS t {join} "
                f"{'WHERE ' + ' AND '.join(outer) if outer else ''} ORDER BY t.task_id")
        return select.format(rows=rows), args

    def acct_lines(self, line_sql: str, where: list[str], params: list,
                   **filters: Any) -> list[tuple[int, str]]:
        """(task id, its sacct lines) for the tasks ``where`` selects (array
        records left out), rendered by ``line_sql`` (:func:`fleetslurm.acct.plan`).
        ``filters``: users, names, partitions, now, cluster."""
        sql, args = self._acct_query("{rows}", line_sql, where, params, **filters)
        return self._x(sql, args).fetchall()

    def acct_text(self, line_sql: str, where: list[str], params: list, **filters: Any) -> str:
        """The same lines as :meth:`acct_lines`, as one text (each line ends with a
        newline): SQLite joins them, so 100,000 jobs cost Python one string."""
        # rows reach the aggregate in the subquery's order (SQLite's behaviour;
        # the tests compare the bytes with the record-by-record path)
        sql, args = self._acct_query("SELECT group_concat(line || char(10), '') FROM ({rows})",
                                     line_sql, where, params, **filters)
        return self._x(sql, args).fetchone()[0] or ""

    def steps_by_task(self, task_ids: list[int]) -> tuple[dict[int, dict], dict[int, list[dict]]]:
        """The steps of each task in one query, however many tasks: its latest
        batch-step run, and its srun steps (``N.0``, ``N.1``... of all its runs;
        views.job_record keeps those of the current run)."""
        if not task_ids:
            return {}, {}
        wanted = set(task_ids)
        batch: dict[int, dict] = {}
        sruns: dict[int, list[dict]] = {}
        rows = self._x("SELECT * FROM steps WHERE task_id BETWEEN ? AND ? "
                       "ORDER BY task_id, start_time", (min(wanted), max(wanted)))
        for row in rows:
            task_id = row["task_id"]
            if task_id not in wanted:
                continue
            if row["step"] == "batch":
                batch[task_id] = dict(row)  # the last one wins
            else:
                sruns.setdefault(task_id, []).append(dict(row))
        return batch, sruns

    def tasks_with_srun_steps(self) -> list[int]:
        """Ids of the tasks that have srun steps (sacct renders them record by record)."""
        return [r[0] for r in self._x("SELECT DISTINCT task_id FROM steps WHERE step != 'batch'")]

"""The state store: SQLite in WAL mode. This module owns all SQL.

Tables:
- ``jobs``: one row per submission (the spec as JSON, the script).
- ``tasks``: each runnable unit — a plain job, or one task of an array — with
  its state, allocation and result; this is what squeue and sacct show. A
  job array is one row too (task id = the array's job id) whose
  ``array_pending`` lists the indices that have no task yet (``0-99999``);
  tasks get their own rows (and ids) as they are handed to the scheduler,
  and the last one takes over the array's row, as in SLURM.
- ``steps``: one row per run of a task's batch step (``N.batch``), keyed by the
  run key the node agent knows (``<task id>.<restart count>``), with usage; and
  one per ``srun`` step of a run (``N.0``, ``N.1``...), keyed
  ``<run key>.<step id>``.
- ``nodes``: administrative state of each machine (DRAIN, DOWN reasons) and the
  facts its agent last reported.
- ``accounting``: an append-only log of every state change, for audits
  ("did this job start twice?") and ``fleetslurm explain``.

Schema changes are migrations keyed by ``PRAGMA user_version``. Callers group
changes in ``transaction()``; every change is committed before the controller
acts on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from .errors import StoreError
from .store_bulk import JOB_CHANGES_SQL, TASK_REVS, BulkQueries
from .store_samples import SampleStore
from .store_stats import StatsQueries

__all__ = ["Store"]

_MIGRATIONS: list[str] = [
    # 1: initial schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE jobs (
        job_id      INTEGER PRIMARY KEY,
        uid         INTEGER NOT NULL,
        user        TEXT NOT NULL,
        submit_time REAL NOT NULL,
        array_spec  TEXT,
        spec        TEXT NOT NULL,
        script      TEXT NOT NULL
    );
    CREATE TABLE tasks (
        task_id       INTEGER PRIMARY KEY,
        job_id        INTEGER NOT NULL REFERENCES jobs(job_id),
        array_index   INTEGER,
        state         TEXT NOT NULL,
        reason        TEXT NOT NULL DEFAULT 'None',
        req           TEXT NOT NULL,
        held          INTEGER NOT NULL DEFAULT 0,
        submit_time   REAL NOT NULL,
        eligible_time REAL,
        start_time    REAL,
        end_time      REAL,
        node          TEXT,
        gpu_ids       TEXT,
        alloc_cpus    INTEGER,
        alloc_mem_mb  INTEGER,
        run_key       TEXT,
        restart_count INTEGER NOT NULL DEFAULT 0,
        exit_code     INTEGER,
        exit_signal   INTEGER,
        cancelled_by  INTEGER,
        stdout        TEXT,
        stderr        TEXT,
        collected     INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tasks_state ON tasks(state);
    CREATE INDEX tasks_job ON tasks(job_id);
    CREATE TABLE steps (
        run_key     TEXT PRIMARY KEY,
        task_id     INTEGER NOT NULL REFERENCES tasks(task_id),
        step        TEXT NOT NULL DEFAULT 'batch',
        node        TEXT NOT NULL,
        state       TEXT NOT NULL,
        start_time  REAL,
        end_time    REAL,
        exit_code   INTEGER,
        exit_signal INTEGER,
        user_cpu    REAL,
        system_cpu  REAL,
        max_rss_kb  INTEGER,
        pid         INTEGER,
        error       TEXT
    );
    CREATE INDEX steps_task ON steps(task_id);
    CREATE TABLE nodes (
        name        TEXT PRIMARY KEY,
        admin_state TEXT NOT NULL DEFAULT 'resume',
        reason      TEXT NOT NULL DEFAULT '',
        reason_time REAL,
        facts       TEXT,
        last_seen   REAL
    );
    CREATE TABLE accounting (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id INTEGER NOT NULL,
        time    REAL NOT NULL,
        event   TEXT NOT NULL,
        detail  TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX accounting_task ON accounting(task_id);
    INSERT INTO meta(key, value) VALUES ('next_job_id', '1');
    """,
    # 2: a job array is one record (its tasks are created as they start): the
    # array's own row keeps the indices not started yet in array_pending;
    # dep_shown is the dependency as squeue shows it (afterok:7_*(failed));
    # sacct reads end times through an index, names, partitions and accounts
    # from columns (not from the JSON request, in its fast path), and a
    # finished task's lines in sacct's default format from acct_lines
    """
    ALTER TABLE tasks ADD COLUMN array_pending TEXT;
    ALTER TABLE tasks ADD COLUMN dep_shown TEXT;
    ALTER TABLE tasks ADD COLUMN name TEXT;
    ALTER TABLE tasks ADD COLUMN partition TEXT;
    ALTER TABLE jobs ADD COLUMN account TEXT;
    ALTER TABLE tasks ADD COLUMN acct_lines TEXT;
    UPDATE tasks SET name = json_extract(req, '$.name'), partition = json_extract(req, '$.partition');
    UPDATE jobs SET account = json_extract(spec, '$.account');
    CREATE INDEX tasks_job_index ON tasks(job_id, array_index);
    CREATE INDEX tasks_end ON tasks(end_time);
    CREATE INDEX tasks_acct_todo ON tasks(task_id) WHERE acct_lines IS NULL
        AND array_pending IS NULL AND state IN %(final)s;
    """ % {"final": "('COMPLETED','CANCELLED','FAILED','TIMEOUT','NODE_FAIL','PREEMPTED',"
                    "'BOOT_FAIL','DEADLINE','OUT_OF_MEMORY')"},
    # 3: srun job steps (N.0, N.1, ...) share the steps table with the batch
    # step: keyed "<run key>.<step id>", ``step`` holds the id
    """
    ALTER TABLE steps ADD COLUMN name TEXT;
    ALTER TABLE steps ADD COLUMN ntasks INTEGER;
    ALTER TABLE steps ADD COLUMN cpus INTEGER;
    """,
    # 4: sacct's array records (a pending or cancelled remainder A_[...]) are
    # few among many finished tasks: found through an index, not a scan
    """
    CREATE INDEX tasks_array_records ON tasks(task_id) WHERE array_pending IS NOT NULL;
    """,
    # 5: a job's spec changes only by scontrol update; rev counts those changes,
    # so a reader that kept a decoded spec knows it still holds without reading it
    """
    ALTER TABLE jobs ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
    """,
    # 6: one counter of every change to a job or task row, kept by triggers (no
    # write path can forget it) and read in the same snapshot as the rows: a
    # reader that kept what it made of them knows at once whether it still holds
    """
    CREATE TABLE changes (id INTEGER PRIMARY KEY CHECK (id = 0), n INTEGER NOT NULL);
    INSERT INTO changes VALUES (0, 0);
    CREATE TRIGGER tasks_inserted AFTER INSERT ON tasks BEGIN UPDATE changes SET n = n + 1; END;
    CREATE TRIGGER tasks_updated AFTER UPDATE ON tasks BEGIN UPDATE changes SET n = n + 1; END;
    CREATE TRIGGER tasks_deleted AFTER DELETE ON tasks BEGIN UPDATE changes SET n = n + 1; END;
    CREATE TRIGGER jobs_inserted AFTER INSERT ON jobs BEGIN UPDATE changes SET n = n + 1; END;
    CREATE TRIGGER jobs_updated AFTER UPDATE ON jobs BEGIN UPDATE changes SET n = n + 1; END;
    CREATE TRIGGER jobs_deleted AFTER DELETE ON jobs BEGIN UPDATE changes SET n = n + 1; END;
    """,
    # 7: fair share's usage per association (RawUsage): decayed billing-seconds
    # as of a time, so a restart keeps it (slurmdbd's assoc usage)
    """
    CREATE TABLE usage (
        account TEXT NOT NULL,
        user    TEXT NOT NULL,
        raw     REAL NOT NULL,
        as_of   REAL NOT NULL,
        PRIMARY KEY (account, user)
    );
    """,
    # 8: the token of each submission that sent one: a submission resent after
    # its connection was lost (the controller killed before it answered) gets
    # the job it already made, not a second one
    """
    CREATE TABLE submit_tokens (
        token  TEXT NOT NULL,
        uid    INTEGER NOT NULL,
        job_id INTEGER NOT NULL REFERENCES jobs(job_id),
        PRIMARY KEY (uid, token)
    );
    """,
    # 9: what a run was given (its task row forgets it at a requeue): a run
    # given up for lost that turns out to be the job's result gets it back
    """
    ALTER TABLE steps ADD COLUMN alloc_cpus INTEGER;
    ALTER TABLE steps ADD COLUMN alloc_mem_mb INTEGER;
    ALTER TABLE steps ADD COLUMN gpu_ids TEXT;
    """,
    # 10: QOS changed by sacctmgr (add/modify: its whole record as JSON;
    # delete: NULL); the config's qos section is the set before any change
    """
    CREATE TABLE qos (name TEXT PRIMARY KEY, spec TEXT);
    """,
    # 11: a run's GPU load, from the heartbeats' nvidia-smi readings of its GPUs
    # (each reading summed over them): how many readings, their sums and
    # peaks, so sacct's TRESUsageInAve/Max (gres/gpuutil, gres/gpumem) need
    # no sample table
    """
    ALTER TABLE steps ADD COLUMN gpu_samples INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE steps ADD COLUMN gpu_util_sum REAL NOT NULL DEFAULT 0;
    ALTER TABLE steps ADD COLUMN gpu_util_max INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE steps ADD COLUMN gpu_mem_sum_mb REAL NOT NULL DEFAULT 0;
    ALTER TABLE steps ADD COLUMN gpu_mem_max_mb INTEGER NOT NULL DEFAULT 0;
    """,
    # 12: resource samples of each run over time (the supervisor's, bounded:
    # store_samples.MAX_POINTS while running, KEPT_POINTS after), their peaks
    # (thinning never loses them), spacing and an srun step's latest per-task
    # figures (JSON: rank -> [cpu_s, rss_kb, vsize_kb, max_rss_kb,
    # max_vsize_kb]), and each machine's load, one point a
    # minute for a day (the dashboard's sparkline)
    """
    CREATE TABLE run_samples (
        run_key  TEXT NOT NULL,
        t        REAL NOT NULL,
        cpu_s    REAL NOT NULL,
        rss_kb   INTEGER NOT NULL,
        vsize_kb INTEGER NOT NULL,
        nproc    INTEGER NOT NULL,
        PRIMARY KEY (run_key, t)
    ) WITHOUT ROWID;
    CREATE TABLE run_series (
        run_key      TEXT PRIMARY KEY,
        max_rss_kb   INTEGER NOT NULL DEFAULT 0,
        max_vsize_kb INTEGER NOT NULL DEFAULT 0,
        step         REAL NOT NULL DEFAULT 0,
        tasks        TEXT
    );
    CREATE TABLE node_load (
        node        TEXT NOT NULL,
        t           REAL NOT NULL,
        load1       REAL,
        free_mem_mb INTEGER,
        PRIMARY KEY (node, t)
    ) WITHOUT ROWID;
    """,
    # 13: a job suspended by its workstation's policy (state SUSPENDED): since
    # when, and how long it was suspended before (its time limit's clock
    # stands still meanwhile; squeue's TIME leaves it out)
    """
    ALTER TABLE tasks ADD COLUMN suspend_time REAL;
    ALTER TABLE tasks ADD COLUMN suspended_s REAL NOT NULL DEFAULT 0;
    """,
    # 14: associations changed by sacctmgr: (account, "") an account, (account,
    # user) a user's association in it, ("", user) the user's own record
    # (DefaultAccount); spec is the whole record as JSON, NULL once deleted
    """
    CREATE TABLE assocs (account TEXT NOT NULL, user TEXT NOT NULL, spec TEXT,
                         PRIMARY KEY (account, user));
    """,
    # 15: each task row's rev (store_bulk.TASK_REVS: squeue reads only what changed)
    TASK_REVS,
    # 16: which jobs each change touched (store_bulk.JOB_CHANGES_SQL)
    JOB_CHANGES_SQL,
]

_TASK_COLUMNS = (
    "task_id job_id array_index state reason req held submit_time eligible_time "
    "start_time end_time node gpu_ids alloc_cpus alloc_mem_mb run_key restart_count "
    "exit_code exit_signal cancelled_by stdout stderr collected array_pending dep_shown name "
    "partition acct_lines suspend_time suspended_s"
).split()
_TASK_COLUMN_SET = frozenset(_TASK_COLUMNS)


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of ``script``, one at a time (a trigger's body has
    semicolons of its own: a piece ends a statement only when SQLite says so)."""
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n;"):
                yield buffer
            buffer = ""


class Store(BulkQueries, StatsQueries, SampleStore):
    """All reads and writes of the state database.

    ``path=":memory:"`` gives a private in-memory store (tests).
    """

    def __init__(self, path: "Path | str", cache_jobs: bool = False) -> None:
        self.path = str(path)
        # jobs rows are written once (only scontrol's Comment changes them), so
        # the controller keeps parsed specs; query threads read fresh
        self._jobs: Optional[dict[int, dict]] = {} if cache_jobs else None
        try:
            self._private_file()
            self._db = self._connect()
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the state database {self.path}: {exc}; "
                             "check the permissions of FLEETSLURM_HOME") from exc
        self._depth = 0
        #: bumped by every set_node (also one rolled back: a harmless extra read)
        self.nodes_changed = 0

    # -- connection --------------------------------------------------------
    def _private_file(self) -> None:
        """The database (and so its -wal and -shm, which SQLite creates with the
        database's mode) readable by its owner only: it holds every job's
        environment and script.

        Never by opening the existing file: closing any descriptor of a file
        drops every POSIX lock this process holds on it, and SQLite's locks
        are POSIX locks. The controller opens a Store per RPC thread while its
        loop holds a write transaction: an open and close here released the
        loop's lock (and ended readers' snapshots) under SQLite's feet."""
        if self.path == ":memory:" or self.path.startswith("file:"):
            return
        try:
            # a new file only: nobody in this process can hold a lock on it yet
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o600))
            return
        except OSError:
            pass  # it exists (or cannot be made: sqlite says why)
        try:
            st = os.lstat(self.path)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077:
                os.chmod(self.path, 0o600)
        except OSError:
            pass

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                             timeout=30)
        db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives process crashes (kill -9); only an OS
            # crash can lose the last commits.
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=30000")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(_MIGRATIONS):
            raise StoreError(
                f"the state database {self.path} was written by a newer fleetslurm "
                f"(schema {version}, this one knows {len(_MIGRATIONS)}); upgrade fleetslurm")
        for number in range(version, len(_MIGRATIONS)):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for stmt in _statements(_MIGRATIONS[number]):
                    self._db.execute(stmt)
                self._db.execute(f"PRAGMA user_version={number + 1}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator["Store"]:
        """One consistent view for a series of reads (a WAL read transaction:
        writers are not blocked). A query that reads an array's record and then
        its task rows must not see the controller's change between the two."""
        if self._depth or self.path == ":memory:":
            yield self
            return
        self._db.execute("BEGIN DEFERRED")
        self._depth = 1
        try:
            yield self
        finally:
            self._depth = 0
            # nothing written: this only ends the snapshot. SQLite may have
            # ended it already (an error that rolls back): then the COMMIT
            # would fail and hide that error
            if self._db.in_transaction:
                self._db.execute("COMMIT")

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Store"]:
        """Group changes; commit on success, roll back on error. Re-entrant."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            self._db.execute("ROLLBACK")
            self.forget_cached()
            raise
        self._depth = 0
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot commit to {self.path}: {exc}") from exc

    def changes(self) -> int:
        """How many times a job or task row was written, ever (migration 6's
        triggers): read in a snapshot, it dates what that snapshot shows."""
        return int(self._x("SELECT n FROM changes").fetchone()[0])

    def _x(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args if isinstance(args, dict) else tuple(args))
        except sqlite3.Error as exc:
            raise StoreError(f"state database error: {exc}") from exc

    # -- ids -------------------------------------------------------------
    def allocate_ids(self, count: int) -> int:
        """Reserve ``count`` consecutive job ids; returns the first."""
        with self.transaction():
            first = int(self._x("SELECT value FROM meta WHERE key='next_job_id'").fetchone()[0])
            self._x("UPDATE meta SET value=? WHERE key='next_job_id'", (str(first + count),))
        return first

    # -- identity ----------------------------------------------------------
    def identity(self) -> tuple[str, bool]:
        """This fleet's cluster id, made at its first start and kept for good,
        and whether its machines' default workdir is one of its own
        (``~/.fleetslurm-node/<id>``): not for a store that already had jobs
        when the id was made (their runs live in the shared directory)."""
        with self.transaction():
            row = self._x("SELECT value FROM meta WHERE key='cluster_id'").fetchone()
            if row is None:
                import secrets

                had_jobs = self._x("SELECT 1 FROM tasks LIMIT 1").fetchone() is not None
                self._x("INSERT INTO meta(key, value) VALUES ('cluster_id', ?), "
                        "('workdir_layout', ?)",
                        (secrets.token_hex(4), "shared" if had_jobs else "own"))
            cid = self._x("SELECT value FROM meta WHERE key='cluster_id'").fetchone()[0]
            layout = self._x("SELECT value FROM meta WHERE key='workdir_layout'").fetchone()
        return str(cid), layout is None or layout[0] == "own"

    # -- jobs and tasks ---------------------------------------------------
    def add_job(self, job_id: int, uid: int, user: str, submit_time: float, spec: dict,
                script: str, array_spec: Optional[str]) -> None:
        self._x("INSERT INTO jobs(job_id, uid, user, submit_time, array_spec, spec, script, "
                "account) VALUES (?,?,?,?,?,?,?,?)",
                (job_id, uid, user, submit_time, array_spec, json.dumps(spec), script,
                 spec.get("account") or ""))

    def job_of_token(self, uid: int, token: str) -> Optional[int]:
        """The job a submission of ``uid`` with this token made, if any."""
        row = self._x("SELECT job_id FROM submit_tokens WHERE uid=? AND token=?",
                      (uid, token)).fetchone()
        return None if row is None else int(row[0])

    def add_token(self, uid: int, token: str, job_id: int) -> None:
        self._x("INSERT INTO submit_tokens(token, uid, job_id) VALUES (?,?,?)",
                (token, uid, job_id))

    def add_task(self, task_id: int, job_id: int, array_index: Optional[int], req: dict,
                 submit_time: float, held: bool, state: str = "PENDING",
                 reason: str = "None", array_pending: Optional[str] = None,
                 logged_at: Optional[float] = None) -> None:
        """A new task row; ``array_pending`` makes it an array's own record
        (the indices not started yet). Logged as ``submit`` at ``logged_at``
        (default: the submit time)."""
        self._x("INSERT INTO tasks(task_id, job_id, array_index, state, reason, req, held, "
                "submit_time, array_pending, name, partition) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (task_id, job_id, array_index, state, reason, json.dumps(req), int(held),
                 submit_time, array_pending, req.get("name"), req.get("partition")))
        self.log(task_id, submit_time if logged_at is None else logged_at, "submit", state)

    def job(self, job_id: int) -> Optional[dict]:
        if self._jobs is not None and job_id in self._jobs:
            return self._jobs[job_id]
        row = self._x("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        if row is None:
            return None
        d = dict(row)
        d["spec"] = json.loads(d["spec"])
        if self._jobs is not None:
            if len(self._jobs) > 4096:
                self._jobs.clear()
            self._jobs[job_id] = d
        return d

    def set_job_spec(self, job_id: int, spec: dict) -> None:
        self._x("UPDATE jobs SET spec=?, rev=rev+1 WHERE job_id=?", (json.dumps(spec), job_id))
        self.forget_cached()

    def forget_cached(self) -> None:
        """Drop cached job rows (after a rollback or an update)."""
        if self._jobs is not None:
            self._jobs.clear()

    def task(self, task_id: int) -> Optional[dict]:
        row = self._x("SELECT * FROM tasks WHERE task_id=?", (task_id,)).fetchone()
        return None if row is None else decode_task(row)

    def tasks(self, where: str = "", args: Iterable[Any] = ()) -> list[dict]:
        return [decode_task(r) for r in self.task_rows(where, args)]

    def count_tasks(self, where: str, args: Iterable[Any] = ()) -> int:
        """How many task rows match ``where`` (nothing decoded)."""
        return int(self._x(f"SELECT COUNT(*) FROM tasks WHERE {where}", args).fetchone()[0])

    def task_rows(self, where: str = "", args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """The rows :meth:`tasks` decodes, as SQLite gives them."""
        sql = "SELECT * FROM tasks" + (f" WHERE {where}" if where else "") + " ORDER BY task_id"
        return self._x(sql, args).fetchall()

    def active_tasks(self) -> list[dict]:
        return self.tasks("state IN ('PENDING','RUNNING','COMPLETING','REQUEUED','SUSPENDED')")

    def tasks_of_job(self, job_id: int) -> list[dict]:
        return self.tasks("job_id=?", (job_id,))

    def array_task(self, job_id: int, index: int) -> Optional[dict]:
        """The task row of index ``index`` of array ``job_id``, if it has one."""
        row = self._x("SELECT * FROM tasks WHERE job_id=? AND array_index=? "
                      "ORDER BY task_id LIMIT 1", (job_id, index)).fetchone()
        return None if row is None else decode_task(row)

    def array_outcomes(self, job_id: int) -> tuple[int, int]:
        """(tasks ended COMPLETED, tasks ended otherwise) of array ``job_id``,
        the cancelled remainder of its own row counted index by index."""
        ok = bad = 0
        for state, pending, n in self._x(
                "SELECT state, array_pending, COUNT(*) FROM tasks WHERE job_id=? "
                "AND state NOT IN ('PENDING','RUNNING','COMPLETING','REQUEUED','SUSPENDED') "
                "GROUP BY state, array_pending", (job_id,)):
            if pending is not None:
                from .slurm.arrays import IndexSet

                bad += len(IndexSet.from_text(pending))
            elif state == "COMPLETED":
                ok += n
            else:
                bad += n
        return ok, bad

    def update_task(self, task_id: int, **fields: Any) -> None:
        bad = fields.keys() - _TASK_COLUMN_SET
        assert not bad, bad
        if "req" in fields:
            # name and partition are columns too (sacct reads them without the JSON)
            fields["name"], fields["partition"] = fields["req"].get("name"), \
                fields["req"].get("partition")
            fields["req"] = json.dumps(fields["req"])
        if "gpu_ids" in fields and fields["gpu_ids"] is not None:
            fields["gpu_ids"] = json.dumps(list(fields["gpu_ids"]))
        fields["acct_lines"] = None  # written again by keep_acct_lines once final
        sets = ", ".join(f"{k}=?" for k in fields)
        self._x(f"UPDATE tasks SET {sets} WHERE task_id=?", (*fields.values(), task_id))

    def live_tasks_on(self, node: str) -> list[dict]:
        """Tasks holding resources on a machine (running, suspended, or finishing)."""
        return self.tasks("node=? AND state IN ('RUNNING','COMPLETING','SUSPENDED')", (node,))

    # -- steps ------------------------------------------------------------
    def add_step(self, run_key: str, task_id: int, node: str, start_time: float,
                 alloc_cpus: Optional[int] = None, alloc_mem_mb: Optional[int] = None,
                 gpu_ids: Optional[list] = None) -> None:
        """A run starts (``alloc_*``/``gpu_ids``: what a batch run was given)."""
        self._x("INSERT OR REPLACE INTO steps(run_key, task_id, node, state, start_time, "
                "alloc_cpus, alloc_mem_mb, gpu_ids) VALUES (?,?,?,?,?,?,?,?)",
                (run_key, task_id, node, "RUNNING", start_time, alloc_cpus, alloc_mem_mb,
                 None if gpu_ids is None else json.dumps(list(gpu_ids))))

    def update_step(self, run_key: str, **fields: Any) -> None:
        sets = ", ".join(f"{k}=?" for k in fields)
        self._x(f"UPDATE steps SET {sets} WHERE run_key=?", (*fields.values(), run_key))

    def add_gpu_sample(self, run_key: str, util: int, mem_mb: int) -> None:
        """One GPU reading of a run: ``util`` percent and ``mem_mb`` used,
        each summed over the run's GPUs."""
        self._x("UPDATE steps SET gpu_samples = gpu_samples + 1, "
                "gpu_util_sum = gpu_util_sum + ?, gpu_util_max = max(gpu_util_max, ?), "
                "gpu_mem_sum_mb = gpu_mem_sum_mb + ?, gpu_mem_max_mb = max(gpu_mem_max_mb, ?) "
                "WHERE run_key=?", (util, util, mem_mb, mem_mb, run_key))

    def step(self, run_key: str) -> Optional[dict]:
        row = self._x("SELECT * FROM steps WHERE run_key=?", (run_key,)).fetchone()
        return None if row is None else dict(row)

    def unwanted_runs(self, node: str, since: float, limit: int = 500) -> list[str]:
        """Run keys given up for lost on ``node`` (NODE_FAIL since ``since``)
        whose task has moved on: if still alive there, they must be stopped."""
        return [r[0] for r in self._x(
            "SELECT s.run_key FROM steps s JOIN tasks t ON t.task_id = s.task_id "
            "WHERE s.node=? AND s.step='batch' AND s.state='NODE_FAIL' AND s.end_time>? "
            "AND (t.run_key IS NULL OR t.run_key != s.run_key) "
            "ORDER BY s.end_time DESC LIMIT ?", (node, since, limit))]

    def add_srun_step(self, run_key: str, task_id: int, node: str, start_time: float,
                      name: str, ntasks: int, cpus: int) -> int:
        """Record a new srun step of the run ``run_key``; returns its step id
        (0, 1, ... within the run)."""
        rows = self._x("SELECT step FROM steps WHERE task_id=? AND run_key LIKE ? ESCAPE '!'",
                       (task_id, run_key.replace("!", "!!").replace("%", "!%")
                        .replace("_", "!_") + ".%")).fetchall()
        step_id = max((int(r[0]) for r in rows if str(r[0]).isdigit()), default=-1) + 1
        self._x("INSERT INTO steps(run_key, task_id, step, node, state, start_time, name, "
                "ntasks, cpus) VALUES (?,?,?,?,?,?,?,?,?)",
                (f"{run_key}.{step_id}", task_id, str(step_id), node, "RUNNING", start_time,
                 name, ntasks, cpus))
        return step_id

    def steps_of(self, task_id: int) -> list[dict]:
        return [dict(r) for r in self._x(
            "SELECT * FROM steps WHERE task_id=? ORDER BY start_time", (task_id,))]

    # -- QOS changed by sacctmgr -------------------------------------------------
    def qos_changes(self) -> dict[str, Optional[dict]]:
        """QOS name -> its record as sacctmgr last set it, or None if deleted."""
        rows = self._x("SELECT name, spec FROM qos").fetchall()
        return {r["name"]: None if r["spec"] is None else json.loads(r["spec"]) for r in rows}

    def set_qos(self, name: str, spec: Optional[dict]) -> None:
        self._x("INSERT INTO qos (name, spec) VALUES (?, ?) ON CONFLICT (name) "
                "DO UPDATE SET spec = excluded.spec",
                (name, None if spec is None else json.dumps(spec, sort_keys=True)))

    # -- associations changed by sacctmgr ---------------------------------------
    def assoc_changes(self) -> dict[tuple[str, str], Optional[dict]]:
        """(account, user) -> the record as sacctmgr last set it, or None if deleted."""
        rows = self._x("SELECT account, user, spec FROM assocs").fetchall()
        return {(r["account"], r["user"]): None if r["spec"] is None else json.loads(r["spec"])
                for r in rows}

    def set_assoc(self, account: str, user: str, spec: Optional[dict]) -> None:
        self._x("INSERT INTO assocs (account, user, spec) VALUES (?, ?, ?) "
                "ON CONFLICT (account, user) DO UPDATE SET spec = excluded.spec",
                (account, user, None if spec is None else json.dumps(spec, sort_keys=True)))

    def job_users(self) -> list[str]:
        """Every user who ever submitted a job here."""
        return [r[0] for r in self._x("SELECT DISTINCT user FROM jobs").fetchall()]

    # -- nodes --------------------------------------------------------------
    # -- fair share usage ------------------------------------------------------
    def usage(self) -> dict[tuple[str, str], tuple[float, float]]:
        """(account, user) -> (raw usage, the time it was decayed to)."""
        rows = self._x("SELECT account, user, raw, as_of FROM usage").fetchall()
        return {(r["account"], r["user"]): (r["raw"], r["as_of"]) for r in rows}

    def set_usage(self, account: str, user: str, raw: float, as_of: float) -> None:
        self._x("INSERT INTO usage (account, user, raw, as_of) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (account, user) DO UPDATE SET raw = excluded.raw, as_of = excluded.as_of",
                (account, user, raw, as_of))

    def node(self, name: str) -> dict:
        row = self._x("SELECT * FROM nodes WHERE name=?", (name,)).fetchone()
        if row is None:
            return {"name": name, "admin_state": "resume", "reason": "", "reason_time": None,
                    "facts": None, "last_seen": None}
        d = dict(row)
        d["facts"] = json.loads(d["facts"]) if d["facts"] else None
        return d

    def set_node(self, name: str, **fields: Any) -> None:
        self.nodes_changed += 1  # the controller re-reads node rows only after a change
        if "facts" in fields and fields["facts"] is not None:
            fields["facts"] = json.dumps(fields["facts"])
        self._x("INSERT OR IGNORE INTO nodes(name) VALUES (?)", (name,))
        sets = ", ".join(f"{k}=?" for k in fields)
        self._x(f"UPDATE nodes SET {sets} WHERE name=?", (*fields.values(), name))

    # -- accounting log -------------------------------------------------------
    def log(self, task_id: int, time: float, event: str, detail: str = "") -> None:
        self._x("INSERT INTO accounting(task_id, time, event, detail) VALUES (?,?,?,?)",
                (task_id, time, event, detail))

    def history(self, task_id: int) -> list[dict]:
        return [dict(r) for r in self._x(
            "SELECT time, event, detail FROM accounting WHERE task_id=? ORDER BY id", (task_id,))]

    def count_events(self, task_id: int, event: str) -> int:
        return self._x("SELECT COUNT(*) FROM accounting WHERE task_id=? AND event=?",
                       (task_id, event)).fetchone()[0]


def decode_task(row: sqlite3.Row) -> dict:
    """A task row as a dict, its JSON columns decoded."""
    d = dict(row)
    d.pop("rev", None)  # (the store's bookkeeping: store_bulk.TASK_REVS)
    d["req"] = json.loads(d["req"])
    d["gpu_ids"] = json.loads(d["gpu_ids"]) if d["gpu_ids"] else []
    d["held"] = bool(d["held"])
    return d

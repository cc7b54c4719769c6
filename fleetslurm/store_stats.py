"""The store's aggregates for the dashboard (History page, /metrics): each
one SQL statement grouped by SQLite, so a long history costs no Python loop
per job (part of :class:`fleetslurm.store.Store`, which owns all SQL; kept
apart to keep that module small). Read-only; the query threads run it
inside their snapshot."""

from __future__ import annotations

from typing import Any

__all__ = ["StatsQueries", "WAIT_BUCKETS"]

_ACTIVE = "('PENDING','RUNNING','COMPLETING','REQUEUED','SUSPENDED')"

#: wait time (start - submit) buckets: upper bound in seconds, label
WAIT_BUCKETS = ((10, "<10s"), (60, "10s-1m"), (600, "1-10m"), (3600, "10m-1h"),
                (86400, "1h-1d"), (None, ">1d"))


def _wait_case() -> str:
    parts = [f"WHEN start_time - submit_time < {limit} THEN '{label}'"
             for limit, label in WAIT_BUCKETS if limit is not None]
    return "CASE " + " ".join(parts) + f" ELSE '{WAIT_BUCKETS[-1][1]}' END"


class StatsQueries:
    """Mixed into :class:`~fleetslurm.store.Store` (which provides ``_x``)."""

    def _x(self, sql: str, args: Any = ()) -> Any:  # pragma: no cover - Store's
        raise NotImplementedError

    def dashboard_stats(self, hours: float, now: float) -> dict:
        """Plain lists for JSON over the last ``hours`` (1 h to 31 days):
        started/ended per hour (hour start epoch, count), the wait-time
        buckets, CPU-hours per user and per machine within the window (running
        jobs up to ``now``), and active jobs by state and partition."""
        return _stats(self._x, hours, now)


def _stats(x: Any, hours: float, now: float) -> dict:
    hours = max(1.0, min(hours, 24 * 31))
    since = now - hours * 3600

    def per_hour(column: str) -> list:
        return [list(r) for r in x(
            f"SELECT CAST({column} / 3600 AS INTEGER) * 3600 AS h, COUNT(*) FROM tasks "
            f"WHERE {column} >= ? GROUP BY h ORDER BY h", (since,)).fetchall()]

    # a run's CPU-seconds inside the window: its CPUs times its overlap with it
    overlap = ("(MIN(COALESCE(t.end_time, :now), :now) - MAX(t.start_time, :since))")
    cpu_where = ("t.start_time IS NOT NULL AND COALESCE(t.end_time, :now) > :since "
                 "AND t.array_pending IS NULL")
    p = {"now": now, "since": since}
    by_user = x(f"SELECT j.user, SUM(COALESCE(t.alloc_cpus, 1) * {overlap}) / 3600.0 "
                f"FROM tasks t JOIN jobs j ON j.job_id = t.job_id WHERE {cpu_where} "
                "GROUP BY j.user ORDER BY 2 DESC", p).fetchall()
    by_node = x(f"SELECT t.node, SUM(COALESCE(t.alloc_cpus, 1) * {overlap}) / 3600.0 "
                f"FROM tasks t WHERE {cpu_where} AND t.node IS NOT NULL "
                "GROUP BY t.node ORDER BY 2 DESC", p).fetchall()
    waits = dict(x(f"SELECT {_wait_case()} AS b, COUNT(*) FROM tasks "
                   "WHERE start_time IS NOT NULL AND start_time >= ? GROUP BY b",
                   (since,)).fetchall())
    active = x(f"SELECT state, COALESCE(partition, ''), COUNT(*) FROM tasks "
               f"WHERE state IN {_ACTIVE} GROUP BY state, partition").fetchall()
    return {
        "since": since, "now": now, "hours": hours,
        "started": per_hour("start_time"), "ended": per_hour("end_time"),
        "waits": [[label, int(waits.get(label, 0))] for _, label in WAIT_BUCKETS],
        "cpu_hours_user": [[u, round(v or 0.0, 4)] for u, v in by_user],
        "cpu_hours_node": [[n, round(v or 0.0, 4)] for n, v in by_node],
        "active": [list(r) for r in active],
    }

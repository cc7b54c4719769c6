"""The store's resource samples (part of :class:`fleetslurm.store.Store`,
which owns all SQL; kept apart to keep that module small): each run's
series from its supervisor (``node/agent/sampling.py``), its peaks, and each
machine's load history from the heartbeats. Every series is bounded here by
the rule the machine's supervisor follows (``node/agent/sampling.add_point``):
MAX_POINTS spread evenly over the run while it goes on, KEPT_POINTS once it
has ended."""

from __future__ import annotations

import json
from typing import Any, Iterable, Optional

from .node.agent.sampling import add_point

__all__ = ["SampleStore", "MAX_POINTS", "KEPT_POINTS", "LOAD_EVERY_S", "LOAD_KEEP_S"]

#: a running run's points at most (the supervisor keeps as many)
MAX_POINTS = 600
#: an ended run's points at most (a chart's worth: finished jobs pile up)
KEPT_POINTS = 120
#: one machine load point per this many seconds, kept this long
LOAD_EVERY_S = 60.0
LOAD_KEEP_S = 24 * 3600.0
#: points per INSERT (6 values each) or times per DELETE: within the 999
#: variables an older SQLite allows in one statement
_CHUNK = 160


class SampleStore:
    """Mixed into :class:`~fleetslurm.store.Store` (which provides ``_x``)."""

    def _x(self, sql: str, args: Any = ()) -> Any:  # pragma: no cover - Store's
        raise NotImplementedError

    def add_samples(self, run_key: str, points: Iterable[Any],
                    peak: Optional[Any] = None, tasks: Optional[dict] = None) -> int:
        """Keep a run's new points by the supervisor's rule
        (``sampling.add_point``: the last point is the live one, a point is
        kept ``step`` after the one before, over MAX_POINTS every other one
        goes and ``step`` doubles; a point seen before is kept once) and
        raise its peaks; ``tasks`` (an srun step's figures per task, the
        latest) replace the last ones. Returns how many points it now has."""
        rows = []
        for p in points:
            try:
                rows.append((float(p[0]), float(p[1]), int(p[2]), int(p[3]), int(p[4])))
            except (TypeError, ValueError, IndexError):
                continue  # a malformed point: the others still count
        try:
            rss, vsize = int(peak[0]), int(peak[1])  # type: ignore[index]
        except (TypeError, ValueError, IndexError):
            rss = vsize = 0
        rss = max([rss] + [r[2] for r in rows])
        vsize = max([vsize] + [r[3] for r in rows])
        self._x("INSERT INTO run_series(run_key, max_rss_kb, max_vsize_kb) VALUES (?,?,?) "
                "ON CONFLICT (run_key) DO UPDATE SET "
                "max_rss_kb = MAX(max_rss_kb, excluded.max_rss_kb), "
                "max_vsize_kb = MAX(max_vsize_kb, excluded.max_vsize_kb)",
                (run_key, rss, vsize))
        if isinstance(tasks, dict) and tasks:
            self._x("UPDATE run_series SET tasks=? WHERE run_key=?",
                    (json.dumps(tasks, separators=(",", ":")), run_key))
        step = self._x("SELECT step FROM run_series WHERE run_key=?", (run_key,)).fetchone()[0]
        old = [tuple(r) for r in self._x(
            "SELECT t, cpu_s, rss_kb, vsize_kb, nproc FROM run_samples WHERE run_key=? "
            "ORDER BY t", (run_key,)).fetchall()]
        # the rule runs over the series in memory and the difference is written
        # in a few statements: a reconnecting agent's backlog (up to
        # sampling.MAX_REPLY_POINTS) took five statements a point in one step
        kept: list = list(old)
        new_step = step
        for row in sorted(rows):
            if kept and row[0] <= kept[-1][0]:
                continue  # seen before (or older than the live point)
            kept, new_step = add_point(kept, new_step, row, MAX_POINTS)
        old_t = {r[0] for r in old}
        kept_t = {r[0] for r in kept}
        gone = sorted(old_t - kept_t)
        for i in range(0, len(gone), _CHUNK):
            part = gone[i:i + _CHUNK]
            self._x("DELETE FROM run_samples WHERE run_key=? AND t IN (%s)"
                    % ",".join("?" * len(part)), (run_key, *part))
        added = [r for r in kept if r[0] not in old_t]
        for i in range(0, len(added), _CHUNK):
            part = added[i:i + _CHUNK]
            self._x("INSERT INTO run_samples(run_key, t, cpu_s, rss_kb, vsize_kb, nproc) VALUES "
                    + ",".join(["(?,?,?,?,?,?)"] * len(part)),
                    [v for r in part for v in (run_key, *r)])
        if new_step != step:
            self._x("UPDATE run_series SET step=? WHERE run_key=?", (new_step, run_key))
        return len(kept)

    def thin_samples(self, run_key: str, limit: int) -> int:
        """Within ``limit`` points: every other point goes (the first and the
        last stay) and the run's spacing becomes the kept points' average,
        as often as it takes."""
        count = self._x("SELECT COUNT(*) FROM run_samples WHERE run_key=?",
                        (run_key,)).fetchone()[0]
        while count > limit:
            self._x("DELETE FROM run_samples WHERE run_key=? AND t IN ("
                    "SELECT t FROM (SELECT t, ROW_NUMBER() OVER (ORDER BY t) AS rn "
                    "FROM run_samples WHERE run_key=?) WHERE rn % 2 = 0 AND rn < ?)",
                    (run_key, run_key, count))
            count, first, last = self._x(
                "SELECT COUNT(*), MIN(t), MAX(t) FROM run_samples WHERE run_key=?",
                (run_key,)).fetchone()
            self._x("UPDATE run_series SET step=? WHERE run_key=?",
                    ((last - first) / max(1, count - 1), run_key))
        return count

    def samples(self, run_key: str) -> dict:
        """A run's series, oldest first: ``{points: [[t, cpu_s, rss_kb,
        vsize_kb, nproc]], max_rss_kb, max_vsize_kb, tasks}``."""
        points = [list(r) for r in self._x(
            "SELECT t, cpu_s, rss_kb, vsize_kb, nproc FROM run_samples WHERE run_key=? "
            "ORDER BY t", (run_key,)).fetchall()]
        peak = self._x("SELECT max_rss_kb, max_vsize_kb, tasks FROM run_series "
                       "WHERE run_key=?", (run_key,)).fetchone()
        return {"points": points, "max_rss_kb": peak[0] if peak else None,
                "max_vsize_kb": peak[1] if peak else None,
                "tasks": json.loads(peak[2]) if peak and peak[2] else None}

    def note_load(self, node: str, now: float, load1: Any, free_mem_mb: Any) -> bool:
        """Keep a machine's load if its last point is LOAD_EVERY_S old (and
        forget points older than LOAD_KEEP_S); True when one was kept."""
        if not isinstance(load1, (int, float)) or isinstance(load1, bool):
            return False
        last = self._x("SELECT MAX(t) FROM node_load WHERE node=?", (node,)).fetchone()[0]
        if last is not None and now - last < LOAD_EVERY_S:
            return False
        free = free_mem_mb if isinstance(free_mem_mb, int) else None
        self._x("INSERT OR REPLACE INTO node_load(node, t, load1, free_mem_mb) VALUES (?,?,?,?)",
                (node, now, float(load1), free))
        self._x("DELETE FROM node_load WHERE node=? AND t < ?", (node, now - LOAD_KEEP_S))
        return True

    def load_history(self, since: float) -> dict[str, list]:
        """Each machine's ``[[t...], [load1...], [free_mem_mb...]]`` since ``since``."""
        out: dict[str, list] = {}
        for node, t, load, free in self._x(
                "SELECT node, t, load1, free_mem_mb FROM node_load WHERE t >= ? "
                "ORDER BY node, t", (since,)).fetchall():
            s = out.setdefault(node, [[], [], []])
            s[0].append(round(t))
            s[1].append(load)
            s[2].append(free)
        return out

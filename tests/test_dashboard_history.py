"""The History aggregates (the controller's dashboard_stats op: SQLite's
GROUP BYs) against what the accounting records say, job by job."""

from __future__ import annotations

import getpass


def test_history_aggregates_match_the_records(fleet) -> None:  # type: ignore[no-untyped-def]
    jobs = [fleet.sbatch("--wrap", "sleep 0.5"), fleet.sbatch("-c", "2", "--wrap", "sleep 0.5"),
            fleet.sbatch("--wrap", "true")]
    for j in jobs:
        fleet.wait(j)
    held = fleet.sbatch("--hold", "-p", "short", "--wrap", "true")
    with fleet.client() as c:
        stats = c.call("dashboard_stats", hours=24)
        recs = [c.call("jobs", ids=[str(j)])[0] for j in jobs]
    # started and ended: each job once, in the hour it started or ended
    def per_hour(key: str) -> dict:
        out: dict = {}
        for r in recs:
            h = int(r[key] // 3600) * 3600
            out[h] = out.get(h, 0) + 1
        return out

    assert dict(map(tuple, stats["started"])) == per_hour("start_time")
    assert dict(map(tuple, stats["ended"])) == per_hour("end_time")
    # CPU-hours: each job's CPUs times its run time
    want = sum(r["cpus"] * (r["end_time"] - r["start_time"]) for r in recs) / 3600
    assert stats["cpu_hours_user"] == [[getpass.getuser(), round(want, 4)]]
    assert stats["cpu_hours_node"] == [["localhost", round(want, 4)]]
    # waits: every job counted once, in one bucket
    assert sum(n for _, n in stats["waits"]) == 3
    assert stats["active"] == [["PENDING", "short", 1]]
    assert held

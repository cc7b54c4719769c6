"""squeue's records kept between calls (fleetslurm.record_memo): built again
exactly when a row they came from changed, and forgotten once their job ended."""

from __future__ import annotations

import time
from types import SimpleNamespace

from fleetslurm.queries import Queries
from fleetslurm.slurm import squeue_fmt
from fleetslurm.store import Store

SPEC = {"name": "memo", "account": "lab", "ntasks": 1, "cpus_per_task": 1, "workdir": "/tmp"}
REQ = {"name": "memo", "partition": "debug", "cpus": 1, "mem_mb": 100, "time_limit": 10}


def _queries(tmp_path, jobs: int = 3):
    store = Store(tmp_path / "state.db")
    now = time.time()
    for j in range(1, jobs + 1):
        store.add_job(j, 0, "root", now, dict(SPEC), "#!/bin/sh\ntrue\n", None)
        store.add_task(j, j, None, dict(REQ), now, held=False)
    paths = SimpleNamespace(db=tmp_path / "state.db")
    ctl = SimpleNamespace(store=store, paths=paths,
                          config=SimpleNamespace(cluster_name="c", min_job_age=300))
    return store, Queries(ctl)


def _records(q: Queries) -> dict:
    return {r["job_id"]: r for r in q.answer("jobs", {"squeue": True, "steps": False,
                                                      "group_arrays": True}, 0)}


def test_unchanged_rows_give_the_same_records(tmp_path):
    _, q = _queries(tmp_path)
    first, second = _records(q), _records(q)
    assert sorted(first) == [1, 2, 3]
    assert all(second[j] is first[j] for j in first)


def test_a_changed_task_row_is_built_again(tmp_path):
    store, q = _queries(tmp_path)
    first = _records(q)
    store.update_task(2, state="RUNNING", node="n1", start_time=time.time())
    second = _records(q)
    assert second[1] is first[1] and second[3] is first[3]
    assert (second[2]["state"], second[2]["nodes"]) == ("RUNNING", ["n1"])
    assert first[2]["state"] == "PENDING"  # the record handed out before is left alone


def test_a_changed_spec_is_read_again(tmp_path):
    """scontrol update changes a job's spec (set_job_spec): its rev tells."""
    store, q = _queries(tmp_path)
    assert _records(q)[1]["account"] == "lab"
    store.set_job_spec(1, dict(SPEC, account="other"))
    again = _records(q)
    assert again[1]["account"] == "other"
    assert again[2]["account"] == "lab"


def test_ended_jobs_are_forgotten_after_a_full_squeue(tmp_path):
    store, q = _queries(tmp_path)
    _records(q)
    assert set(q.memo._records) == {1, 2, 3}
    store.update_task(3, state="COMPLETED", end_time=time.time(), exit_code=0)
    _records(q)
    assert set(q.memo._records) == {1, 2}
    assert set(q.memo._jobs) == {1, 2}


def test_squeue_text_follows_a_change(tmp_path):
    store, q = _queries(tmp_path)
    args = {"squeue": True, "group_arrays": True, "format": "%i %t %r",
            "header": False, "now": time.time()}

    def lines() -> list[str]:
        return sorted(q.answer("squeue", args, 0)["text"].splitlines())

    assert lines() == ["1 PD None", "2 PD None", "3 PD None"]
    store.update_task(2, reason="Priority")
    assert lines() == ["1 PD None", "2 PD Priority", "3 PD None"]


def test_render_matches_the_cell_by_cell_form():
    """render's inline plan gives what _line gives, widths and cuts included."""
    fmt = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R|%-5j|%5u|%l|%L|%20V"
    now = time.time()
    job = {"job_id": 12, "partition": "averylongpartition", "name": "a-long-job-name",
           "user": "someone", "state": "PENDING", "reason": "Priority", "time_limit": 61,
           "submit_time": now - 5, "nodes": [], "num_nodes": 1}
    items = squeue_fmt.parse_format(fmt)
    want = squeue_fmt._line(items, None, now) + "\n" + squeue_fmt._line(items, job, now) + "\n"
    assert squeue_fmt.render(fmt, [job], now=now) == want

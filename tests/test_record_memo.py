"""squeue's records kept between calls (fleetslurm.record_memo): built again
exactly when a row they came from changed, and forgotten once their job ended."""

from __future__ import annotations

import time
from types import SimpleNamespace

from fleetslurm.ctld.queries import Queries
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
    return store, Queries(store, ctl.config, paths)


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


class _Keeper:
    """A LineKeeper that counts what render asks it."""

    def __init__(self) -> None:
        self.lines: dict = {}
        self.hits = 0

    def line(self, rec, fmt):
        hit = self.lines.get((id(rec), fmt))
        if hit is not None and hit[0] is rec:
            self.hits += 1
            return hit[1]
        return None

    def keep_line(self, rec, fmt, line):
        self.lines[(id(rec), fmt)] = (rec, line)


def test_a_pending_jobs_line_is_rendered_once_per_record():
    now = time.time()
    fmt = "%i %t %M %L %S %r"
    pending = {"job_id": 1, "state": "PENDING", "reason": "Priority", "time_limit": 5,
               "submit_time": now - 9, "nodes": []}
    running = {"job_id": 2, "state": "RUNNING", "reason": "None", "time_limit": 5,
               "submit_time": now - 9, "start_time": now - 3, "nodes": ["n1"]}
    keeper = _Keeper()
    first = squeue_fmt.render(fmt, [pending, running], now=now, header=False, keeper=keeper)
    # a running job's TIME moves with the clock: never kept
    assert [key[0] for key in keeper.lines] == [id(pending)]
    later = now + 65
    again = squeue_fmt.render(fmt, [pending, running], now=later, header=False, keeper=keeper)
    assert keeper.hits == 1
    assert again == squeue_fmt.render(fmt, [pending, running], now=later, header=False)
    assert again.splitlines()[0] == first.splitlines()[0] == "1 PD 0:00 5:00 N/A Priority"
    assert again.splitlines()[1] != first.splitlines()[1]  # 0:03 then 1:08
    # another record object for the same job (its row changed): rendered afresh
    changed = dict(pending, reason="Dependency")
    assert squeue_fmt.render(fmt, [changed], now=later, header=False,
                             keeper=keeper) == "1 PD 0:00 5:00 N/A Dependency\n"


def test_a_format_with_end_time_keeps_no_lines():
    """END_TIME compares with the clock even for a pending job."""
    now = time.time()
    pending = {"job_id": 1, "state": "PENDING", "reason": "BeginTime", "time_limit": None,
               "submit_time": now - 9, "begin_time": now + 60, "nodes": []}
    keeper = _Keeper()
    squeue_fmt.render("%i %e", [pending], now=now, header=False, keeper=keeper)
    assert keeper.lines == {}


def test_squeue_keeps_lines_with_the_records_and_forgets_them_with_the_job(tmp_path):
    store, q = _queries(tmp_path)
    args = {"squeue": True, "group_arrays": True, "format": "%i %t %r",
            "header": False, "now": time.time()}
    q.answer("squeue", args, 0)
    records = _records(q)
    assert {j: q.memo.line(records[j], "%i %t %r") for j in records} == {
        1: "1 PD None", 2: "2 PD None", 3: "3 PD None"}
    store.update_task(3, state="COMPLETED", end_time=time.time(), exit_code=0)
    store.update_task(2, reason="Priority")
    assert q.answer("squeue", args, 0)["text"] == "1 PD None\n2 PD Priority\n"
    assert set(q.memo._lines) == {1, 2}


def test_an_unchanged_queue_is_answered_from_the_last_text(tmp_path):
    store, q = _queries(tmp_path)
    args = {"squeue": True, "group_arrays": True, "format": "%i %t %M %r",
            "header": False, "now": time.time()}
    first = q.answer("squeue", args, 0)
    # a later call (another clock) about the same rows: the very same answer
    again = q.answer("squeue", dict(args, now=args["now"] + 100), 0)
    assert again is first
    # another question (format, header, filter, user) is answered afresh
    assert q.answer("squeue", dict(args, header=True), 0) is not first
    assert q.answer("squeue", args, 1000) is not first
    # any write to a task or job row dates the kept text
    store.update_task(2, reason="Priority")
    changed = q.answer("squeue", args, 0)
    assert changed["text"] == "1 PD 0:00 None\n2 PD 0:00 Priority\n3 PD 0:00 None\n"
    store.set_job_spec(3, dict(SPEC, comment="x"))
    assert q.answer("squeue", args, 0) is not changed


def test_a_text_that_moves_with_the_clock_is_not_kept(tmp_path):
    store, q = _queries(tmp_path)
    now = time.time()
    store.update_task(1, state="RUNNING", node="n1", start_time=now - 5)
    args = {"squeue": True, "group_arrays": True, "format": "%i %t %M",
            "header": False, "now": now}
    assert "1 R 0:05" in q.answer("squeue", args, 0)["text"].splitlines()
    later = q.answer("squeue", dict(args, now=now + 60), 0)
    assert "1 R 1:05" in later["text"].splitlines()
    # without TIME it is kept; a state filter (MinJobAge: by the clock) is not
    plain = dict(args, format="%i %t")
    assert q.answer("squeue", plain, 0) is q.answer("squeue", plain, 0)
    states = dict(plain, states=["RUNNING"])
    assert q.answer("squeue", states, 0) is not q.answer("squeue", states, 0)


def test_the_change_counter_sees_every_row_write(tmp_path):
    store, _ = _queries(tmp_path, jobs=1)
    seen = [store.changes()]

    def moved() -> bool:
        seen.append(store.changes())
        return seen[-1] > seen[-2]

    store.update_task(1, reason="Priority")
    assert moved()
    store.set_job_spec(1, dict(SPEC, comment="x"))
    assert moved()
    store.add_job(2, 0, "root", time.time(), dict(SPEC), "#!/bin/sh\n", None)
    assert moved()
    store.add_task(2, 2, None, dict(REQ), time.time(), held=False)
    assert moved()
    with store.transaction():
        store._x("DELETE FROM tasks WHERE task_id=2")
    assert moved()


def test_squeue_reads_again_only_the_rows_written_since(tmp_path):
    """Each task row carries the change count of its last write (rev): after
    one change squeue reads that one row again, after none no row at all, and
    what it shows is what a fresh read shows."""
    store, q = _queries(tmp_path, jobs=50)
    read: list = []
    mine = q._store()
    real = mine.task_rows_in
    mine.task_rows_in = lambda ids: read.append(sorted(ids)) or real(ids)  # type: ignore
    first = _records(q)
    assert read == [list(range(1, 51))]
    read.clear()
    assert _records(q) == first and read == []
    store.update_task(7, reason="Priority")
    store.set_job_spec(9, dict(SPEC, account="other"))  # a spec: the job row's rev tells
    now = time.time()
    store.add_job(51, 0, "root", now, dict(SPEC), "#!/bin/sh\ntrue\n", None)
    store.add_task(51, 51, None, dict(REQ), now, held=False)
    second = _records(q)
    assert read == [[7, 51]]
    assert second[7]["reason"] == "Priority" and second[9]["account"] == "other"
    assert all(second[j] is first[j] for j in first if j not in (7, 9))
    fresh = Queries(Store(tmp_path / "state.db"), q.config, q.paths)  # no memo of its own yet
    assert _records(fresh) == second
    revs = dict(store._x("SELECT task_id, rev FROM tasks").fetchall())
    assert revs[51] > revs[7] > max(r for t, r in revs.items() if t not in (7, 51))
    assert "rev" not in store.task(7)  # the store's bookkeeping, not a task's field

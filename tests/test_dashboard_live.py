"""The Queue page costs the controller what changed, not the whole queue: the
view kept between requests (queueview), the controller's change log
(squeue_delta), an event stream that sends nothing while nothing changes
and pushes a change, and a running job's TIME counted on in the page."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from urllib.parse import urlencode, urlparse

import pytest

from fleetslurm.dashboard import queueview
from fleetslurm.dashboard.queueview import QueueView, secs_of, shown_time
from tests.dashboard_helpers import chromium, console_errors, text, wait_until

FMT = queueview.SEP.join("%" + letter for _, letter in queueview.FIELDS) + queueview.END


def _line(job: str, state: str = "PENDING", time_: str = "0:00", prio: int = 100,
          part: str = "debug", name: str = "x", group: str = "") -> str:
    cells = {"JOBID": job, "PARTITION": part, "NAME": name, "USER": "u", "STATE": state,
             "TIME": time_, "TIME_LIMIT": "1:00", "NODES": "1", "NODELIST(REASON)": "(None)",
             "UID": "0", "_job": group or job.split("_")[0], "_id": job.split("_")[0],
             "_prio": str(prio), "_st": {"PENDING": "PD", "RUNNING": "R"}[state]}
    return queueview.SEP.join(cells[h] for h, _ in queueview.FIELDS) + queueview.END + "\n"


def test_view_takes_deltas_in_squeues_order() -> None:
    view = QueueView()
    view.apply({"seq": 5, "version": 0, "full": True, "ids": [],
                "text": _line("3", prio=50) + _line("1", prio=90) + _line("2", prio=90)}, 100.0)
    # P, t, -priority, -job id: squeue's default order
    assert [r["JOBID"] for r in view.rows()] == ["2", "1", "3"]
    rev = view.rev
    # nothing changed: the same rows, the same revision
    view.apply({"seq": 5, "version": 0, "full": False, "ids": [], "text": ""}, 101.0)
    assert view.rev == rev and view.seq == 5
    # job 1 starts running (6 seconds in, as of 200), job 3 is gone, job 4 comes
    view.apply({"seq": 9, "version": 0, "full": False, "ids": [1, 3, 4],
                "text": _line("1", "RUNNING", "0:06", prio=90) + _line("4", prio=70)}, 200.0)
    assert view.rev != rev and view.seq == 9
    rows = view.rows()
    assert [r["JOBID"] for r in rows] == ["2", "4", "1"]  # PD before R, as text
    running = rows[-1]
    assert running["since"] == 194.0
    # its TIME moves with the clock, from when it was 0:00; the others' stand
    assert shown_time(running, 200.0) == "0:06"
    assert shown_time(running, 194.0 + 3725) == "1:02:05"
    assert shown_time(rows[0], 10_000.0) == "0:00"
    # sorted by a column: TIME by its seconds now, names naturally
    assert [r["JOBID"] for r in view.rows("-TIME", 300.0)][0] == "1"
    assert secs_of("1-02:03:04") == 93784 and secs_of("7:05") == 425


def test_view_replaces_an_arrays_lines_together() -> None:
    view = QueueView()
    view.apply({"seq": 1, "version": 0, "full": True, "ids": [],
                "text": _line("7_[2-5]", group="7") + _line("7_1", "RUNNING", "0:01", group="7")
                + _line("8")}, 10.0)
    assert len(view) == 3
    # task 2 started: the array's lines come again, together
    view.apply({"seq": 2, "version": 0, "full": False, "ids": [7],
                "text": _line("7_[3-5]", group="7") + _line("7_1", "RUNNING", "0:02", group="7")
                + _line("7_2", "RUNNING", "0:00", group="7")}, 11.0)
    assert sorted(r["JOBID"] for r in view.rows()) == ["7_1", "7_2", "7_[3-5]", "8"]


def _delta(fleet, **args) -> dict:  # type: ignore[no-untyped-def]
    with fleet.client() as c:
        return c.call("squeue_delta", squeue=True, group_arrays=True, steps=False,
                      header=False, format="%A|%T", now=time.time(), **args)


def test_controller_says_what_changed(fleet) -> None:  # type: ignore[no-untyped-def]
    fleet.run("controller", "start", check=True)
    a = fleet.sbatch("--hold", "--wrap", "true")
    first = _delta(fleet)
    assert first["full"] is True and first["text"] == f"{a}|PENDING\n"
    seq, version, epoch = first["seq"], first["version"], first["epoch"]
    # nothing changed: nothing to read
    assert _delta(fleet, seq=seq, version=version, epoch=epoch) == \
        {"seq": seq, "version": version, "epoch": epoch, "full": False, "ids": [], "text": ""}
    b = fleet.sbatch("--hold", "--wrap", "true")
    after = _delta(fleet, seq=seq, version=version, epoch=epoch)
    # the new job (and any other the loop touched meanwhile), with its line
    assert after["full"] is False and b in after["ids"]
    assert f"{b}|PENDING\n" in after["text"] and after["seq"] > seq
    # a job that leaves the queue is named, with no line
    fleet.run("scancel", str(a), check=True)
    gone = wait_until(lambda: (lambda d: d if a in d["ids"] else None)(
        _delta(fleet, seq=after["seq"], version=version, epoch=epoch)), 10,
        "the cancel in the log")
    # (the loop may have touched the other job meanwhile: its line comes again)
    assert f"{a}|" not in gone["text"]
    # a seq this log never gave, or one from another run of the controller
    # (maybe another database): everything again
    assert _delta(fleet, seq=gone["seq"] + 1000, version=version, epoch=epoch)["full"] is True
    assert _delta(fleet, seq=gone["seq"], version=version, epoch=epoch - 1)["full"] is True
    # and a malformed seq is refused, as any bad field is
    from fleetslurm.errors import FleetError

    with pytest.raises(FleetError, match="malformed request 'squeue_delta': seq"):
        _delta(fleet, seq=-1)


def _events(resp, seconds: float) -> list[str]:  # type: ignore[no-untyped-def]
    """The event kinds (and keep-alives) a stream sends within ``seconds``."""
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = resp.fp.readline()
        if not line:
            break
        if line.startswith(b"event: "):
            out.append(line[7:].strip().decode())
        elif line.startswith(b": idle"):
            out.append("idle")
    return out


def test_stream_sends_nothing_while_nothing_changes(fleet, dash) -> None:  # type: ignore[no-untyped-def]
    runner = fleet.sbatch("-J", "runner", "--wrap", "sleep 300")
    fleet.wait(runner, states={"RUNNING"})
    fleet.sbatch("--hold", "-J", "held", "--wrap", "true")
    time.sleep(1.0)  # the held job's reason settles
    port = urlparse(dash.base).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/events/queue?token={dash.token}")
    resp = conn.getresponse()
    first = _events(resp, 1.0)
    assert first[0] == "html"
    # its TIME moves, nothing else does: no fragment in 3 s, keep-alives only
    quiet = _events(resp, 3.0)
    assert "html" not in quiet and quiet.count("idle") >= 3, first + quiet
    # a job submitted from the CLI is pushed within 2 s
    submitted = time.monotonic()
    fleet.sbatch("--hold", "-J", "newcomer", "--wrap", "true")
    pushed = []
    while time.monotonic() - submitted < 2.0 and "html" not in pushed:
        pushed += _events(resp, 0.2)
    assert "html" in pushed, pushed
    conn.close()
    fleet.run("scancel", str(runner), check=True)


def test_api_queue_gives_time_now_and_since(fleet, dash) -> None:  # type: ignore[no-untyped-def]
    runner = fleet.sbatch("-J", "runner", "--wrap", "sleep 300")
    fleet.wait(runner, states={"RUNNING"})

    def row() -> dict:
        status, body = dash.get("/api/queue?" + urlencode({"token": dash.token}))
        assert status == 200, body
        return next(r for r in json.loads(body)["rows"] if r["JOBID"] == str(runner))

    before = row()
    time.sleep(2.2)
    after = row()
    # the same kept line (no change in the controller), its TIME as of now
    assert after["since"] == before["since"]
    assert secs_of(after["TIME"]) >= secs_of(before["TIME"]) + 2
    squeue = fleet.run("squeue", "-h", "-j", str(runner), "-o", "%M", check=True).stdout.strip()
    assert abs(secs_of(squeue) - secs_of(row()["TIME"])) <= 1
    fleet.run("scancel", str(runner), check=True)


def test_page_counts_time_on(fleet, dash, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runner = fleet.sbatch("-J", "runner", "--wrap", "sleep 300")
    fleet.wait(runner, states={"RUNNING"})
    browser = chromium(tmp_path)
    try:
        browser.get(dash.page("/queue"))
        cell = f'tr[data-job="{runner}"] td.time'
        wait_until(lambda: text(browser, cell), 10, "the running job's TIME")
        # the stream's first fragment (it always sends one) has come
        wait_until(lambda: text(browser, "#live.on") is not None, 10, "the page's stream")
        # a mark on the table: a pushed fragment would replace it
        browser.execute_script("document.querySelector('#rows table').dataset.mark = 'kept'")
        first = secs_of(text(browser, cell))
        wait_until(lambda: secs_of(text(browser, cell)) >= first + 2, 10, "TIME counting on")
        assert browser.execute_script(
            "return document.querySelector('#rows table').dataset.mark") == "kept"
        assert console_errors(browser) == []
    finally:
        browser.quit()
        fleet.run("scancel", str(runner), check=True)


def _rpc_counts(dash) -> dict:  # type: ignore[no-untyped-def]
    """The dashboard's own requests to the controller so far, by op (/metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    body = dash.get("/metrics", {"Authorization": "Bearer " + dash.token})[1]
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    return {s.labels["op"]: s.value for s in fams["fleetslurm_rpc_seconds"].samples
            if s.name == "fleetslurm_rpc_seconds_count"}


def test_fleet_stream_asks_for_jobs_only_when_they_changed(fleet, dash) -> None:  # type: ignore[no-untyped-def]
    runner = fleet.sbatch("-J", "runner", "--wrap", "sleep 300")
    fleet.wait(runner, states={"RUNNING"})
    port = urlparse(dash.base).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/events/fleet?token={dash.token}")
    resp = conn.getresponse()
    assert _events(resp, 1.0)[0] == "html"
    before = _rpc_counts(dash)
    _events(resp, 3.0)
    quiet = _rpc_counts(dash)
    # it went on asking what changed, and never for the running jobs again
    assert quiet["squeue_delta"] >= before["squeue_delta"] + 4
    assert quiet.get("jobs") == before.get("jobs")
    second = fleet.sbatch("-J", "second", "--wrap", "sleep 300")
    fleet.wait(second, states={"RUNNING"})
    # the new job is on its machine's card, pushed without a reload
    deadline = time.monotonic() + 10
    seen = b""
    while time.monotonic() < deadline and f"/job/{second}?".encode() not in seen:
        seen += resp.fp.readline()
    assert f"/job/{second}?".encode() in seen
    assert _rpc_counts(dash)["jobs"] > quiet["jobs"]
    conn.close()
    fleet.run("scancel", str(runner), str(second), check=True)


def test_answers_on_a_kept_connection_are_not_held_back(fleet, dash) -> None:  # type: ignore[no-untyped-def]
    """TCP_NODELAY: without it each answer on a kept connection (a browser's)
    waited ~40 ms for the client's delayed ACK."""
    port = urlparse(dash.base).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for _ in range(10):
        began = time.perf_counter()
        conn.request("GET", "/static/dash.css", headers={"Authorization": f"Bearer {dash.token}"})
        assert conn.getresponse().read()
        times.append(time.perf_counter() - began)
    conn.close()
    # the fastest of ten: a loaded machine slows some, the 40 ms wait was every one
    assert min(times) < 0.030, times


def test_change_log_says_when_it_no_longer_reaches_back(fleet) -> None:  # type: ignore[no-untyped-def]
    """A reader behind what the log keeps is told to read everything again."""
    from fleetslurm.paths import StatePaths
    from fleetslurm.store import Store

    fleet.run("controller", "start", check=True)
    jobs = [fleet.sbatch("--hold", "--wrap", "true") for _ in range(3)]
    store = Store(StatePaths(fleet.home).db)
    with store.snapshot():
        last, everything = store.job_changes(None)
        assert everything is None and last > 0
        assert set(store.job_changes(0)[1] or []) >= set(jobs)
        assert store.job_changes(last) == (last, [])
    # the log keeps the newest entries only (its trigger drops the oldest):
    # as if the first ones had been dropped, 0 is now too far back
    with store.transaction():
        store._x("DELETE FROM job_changes WHERE seq <= 2")
    with store.snapshot():
        assert store.job_changes(0) == (last, None)
        assert store.job_changes(2)[1] is not None


def test_one_write_of_a_task_logs_one_change(fleet) -> None:  # type: ignore[no-untyped-def]
    """A task row's write is one entry of the change log, though migration
    15's trigger updates the row's rev from inside it (which fires the log's
    trigger too unless it looks past that update)."""
    from fleetslurm.paths import StatePaths
    from fleetslurm.store import Store

    fleet.run("controller", "start", check=True)
    job = fleet.sbatch("--hold", "--wrap", "true")
    fleet.run("controller", "stop", check=True)  # nothing else writes meanwhile
    store = Store(StatePaths(fleet.home).db)
    count = "SELECT count(*) FROM job_changes"
    rev = "SELECT rev FROM tasks WHERE job_id = ?"
    with store.snapshot():
        before, rev_before = store._x(count).fetchone()[0], store._x(rev, (job,)).fetchone()[0]
    with store.transaction():
        store._x("UPDATE tasks SET held = held WHERE job_id = ?", (job,))
    with store.snapshot():
        assert store._x(count).fetchone()[0] == before + 1
        assert store._x(rev, (job,)).fetchone()[0] > rev_before

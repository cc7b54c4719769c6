"""The Queue page's data against a real controller (squeue's own view: its
filters, its order, arrays folded as it folds them, pages), the rows' buttons,
and the command's bad input."""

from __future__ import annotations

import json
import socket

from tests.dashboard_helpers import Dashboard, wait_until


def _queue(dash, **params) -> dict:  # type: ignore[no-untyped-def]
    from urllib.parse import urlencode

    status, body = dash.get("/api/queue?" + urlencode(dict(params, token=dash.token)))
    assert status == 200, body
    return json.loads(body)


def _squeue_ids(fleet, *args: str) -> list[str]:  # type: ignore[no-untyped-def]
    return fleet.run("squeue", "-h", "-o", "%i", *args, check=True).stdout.split()


def test_queue_is_squeues_view_filtered_and_paged(fleet, dash) -> None:  # type: ignore[no-untyped-def]
    arr = fleet.sbatch("--hold", "-J", "arr", "--array=1-5", "--wrap", "true")
    a = fleet.sbatch("--hold", "-J", "alpha", "-p", "short", "--wrap", "true")
    b = fleet.sbatch("--hold", "-J", "beta", "--wrap", "true")
    whole = _queue(dash)
    ids = [r["JOBID"] for r in whole["rows"]]
    # the array's pending tasks are one line, as squeue folds them, in its order
    assert f"{arr}_[1-5]" in ids
    assert ids == _squeue_ids(fleet)
    row = next(r for r in whole["rows"] if r["JOBID"] == str(b))
    assert row["STATE"] == "PENDING" and row["NODELIST(REASON)"] == "(JobHeldUser)"
    assert row["why"] == "The job is held by the user."  # SLURM's squeue(1) words
    html = dash.get(f"/queue?token={dash.token}")[1]
    assert 'title="The job is held by the user."' in html
    assert row["mine"] is True
    # filters: as squeue's -n, -p, -t, -u
    assert [r["JOBID"] for r in _queue(dash, name="alpha")["rows"]] == [str(a)]
    assert [r["JOBID"] for r in _queue(dash, partition="short")["rows"]] == [str(a)]
    assert _queue(dash, state="R")["rows"] == []
    assert [r["JOBID"] for r in _queue(dash, state="PD")["rows"]] == ids
    import getpass

    assert [r["JOBID"] for r in _queue(dash, user=getpass.getuser())["rows"]] == ids
    assert _queue(dash, user="nobody")["rows"] == []
    # pages: the same order, cut
    pages = [_queue(dash, per=2, page=p) for p in (1, 2)]
    assert [p["pages"] for p in pages] == [2, 2]
    assert [r["JOBID"] for p in pages for r in p["rows"]] == ids
    # a page past the end shows the last
    assert _queue(dash, per=2, page=9)["page"] == 2


def test_sort_by_a_column(fleet, dash) -> None:  # type: ignore[no-untyped-def]
    jobs = {name: fleet.sbatch("--hold", "-J", name, "--wrap", "true")
            for name in ("job10", "job9", "alpha")}
    names = [r["NAME"] for r in _queue(dash, sort="NAME")["rows"]]
    assert names == ["alpha", "job9", "job10"]  # 9 before 10
    assert [r["NAME"] for r in _queue(dash, sort="-NAME")["rows"]] == names[::-1]
    assert [r["JOBID"] for r in _queue(dash, sort="JOBID")["rows"]] == \
        [str(j) for j in sorted(jobs.values())]
    reply = _queue(dash, sort="BOGUS")
    assert reply["rows"] == []
    assert reply["error"] == ("Invalid sort column: BOGUS; valid columns are: JOBID, PARTITION, "
                              "NAME, USER, STATE, TIME, TIME_LIMIT, NODES, NODELIST(REASON)")


def test_a_bad_state_filter_says_so(fleet, dash) -> None:  # type: ignore[no-untyped-def]
    reply = _queue(dash, state="bogus")
    assert reply["rows"] == []
    assert "Invalid job state specified: bogus" in reply["error"]
    status, body = dash.get("/queue?state=bogus&token=" + dash.token)
    assert status == 200 and "Invalid job state specified: bogus" in body


def test_port_in_use_is_a_message(fleet) -> None:  # type: ignore[no-untyped-def]
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        proc = fleet.run("dashboard", "--port", str(port), timeout=60)
    finally:
        taken.close()
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == (f"error: cannot listen on 127.0.0.1:{port} (Address already in "
                           "use); choose another with --port\n")


def test_a_stopped_controller_is_a_message_not_a_traceback(fleet, dash) -> None:  # type: ignore[no-untyped-def]
    fleet.stop()
    status, body = dash.get("/?token=" + dash.token)
    assert status == 503
    assert "No answer from the controller" in body
    assert "fleetslurm controller start" in body
    assert "Traceback" not in body
    status, body = dash.get("/metrics?token=" + dash.token)
    assert status == 503
    # started again, the same dashboard answers
    fleet.run("controller", "start", check=True)
    assert dash.get("/?token=" + dash.token)[0] == 200


def test_read_only_dashboard_offers_and_does_nothing(fleet) -> None:  # type: ignore[no-untyped-def]
    import urllib.request

    fleet.run("controller", "start", check=True)
    job = fleet.sbatch("--hold", "-J", "keep", "--wrap", "true")
    d = Dashboard(fleet, "--read-only")
    try:
        status, html = d.get(f"/queue?token={d.token}")
        assert status == 200 and f'data-job="{job}"' in html
        assert "data-action" not in html
        assert "data-action" not in d.get(f"/job/{job}?token={d.token}")[1]
        req = urllib.request.Request(
            d.base + "/api/action", method="POST",
            data=json.dumps({"action": "cancel", "job": str(job)}).encode(),
            headers={"Authorization": f"Bearer {d.token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            reply = json.loads(r.read())
        assert reply == {"ok": False, "message": "this dashboard is read-only (started with "
                         "--read-only); use scancel/scontrol"}
        assert fleet.record(job)["state"] == "PENDING"
    finally:
        d.stop()


def test_job_page_shows_what_it_waits_for(fleet, dash) -> None:  # type: ignore[no-untyped-def]
    first = fleet.sbatch("--hold", "-J", "first", "--wrap", "true")
    second = fleet.sbatch("-d", f"afterok:{first}", "-J", "second", "--wrap", "true")
    status, html = dash.get(f"/job/{second}?token={dash.token}")
    assert status == 200
    deps = html.split('id="deps"', 1)[1].split("</div>", 1)[0]
    assert f'href="/job/{first}?token={dash.token}">{first} <small>PENDING</small></a>' in deps
    assert "─afterok→" in deps and f'<b class="dep">{second}</b>' in deps
    # squeue's reason, once the controller has worked it out (a few times a second)
    wait_until(lambda: "(Dependency)" in dash.get(f"/queue?token={dash.token}")[1], 30,
               "the Dependency reason on the queue page")


def test_bad_bind_and_port_are_messages(fleet) -> None:  # type: ignore[no-untyped-def]
    proc = fleet.run("dashboard", "--bind", "no.such.host.invalid", timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("error: cannot listen on no.such.host.invalid:8787 (")
    assert proc.stderr.endswith("); give --bind an address of this machine "
                                "(127.0.0.1: this machine only)\n")
    proc = fleet.run("dashboard", "--port", "99999", timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "Invalid value for '--port'" in proc.stderr


def test_ctrl_c_with_pages_open_ends_cleanly(fleet, dash) -> None:  # type: ignore[no-untyped-def]
    import http.client
    import signal
    from urllib.parse import urlparse

    port = urlparse(dash.base).port
    conns = []
    for path in ("/events/queue", "/events/fleet"):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", f"{path}?token={dash.token}")
        r = c.getresponse()
        assert r.readline().startswith(b"event: html")
        conns.append(c)
    dash.proc.send_signal(signal.SIGINT)
    assert dash.proc.wait(timeout=30) == 0
    assert dash.proc.stderr.read() == ""  # no "Cancel 1 running task(s)", no traceback
    for c in conns:
        c.close()


def test_unknown_job_is_404_with_slurms_words(fleet, dash) -> None:  # type: ignore[no-untyped-def]
    status, html = dash.get(f"/job/999999?token={dash.token}")
    assert status == 404
    assert "Invalid job id specified: 999999" in html
    status, html = dash.get(f"/job/not-a-job?token={dash.token}")
    assert status == 404 and "Invalid job id specified: not-a-job" in html
    status, html = dash.get(f"/history?hours=nan&token={dash.token}")
    assert status == 200 and "last 24 h" in html


def test_hostile_names_stay_in_their_rows(fleet, dash) -> None:  # type: ignore[no-untyped-def]
    names = ["a\n0", "a'; echo foo", 'a"=0"', "<b>x</b> & y"]
    jobs = [fleet.sbatch("--hold", "-J", n, "--wrap", "true") for n in names]
    rows = {r["JOBID"]: r for r in _queue(dash)["rows"]}
    assert [rows[str(j)]["NAME"] for j in jobs] == names
    html = dash.get(f"/queue?token={dash.token}")[1]
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt; &amp; y" in html

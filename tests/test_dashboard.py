"""The dashboard against a real controller, driven in headless Chromium: the
pages, their live updates, the buttons, the token, /metrics."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.dashboard_helpers import chromium, click, console_errors, screenshot, \
    text, wait_until


@pytest.fixture
def browser(tmp_path: Path):  # type: ignore[no-untyped-def]
    driver = chromium(tmp_path)
    yield driver
    driver.quit()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


def _by(css: str):  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    return (By.CSS_SELECTOR, css)


def test_token_is_required_everywhere(dash) -> None:  # type: ignore[no-untyped-def]
    for path in ("/", "/queue", "/history", "/job/1", "/metrics", "/api/queue",
                 "/events/fleet", "/static/dash.js"):
        assert dash.get(path)[0] == 403, path
        assert dash.get(path + "?token=wrong")[0] == 403, path
        assert dash.get(path, {"Authorization": "Bearer wrong"})[0] == 403, path
    status, body = dash.get("/?token=" + dash.token)
    assert status == 200 and "localhost" in body
    # the token-bearing URL is never passed on, the page never framed
    import urllib.request

    with urllib.request.urlopen(dash.base + "/?token=" + dash.token, timeout=30) as r:
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert dash.get("/metrics", {"Authorization": "Bearer " + dash.token})[0] == 200
    # a POST without the token changes nothing either
    import urllib.request

    req = urllib.request.Request(dash.base + "/api/action", method="POST",
                                 data=b'{"action":"cancel","job":"1"}')
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("accepted without the token")
    except urllib.error.HTTPError as exc:
        assert exc.code == 403


def test_fleet_page_lists_the_machines(dash, browser, artifacts) -> None:  # type: ignore[no-untyped-def]
    browser.get(dash.url)
    state = text(browser, '.card[data-node="localhost"] .state').lower()
    assert state.rstrip("*") in ("idle", "mix", "alloc"), state
    assert "CPUs 0/2" in text(browser, '.card[data-node="localhost"]')
    screenshot(browser, artifacts, "fleet")
    assert console_errors(browser) == []


def test_queue_live_cancel_from_the_page(fleet, dash, browser, artifacts) -> None:  # type: ignore[no-untyped-def]
    browser.get(dash.page("/queue"))
    assert text(browser, "#count") == "0"
    job = fleet.sbatch("-J", "sleeper", "--wrap", "sleep 300")
    submitted = time.monotonic()
    # no reload: the row arrives over the page's event stream
    row = wait_until(lambda: text(browser, f'tr[data-job="{job}"]'), 2.0,
                     f"job {job} in the queue page")
    assert time.monotonic() - submitted <= 2.0
    assert "sleeper" in row
    wait_until(lambda: text(browser, f'tr[data-job="{job}"][data-state="RUNNING"]'), 30,
               "RUNNING on the page")
    screenshot(browser, artifacts, "queue")
    click(browser, f'tr[data-job="{job}"] button[data-action="cancel"]')
    flash = wait_until(lambda: text(browser, "#flash.ok"), 10, "the answer")
    assert flash == f"cancel: job {job}"
    assert fleet.wait(job, timeout=30)["state"] == "CANCELLED"
    # and the row goes away without a reload
    wait_until(lambda: text(browser, f'tr[data-job="{job}"]') is None, 10,
               "the cancelled job leaves the queue page")
    assert console_errors(browser) == []


def test_refusal_is_shown_on_the_page(fleet, dash, browser) -> None:  # type: ignore[no-untyped-def]
    """The controller decides: what it refuses, the page says, as the CLI does."""
    done = fleet.sbatch("--wrap", "true")
    fleet.wait(done)
    browser.get(dash.page("/queue"))
    reply = browser.execute_async_script(
        "const cb = arguments[arguments.length - 1];"
        "window.fleetAction('hold', arguments[0]).then(cb);", str(done))
    assert reply["ok"] is False
    assert reply["message"] == f"Job has already finished for job {done}"
    assert text(browser, "#flash.refused") == f"Job has already finished for job {done}"
    reply = browser.execute_async_script(
        "const cb = arguments[arguments.length - 1];"
        "window.fleetAction('cancel', '999999').then(cb);")
    assert reply == {"ok": False,
                     "message": "Kill job error on job id 999999: Invalid job id specified"}
    assert console_errors(browser) == []


def test_job_page_streams_output(fleet, dash, browser, artifacts) -> None:  # type: ignore[no-untyped-def]
    flag = fleet.work / "go-on"
    job = fleet.sbatch("-J", "talker", "--wrap",
                       f"echo first line; while [ ! -e {flag} ]; do sleep 0.1; done; "
                       "echo second line; printf '50%%\\r100%%\\n'")
    fleet.wait(job, states={"RUNNING"})
    browser.get(dash.page(f"/job/{job}"))
    wait_until(lambda: "first line" in text(browser, "#output"), 30,
               "the first line while it runs")
    assert "second line" not in text(browser, "#output")
    fields = text(browser, ".fields")
    assert f"JobId={job}" in fields and "JobName=talker" in fields, fields
    assert text(browser, "#jobstate") == "RUNNING"
    # fleetslurm explain's words
    assert text(browser, "#explain").startswith(f"job {job} is running on localhost since ")
    screenshot(browser, artifacts, "job")
    flag.write_text("")
    wait_until(lambda: "second line" in text(browser, "#output"), 30,
               "the second line, streamed")
    wait_until(lambda: text(browser, "#output.ended") is not None, 30, "the end of output")
    # byte for byte, a progress line's \r included
    assert browser.execute_script("return document.getElementById('output').textContent") \
        == "first line\nsecond line\n50%\r100%\n"
    wait_until(lambda: text(browser, "#jobstate") == "COMPLETED", 30,
               "COMPLETED on the page")
    assert console_errors(browser) == []


def test_history_page_aggregates(fleet, dash, browser, artifacts) -> None:  # type: ignore[no-untyped-def]
    import getpass

    jobs = [fleet.sbatch("--wrap", "sleep 1") for _ in range(3)]
    for j in jobs:
        fleet.wait(j)
    browser.get(dash.page("/history"))
    assert getpass.getuser() in text(browser, "#cpu-user")
    assert "localhost" in text(browser, "#cpu-node")
    # the chart is drawn (uPlot, vendored: no network)
    assert browser.find_elements(*_by("#perhour canvas"))
    screenshot(browser, artifacts, "history")
    assert console_errors(browser) == []


def test_metrics_parse(fleet, dash) -> None:  # type: ignore[no-untyped-def]
    from prometheus_client.parser import text_string_to_metric_families

    fleet.sbatch("--hold", "-p", "short", "--wrap", "true")
    status, body = dash.get("/metrics", {"Authorization": "Bearer " + dash.token})
    assert status == 200
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    jobs = {(s.labels["state"], s.labels["partition"]): s.value
            for s in fams["fleetslurm_jobs"].samples}
    assert jobs == {("PENDING", "short"): 1.0}
    cpus = {s.labels["node"]: s.value for s in fams["fleetslurm_node_cpus"].samples}
    assert cpus == {"localhost": 2.0}
    states = [s for s in fams["fleetslurm_node_state"].samples if s.value == 1.0]
    assert [s.labels["node"] for s in states] == ["localhost"]
    # the scheduler's passes, and the dashboard's own requests timed by op
    passes = fams["fleetslurm_scheduler_passes"].samples[0].value
    assert passes >= 1
    assert fams["fleetslurm_scheduler_pass_seconds"].samples[0].value >= 0

    def scrape() -> dict:
        body = dash.get("/metrics", {"Authorization": "Bearer " + dash.token})[1]
        return {f.name: f for f in text_string_to_metric_families(body)}

    # a pass at least every half second: the count goes on
    fams2 = wait_until(lambda: (lambda f: f if f["fleetslurm_scheduler_passes"].samples[0].value
                                > passes else None)(scrape()), 30, "more scheduling passes")
    counts = {s.labels["op"]: s.value for s in fams2["fleetslurm_rpc_seconds"].samples
              if s.name == "fleetslurm_rpc_seconds_count"}
    assert counts["nodes"] >= 2 and counts["dashboard_stats"] >= 2


def test_job_page_shows_stderr_apart(fleet, dash, browser) -> None:  # type: ignore[no-untyped-def]
    job = fleet.sbatch("-e", "err-%j.txt", "--wrap", "echo out; echo oops >&2")
    fleet.wait(job)
    browser.get(dash.page(f"/job/{job}"))
    wait_until(lambda: text(browser, "#stderr.ended") is not None, 30, "stderr shown")
    wait_until(lambda: text(browser, "#output.ended") is not None, 30, "stdout shown")
    assert browser.execute_script("return document.getElementById('stderr').textContent") \
        == "oops\n"
    assert browser.execute_script("return document.getElementById('output').textContent") \
        == "out\n"
    assert console_errors(browser) == []

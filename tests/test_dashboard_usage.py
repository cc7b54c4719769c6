"""The dashboard's charts over the controller's samples, in headless
Chromium against a real controller: a running job's CPU and memory over
time (growing while it runs), and the fleet's load sparkline from the
controller's history (there before the dashboard started)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.dashboard_helpers import Dashboard, chromium, console_errors, screenshot, text, \
    wait_until

BURNER = """#!/usr/bin/env python3
import time
keep = bytearray(60 * 1024 * 1024)
t = time.time()
while time.time() - t < 120:
    pass
"""


@pytest.fixture
def browser(tmp_path: Path):  # type: ignore[no-untyped-def]
    driver = chromium(tmp_path)
    yield driver
    driver.quit()


def _points(browser) -> int:  # type: ignore[no-untyped-def]
    return int(browser.execute_script(
        "return document.getElementById('usage').dataset.points") or 0)


def test_job_page_charts_a_running_jobs_cpu_and_memory(fleet, browser, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fleet.run("controller", "start", check=True)
    script = fleet.work / "burn.py"
    script.write_text(BURNER)
    job = fleet.sbatch(str(script))
    fleet.wait(job, {"RUNNING"})
    dash = Dashboard(fleet)
    try:
        browser.get(dash.page(f"/job/{job}"))
        wait_until(lambda: _points(browser) >= 3, 60, "three samples on the chart")
        first = _points(browser)
        # live: more points arrive without a reload
        wait_until(lambda: _points(browser) > first, 30, "a new sample without a reload")
        assert browser.find_elements("css selector", "#usage canvas"), "no chart drawn"
        legend = text(browser, "#usage")
        assert "CPUs busy" in legend and "memory (MiB)" in legend
        # the data behind it: a busy CPU and the 60 MiB the job holds
        status, body = dash.get(f"/api/usage/{job}", {"Authorization": f"Bearer {dash.token}"})
        assert status == 200
        d = json.loads(body)
        assert d["running"] and len(d["t"]) >= 3
        assert max(c for c in d["cpu"] if c is not None) > 0.5, d["cpu"]
        assert max(d["rss_mb"]) > 55, d["rss_mb"]
        assert dash.get(f"/api/usage/{job}")[0] == 403  # the token, as everywhere
        screenshot(browser, tmp_path / "artifacts", "job-usage")
        assert console_errors(browser) == []
    finally:
        dash.stop()
        fleet.run("scancel", str(job))


def test_fleet_sparkline_from_the_controllers_history(fleet, browser) -> None:  # type: ignore[no-untyped-def]
    """The controller kept a point before the dashboard started: the card's
    sparkline has it (two points at once: the kept one and the latest)."""
    fleet.run("controller", "start", check=True)
    with fleet.client() as c:
        deadline = time.monotonic() + 30
        while not c.call("load_history")["nodes"].get("localhost"):
            assert time.monotonic() < deadline, "no load point kept"
            time.sleep(0.2)
    time.sleep(1.5)  # a later heartbeat: the latest figure differs in time
    dash = Dashboard(fleet)
    try:
        browser.get(dash.url)
        series = json.loads(browser.execute_script(
            "return document.querySelector('.card[data-node=\"localhost\"] .spark')"
            ".dataset.series"))
        assert len(series[0]) >= 2 and series[0][0] < series[0][-1]
        wait_until(lambda: browser.find_elements(
            "css selector", '.card[data-node="localhost"] .spark canvas'), 10, "the sparkline")
        assert console_errors(browser) == []
    finally:
        dash.stop()


def test_a_pending_jobs_chart_starts_when_it_runs(fleet, browser) -> None:  # type: ignore[no-untyped-def]
    """Opened while the job waits (held), the page shows no samples yet, and
    charts them once the job runs, without a reload."""
    fleet.run("controller", "start", check=True)
    script = fleet.work / "burn.py"
    script.write_text(BURNER)
    job = fleet.sbatch("-H", str(script))
    dash = Dashboard(fleet)
    try:
        browser.get(dash.page(f"/job/{job}"))
        wait_until(lambda: text(browser, "#usage .none") == "no samples yet", 10, "no samples")
        time.sleep(1)
        assert _points(browser) == 0
        fleet.run("scontrol", "release", str(job), check=True)
        wait_until(lambda: _points(browser) >= 2, 60, "samples once it runs, without a reload")
        assert browser.find_elements("css selector", "#usage canvas")
        assert console_errors(browser) == []
    finally:
        dash.stop()
        fleet.run("scancel", str(job))

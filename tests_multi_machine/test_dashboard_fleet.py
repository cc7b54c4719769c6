"""The dashboard on the loopback sshd fleet, in headless Chromium: every
machine's card with its state (a drained one with its reason, a dead one
down), a job on a remote machine with its output streamed over SSH, and
cancelled from its page."""

from __future__ import annotations

import pytest

from tests.dashboard_helpers import Dashboard, chromium, click, console_errors, screenshot, \
    text, wait_until

from .test_fleet import Cli


@pytest.fixture
def fleet4(sshd_fleet, make_config, ssh_home, tmp_path):  # type: ignore[no-untyped-def]
    machines = sshd_fleet(4)
    files = make_config(machines, heartbeat_interval=0.5, kill_wait=2, node_timeout=3)
    cli = Cli(files, tmp_path / "submit")
    cli.run("sinfo", check=True)
    cli.wait_nodes({m.name: "idle" for m in machines})
    dash = Dashboard(cli)
    browser = chromium(tmp_path)
    yield cli, machines, dash, browser
    browser.quit()
    dash.stop()
    cli.stop()


def test_fleet_page_and_a_remote_job(fleet4, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli, machines, dash, browser = fleet4
    cli.run("scontrol", "update", "NodeName=m2", "State=DRAIN", "Reason=maint", check=True)
    machines[3].kill()
    cli.wait_nodes({"m2": "drain", "m4": "down*"}, timeout=60)
    browser.get(dash.url)

    def states() -> dict:
        return {m.name: (text(browser, f'.card[data-node="{m.name}"] .state') or "").lower()
                for m in machines}

    # the page follows without a reload
    wait_until(lambda: states() == {"m1": "idle", "m2": "drain", "m3": "idle",
                                    "m4": "down*"}, 30, f"the machines' states ({states()})")
    assert text(browser, '.card[data-node="m2"] .reason') == "maint"
    screenshot(browser, tmp_path / "artifacts", "fleet4")

    flag = tmp_path / "go-on"
    job = cli.sbatch("-w", "m3", "-J", "remote", "--wrap",
                     f"echo from m3; while [ ! -e {flag} ]; do sleep 0.1; done; echo more")
    cli.wait(job, {"RUNNING"})
    wait_until(lambda: "remote" in (text(browser, '.card[data-node="m3"] .jobs') or ""), 10,
               "the job on m3's card")
    browser.get(dash.page(f"/job/{job}"))
    wait_until(lambda: "from m3" in text(browser, "#output"), 30, "output over SSH")
    flag.write_text("")
    wait_until(lambda: "more" in text(browser, "#output"), 30, "more output, streamed")
    job2 = cli.sbatch("-w", "m3", "-J", "victim", "--wrap", "sleep 300")
    cli.wait(job2, {"RUNNING"})
    browser.get(dash.page(f"/job/{job2}"))
    wait_until(lambda: text(browser, "#jobstate") == "RUNNING", 10, "RUNNING")
    click(browser, f'button[data-action="cancel"][data-job="{job2}"]')
    wait_until(lambda: text(browser, "#flash.ok"), 10, "the answer")
    assert cli.wait(job2, timeout=30)["state"] == "CANCELLED"
    wait_until(lambda: text(browser, "#jobstate") == "CANCELLED", 10, "CANCELLED on the page")
    assert console_errors(browser) == []

"""The dashboard on the loopback sshd fleet, in headless Chromium: every
machine's card with its state (a drained one with its reason, a dead one
down), a job on a remote machine with its output streamed over SSH, and
cancelled from its page; a machine with (fake) GPUs with a bar per GPU."""

from __future__ import annotations

import pytest

from tests.dashboard_helpers import Dashboard, chromium, click, console_errors, screenshot, \
    text, wait_until

from .gpu_machines import BROKEN_SMI, FakeGpus
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


@pytest.fixture
def gpu_fleet(sshd_fleet, make_config, ssh_home, tmp_path):  # type: ignore[no-untyped-def]
    m1, m2, m3 = sshd_fleet(3)
    good = FakeGpus(tmp_path / "m3gpus", 2)
    broken = FakeGpus(tmp_path / "m2gpus", 1, smi=BROKEN_SMI)
    files = make_config([m1, m2, m3], heartbeat_interval=0.5, overrides={
        "m2": {"python": str(broken.python), "gpu_available": True, "gpus": 1},
        "m3": {"python": str(good.python)}})
    cli = Cli(files, tmp_path / "submit")
    cli.run("sinfo", check=True)
    cli.wait_nodes({"m1": "idle", "m2": "idle", "m3": "idle"})
    dash = Dashboard(cli)
    browser = chromium(tmp_path)
    yield cli, good, dash, browser
    browser.quit()
    dash.stop()
    cli.stop()


def test_fleet_page_shows_each_gpus_load(gpu_fleet, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A machine with (fake) GPUs: a bar per GPU for its utilization and its
    memory, following the readings without a reload; a machine whose
    nvidia-smi is broken shows none; /metrics has a gauge per GPU."""
    from prometheus_client.parser import text_string_to_metric_families

    cli, gpus, dash, browser = gpu_fleet
    gpus.set({0: (37, 1200), 1: (0, 0)})
    browser.get(dash.url)

    def gpu(node: str, index: int, part: str) -> str:
        return text(browser, f'.card[data-node="{node}"] .gpu[data-gpu="{index}"] .{part}') or ""

    wait_until(lambda: gpu("m3", 0, "util") == "37% busy", 30, f"m3's GPU 0 ({gpu('m3', 0, 'util')})")
    assert gpu("m3", 0, "gmem") == "1.2G/15.0G" and gpu("m3", 1, "util") == "0% busy"
    width = browser.execute_script(
        "return document.querySelector('.card[data-node=\"m3\"] .gpu[data-gpu=\"0\"] .util i')"
        ".style.width")
    assert width == "37%"
    gpus.set({0: (37, 1200), 1: (88, 7680)})
    wait_until(lambda: gpu("m3", 1, "util") == "88% busy", 30, "the new reading, live")
    assert gpu("m3", 1, "gmem") == "7.5G/15.0G"
    assert browser.find_elements("css selector", '.card[data-node="m2"] .gpu') == []
    assert "GPUs 0/1" in (text(browser, '.card[data-node="m2"]') or "")
    screenshot(browser, tmp_path / "artifacts", "fleet-gpus")
    assert console_errors(browser) == []
    # a job's page: the load of its own GPU, from the readings while it runs
    job = cli.sbatch("-w", "m3", "--gres=gpu:2", "--wrap", "sleep 300")
    cli.wait(job, {"RUNNING"})
    browser.get(dash.page(f"/job/{job}"))
    wait_until(lambda: "2 readings" in (text(browser, "#gpuload") or "")
               or "3 readings" in (text(browser, "#gpuload") or ""), 30,
               f"the job's GPU load ({text(browser, '#gpuload')})")
    load = text(browser, "#gpuload") or ""
    assert load.startswith("its GPUs (0,1): 125% busy on average, 125% at most; memory 8.7G")
    cli.run("scancel", str(job), check=True)
    assert console_errors(browser) == []
    status, body = dash.get("/metrics", {"Authorization": "Bearer " + dash.token})
    assert status == 200
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    util = {(s.labels["node"], s.labels["gpu"]): s.value
            for s in fams["fleetslurm_gpu_utilization_ratio"].samples}
    assert util == {("m3", "0"): 0.37, ("m3", "1"): 0.88}
    used = {s.labels["gpu"]: s.value for s in fams["fleetslurm_gpu_memory_used_bytes"].samples}
    assert used == {"0": 1200 * 2.0 ** 20, "1": 7680 * 2.0 ** 20}
    assert {s.labels["uuid"] for s in fams["fleetslurm_gpu_memory_total_bytes"].samples} == \
        {"GPU-fake-0", "GPU-fake-1"}

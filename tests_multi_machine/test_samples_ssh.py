"""Resource samples over SSH, on the loopback sshd fleet: a job on a remote
machine is sampled by its supervisor there, the points come home with the
heartbeats, sstat shows them, the job page charts them in headless Chromium,
and each machine's load history is kept by the controller."""

from __future__ import annotations

import json

from tests.dashboard_helpers import Dashboard, chromium, console_errors, wait_until

from .test_fleet import Cli


def test_a_remote_jobs_samples_reach_sstat_and_the_page(sshd_fleet, make_config, ssh_home,
                                                        tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fleetslurm.rpc import connect

    machines = sshd_fleet(2)
    files = make_config(machines, heartbeat_interval=0.5, kill_wait=2)
    cli = Cli(files, tmp_path / "submit")
    cli.run("sinfo", check=True)
    cli.wait_nodes({m.name: "idle" for m in machines})
    job = cli.sbatch("-w", "m2", "--wrap", "python3 -c 'import time\nkeep = bytearray(50 << 20)\n"
                     "t = time.time()\nwhile time.time() - t < 120: pass'")
    try:
        cli.wait(job, {"RUNNING"})

        def points() -> list:
            with connect(files.paths) as c:
                tasks = c.call("usage", id=str(job), full=True)["tasks"]
            return (tasks[0]["samples"] or {}).get("points") or []

        wait_until(lambda: len(points()) >= 4 and points()[-1][2] > 45 * 1024, 60,
                   "four samples from m2, the job's 50 MiB among them")
        got = points()
        assert [p[1] for p in got] == sorted(p[1] for p in got) and got[-1][1] > 0.5
        out = cli.run("sstat", "-j", f"{job}.batch", "-P", "-n", "-o",
                      "JobID,MaxRSSNode,NTasks", check=True).stdout
        assert out == f"{job}.batch|m2|1\n"
        with connect(files.paths) as c:
            hist = c.call("load_history")["nodes"]
        assert set(hist) == {"m1", "m2"}

        dash = Dashboard(cli)
        browser = chromium(tmp_path)
        try:
            browser.get(dash.page(f"/job/{job}"))
            wait_until(lambda: int(browser.execute_script(
                "return document.getElementById('usage').dataset.points") or 0) >= 4, 30,
                "the chart's points")
            status, body = dash.get(f"/api/usage/{job}",
                                    {"Authorization": f"Bearer {dash.token}"})
            assert status == 200 and json.loads(body)["running"]
            assert console_errors(browser) == []
        finally:
            browser.quit()
            dash.stop()
    finally:
        cli.run("scancel", str(job))
        cli.wait(job)
        cli.stop()

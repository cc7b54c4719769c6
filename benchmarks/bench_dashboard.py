"""The dashboard's Queue data endpoint with a long queue, next to squeue.

With ``--jobs`` (10,000) separate held jobs pending (submitted over one
connection, as the Python API submits), measured in the same run:

1. ``GET /api/queue`` (page 1 of squeue's view: the controller renders the
   whole queue as squeue's op does, the dashboard cuts the page), median of
   ``--runs`` requests over a kept HTTP connection, the queue unchanged
   between them, and with one job changed before each (``scontrol update``
   of its Comment, not timed);
2. its peer: ``fleetslurm squeue`` (the console script, a whole process), on
   the same queue;
3. the controller's CPU (utime+stime from /proc) over ``--idle`` seconds
   with no dashboard client, then with one browser-like client holding the
   Queue page's event stream open (it asks the controller twice a second).

Run: ``python benchmarks/bench_dashboard.py [--runs 15] [--jobs 10000]
[--idle 20]``. A fresh temporary FLEETSLURM_HOME; its controller and
dashboard are stopped at the end. Not a test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/, this script's directory


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--idle", type=float, default=20.0)
    opts = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fleetslurm-dash-"))
    home, work = root / "home", root / "work"
    work.mkdir()
    home.mkdir(mode=0o700)
    config = {"cluster_name": "bench", "partitions": {"debug": {"default": True}},
              "machines": {"localhost": {"transport": "local", "cpus": 2, "memory_gb": 4,
                                         "hostname": "localhost"}}}
    (root / "fleet_config.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "SBATCH_", "SQUEUE_", "SACCT_"))}
    env.update(FLEETSLURM_HOME=str(home), FLEETSLURM_CONFIG=str(root / "fleet_config.json"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.update(FLEETSLURM_HOME=env["FLEETSLURM_HOME"],
                      FLEETSLURM_CONFIG=env["FLEETSLURM_CONFIG"])
    cli = [sys.executable, "-m", "fleetslurm.cli.main"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()}), "
          f"Python {platform.python_version()}")
    dash = None
    try:
        subprocess.run([*cli, "controller", "start"], env=env, cwd=work, check=True,
                       capture_output=True)
        ctl_pid = int((home / "controller.pid").read_text().split()[0])
        from fleetslurm.rpc import connect

        with connect() as c:
            ids = [c.call("submit", options={"wrap": "true", "hold": True,
                                             "output": "/dev/null"},
                          script="#!/bin/sh\ntrue\n", script_args=[], env={}, cwd=str(work),
                          submit_host=platform.node(), script_name="wrap")["job_id"]
                   for _ in range(opts.jobs)]
        time.sleep(1.0)
        dash = subprocess.Popen([*cli, "dashboard", "--port", "0"], env=env, cwd=work,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        m = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=(\S+)", dash.stdout.readline())
        assert m, "no URL from the dashboard"
        port, token = int(m.group(1)), m.group(2)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        hdr = {"Authorization": f"Bearer {token}"}

        def get() -> dict:
            conn.request("GET", "/api/queue", headers=hdr)
            return json.loads(conn.getresponse().read())

        def timed(before=None) -> tuple[float, dict]:  # type: ignore[no-untyped-def]
            times, reply = [], {}
            for _ in range(opts.runs):
                if before:
                    before()
                t0 = time.perf_counter()
                reply = get()
                times.append(time.perf_counter() - t0)
            return statistics.median(times) * 1000, reply

        get()  # warm: the controller's squeue records are made once
        unchanged, reply = timed()
        n = iter(range(10**9))

        def touch() -> None:
            with connect() as c:
                c.call("update_job", ids=[str(ids[0])], fields={"Comment": f"b{next(n)}"})

        changed, _ = timed(touch)
        sq = []
        for _ in range(opts.runs):
            t0 = time.perf_counter()
            subprocess.run([*cli, "squeue"], env=env, cwd=work, check=True,
                           capture_output=True)
            sq.append(time.perf_counter() - t0)
        squeue_ms = statistics.median(sq) * 1000
        # (3) the controller's CPU, no client, then one client on the event stream
        c0 = cpu_seconds(ctl_pid)
        time.sleep(opts.idle)
        idle_pct = 100 * (cpu_seconds(ctl_pid) - c0) / opts.idle
        stop = threading.Event()

        def listen() -> None:
            s = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            s.request("GET", "/events/queue", headers=hdr)
            r = s.getresponse()
            while not stop.is_set():
                if not r.fp.readline():
                    break
            s.close()

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        time.sleep(1.0)
        c0 = cpu_seconds(ctl_pid)
        time.sleep(opts.idle)
        watched_pct = 100 * (cpu_seconds(ctl_pid) - c0) / opts.idle
        stop.set()
    finally:
        if dash is not None:
            dash.send_signal(signal.SIGINT)
            try:
                dash.wait(timeout=15)
            except subprocess.TimeoutExpired:
                dash.kill()
        subprocess.run([*cli, "controller", "stop"], env=env, cwd=work,
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    print(f"{opts.jobs:,} held jobs pending; medians of {opts.runs}")
    print(f"(1) GET /api/queue (page 1 of {reply['pages']}, {reply['count']} jobs): "
          f"{unchanged:.1f} ms unchanged, {changed:.1f} ms with one job changed before each"
          "   [target <= 150 ms]")
    print(f"(2) peer: fleetslurm squeue (whole process, all {reply['count']} lines): "
          f"{squeue_ms:.1f} ms")
    print(f"(3) controller CPU over {opts.idle:g} s: {idle_pct:.2f}% with no dashboard client, "
          f"{watched_pct:.2f}% with the Queue page's event stream open"
          "   [target: < 2 points more]")
    return 0


if __name__ == "__main__":
    sys.exit(main())

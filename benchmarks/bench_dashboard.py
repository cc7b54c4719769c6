"""The dashboard's Queue data endpoint with a long queue, next to squeue.

With ``--running`` (1,000) real jobs running at once on the local machine
(declared with that many CPUs and a few more; each job touches a file of its
own, then sleeps; the script waits until squeue shows all of them RUNNING,
counts their files, and counts them RUNNING again after the measurements)
and ``--jobs`` (10,000) separate held jobs pending (submitted over one
connection, as the Python API submits), measured in the same run:

1. ``GET /api/queue`` (page 1 of squeue's view: the dashboard's kept view,
   brought up to date by the lines of the jobs the controller's change log
   names, see fleetslurm/dashboard/queueview.py), median of ``--runs``
   requests over a kept HTTP connection, the queue unchanged between them,
   and with one job changed before each (``scontrol update`` of its
   Comment, not timed);
2. its peer: ``fleetslurm squeue`` (the console script, a whole process), on
   the same queue;
3. the controller's CPU (utime+stime from /proc) over ``--idle`` seconds
   with no dashboard client, then with one browser-like client holding the
   Queue page's event stream open (it asks the controller twice a second
   what changed), and how many fragments that stream pushed meanwhile
   (the running jobs' TIME moves; nothing else does).

Also printed: the memory (PSS) of the running jobs' side (the agent, the
supervisors, the jobs) and the controller's RSS.

Run: ``python benchmarks/bench_dashboard.py [--runs 15] [--jobs 10000]
[--running 1000] [--idle 20]``. A fresh temporary FLEETSLURM_HOME; at the
end, also on an error, Ctrl-C or SIGTERM, the running jobs are cancelled,
the dashboard and the controller stopped, and any process still carrying
that FLEETSLURM_HOME killed. Not a test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shlex
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


def ours(home: Path) -> list[int]:
    """Every process but this one whose environment names our FLEETSLURM_HOME
    (the controller, its agent, the supervisors, the jobs, the dashboard): a
    temporary directory, so nothing else carries it."""
    mark = f"FLEETSLURM_HOME={home}".encode()
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if mark in (d / "environ").read_bytes().split(b"\0"):
                    found.append(int(d.name))
            except OSError:
                pass  # gone, or not ours to read
    return found


def memory_kb(pid: int, field: str) -> int:
    """``Pss`` (smaps_rollup) or ``VmRSS`` (status) of a process, in KiB; 0 if gone."""
    try:
        text = Path(f"/proc/{pid}/{'smaps_rollup' if field == 'Pss' else 'status'}").read_text()
    except OSError:
        return 0
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--running", type=int, default=1000)
    ap.add_argument("--idle", type=float, default=20.0)
    ap.add_argument("--start-timeout", type=float, default=900.0,
                    help="seconds to wait for the --running jobs to be RUNNING")
    opts = ap.parse_args()
    for name in ("runs", "jobs", "running"):
        if getattr(opts, name) < (1 if name == "runs" else 0):
            ap.error(f"--{name} must be at least {1 if name == 'runs' else 0}")
    if opts.jobs + opts.running == 0:
        ap.error("--jobs and --running are both 0: no queue to measure")
    root = Path(tempfile.mkdtemp(prefix="fleetslurm-dash-"))
    home, work, ran = root / "home", root / "work", root / "ran"
    work.mkdir()
    ran.mkdir()
    home.mkdir(mode=0o700)
    # the running jobs ask for no memory (mem 0 reserves none and starts no
    # memory watchdog), one CPU each: the machine declares enough CPUs
    config = {"cluster_name": "bench", "partitions": {"debug": {"default": True}},
              "machines": {"localhost": {"transport": "local", "cpus": max(2, opts.running + 2),
                                         "memory_gb": 4, "hostname": "localhost",
                                         "workdir": str(root / "node")}}}
    (root / "fleet_config.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "SBATCH_", "SQUEUE_", "SACCT_"))}
    env.update(FLEETSLURM_HOME=str(home), FLEETSLURM_CONFIG=str(root / "fleet_config.json"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.update(FLEETSLURM_HOME=env["FLEETSLURM_HOME"],
                      FLEETSLURM_CONFIG=env["FLEETSLURM_CONFIG"])
    cli = [sys.executable, "-m", "fleetslurm.cli.main"]

    def running_ids() -> set[str]:
        out = subprocess.run([*cli, "squeue", "-h", "-t", "RUNNING", "-o", "%i"], env=env,
                             cwd=work, check=True, capture_output=True, text=True).stdout
        return set(out.split())

    def on_term(signum, frame):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt  # so that the cleanup below runs

    signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C too, even where the shell started us with SIGINT ignored (`&`)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()}), "
          f"Python {platform.python_version()}")
    dash = None
    started = False
    runners: list[str] = []
    try:
        subprocess.run([*cli, "controller", "start"], env=env, cwd=work, check=True,
                       capture_output=True)
        started = True
        ctl_pid = int((home / "controller.pid").read_text().split()[0])
        from fleetslurm.rpc import connect

        # (0) the running jobs: each leaves a file named by its id, then sleeps
        # past the measurements (a 30-minute limit ends them if all else fails)
        t_run = time.perf_counter()
        script = f"#!/bin/sh\ntouch {shlex.quote(str(ran))}/$SLURM_JOB_ID\nexec sleep 1800\n"
        with connect() as c:
            runners = [str(c.call("submit", options={"wrap": "sleep", "output": "/dev/null",
                                                     "time": "30"},
                                  script=script, script_args=[], env={}, cwd=str(work),
                                  submit_host=platform.node(), script_name="wrap")["job_id"])
                       for _ in range(opts.running)]
        # RUNNING comes with the launch; the file once the job's shell ran
        deadline = time.monotonic() + opts.start_timeout
        while True:
            up = len(running_ids() & set(runners))
            files = {f.name for f in ran.iterdir()}
            if up == opts.running and files == set(runners):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"error: after {opts.start_timeout:g} s, {up} of {opts.running} "
                                 f"jobs RUNNING, {len(files & set(runners))} files written")
            time.sleep(1.0)
        start_s = time.perf_counter() - t_run

        def jobs_pss_mb() -> float:  # the agent, the supervisors, the jobs
            return sum(memory_kb(p, "Pss") for p in ours(home)
                       if p not in (ctl_pid, dash.pid if dash else 0)) / 1024

        pss_before = jobs_pss_mb()
        ctl_rss_mb = memory_kb(ctl_pid, "VmRSS") / 1024
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
        some = str((ids or runners)[0])

        def touch() -> None:
            with connect() as c:
                c.call("update_job", ids=[some], fields={"Comment": f"b{next(n)}"})

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
        pushed = [0]  # fragments ("event: html") the stream sent

        def listen() -> None:
            s = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            s.request("GET", "/events/queue", headers=hdr)
            r = s.getresponse()
            while not stop.is_set():
                line = r.fp.readline()
                if not line:
                    break
                if line.startswith(b"event: html"):
                    pushed[0] += 1
            s.close()

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        time.sleep(1.0)
        c0, pushed_before = cpu_seconds(ctl_pid), pushed[0]
        time.sleep(opts.idle)
        watched_pct = 100 * (cpu_seconds(ctl_pid) - c0) / opts.idle
        idle_pushes = pushed[0] - pushed_before
        stop.set()
        pss_after = jobs_pss_mb()  # copy-on-write pages the supervisors dirtied since
        still = len(running_ids() & set(runners))
        if still != opts.running:
            raise SystemExit(f"error: {still} of {opts.running} jobs still RUNNING after the "
                             "measurements")
    finally:
        # a second Ctrl-C must not leave 1,000 sleeping jobs behind
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if dash is not None:
            dash.send_signal(signal.SIGINT)
            try:
                dash.wait(timeout=15)
            except subprocess.TimeoutExpired:
                dash.kill()
        if started and runners:
            try:
                from fleetslurm.rpc import connect

                with connect() as c:
                    c.call("cancel", ids=runners)
                deadline = time.monotonic() + 120
                while running_ids() & set(runners) and time.monotonic() < deadline:
                    time.sleep(1.0)
            except Exception as exc:  # the sweep below still ends them
                print(f"warning: cancelling the running jobs: {exc}", file=sys.stderr)
        subprocess.run([*cli, "controller", "stop"], env=env, cwd=work,
                       capture_output=True)
        # whatever outlived the cancel and the stop (a supervisor outlives its
        # agent by design): only processes carrying this run's FLEETSLURM_HOME
        deadline = time.monotonic() + 30
        while (left := ours(home)) and time.monotonic() < deadline:
            time.sleep(1.0)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if left:
            print(f"warning: killed {len(left)} processes left after the stop", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
    print(f"{opts.running:,} jobs running (all {opts.running} RUNNING in squeue before and "
          f"after the measurements, {len(files)} files written by them; all running after "
          f"{start_s:.1f} s), {opts.jobs:,} held jobs pending; medians of {opts.runs}")
    per_job = f" ({1024 * pss_after / opts.running:.0f} KiB per running job)" \
        if opts.running else ""
    print(f"memory: agent + supervisors + jobs {pss_before:.0f} MiB PSS once all ran, "
          f"{pss_after:.0f} MiB after the measurements{per_job}; controller "
          f"{ctl_rss_mb:.0f} MiB RSS before the held jobs")
    print(f"(1) GET /api/queue (page 1 of {reply['pages']}, {reply['count']} jobs): "
          f"{unchanged:.1f} ms unchanged, {changed:.1f} ms with one job changed before each"
          "   [target <= 150 ms]")
    print(f"(2) peer: fleetslurm squeue (whole process, all {reply['count']} lines): "
          f"{squeue_ms:.1f} ms")
    print(f"(3) controller CPU over {opts.idle:g} s: {idle_pct:.2f}% with no dashboard client, "
          f"{watched_pct:.2f}% with the Queue page's event stream open"
          f" ({idle_pushes} fragments pushed meanwhile)   [target: < 2 points more]")
    return 0


if __name__ == "__main__":
    sys.exit(main())

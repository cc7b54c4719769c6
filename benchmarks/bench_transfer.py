"""A big job output brought home by fleetslurm, next to scp of the same file
over the same sshd, in one run.

Starts one real sshd "machine" on loopback (the multi-machine tests'
fixture, 127.0.0.2), writes a file of ``--size-mb`` MiB of random bytes on
it, then:

1. fleetslurm: a controller (SSH transport, no shared filesystem) runs a job
   that writes that file to its stdout on the machine (then ``sync``, so
   its output is on disk as scp's file is, not still being written back
   during the copy); timed from the job's end (its record's end time) to
   COMPLETED, which it reaches only once the output is home and verified
   (size and sha256, on the machine and here). Then the same job twice
   more, while a client times ``squeue -t all`` round trips (a new
   connection each, as the command makes them; a held job keeps the queue
   from being empty), then the ``squeue -t all`` command itself (start to
   exit), next to the same before the jobs: the controller's answer time
   while a big output streams home.
2. scp (OpenSSH's client, its default cipher) of the same file from the same
   sshd, timed around the command, right after each timed fleetslurm copy.

With ``--runs N`` the timed copy and its scp are made N times, one pair after
the other (the ratio of each pair, then their median), before the squeue
measurements. The load average (this host's, shared with whatever else runs
on it) is printed before and after. Both copies are checked whole here (size
and sha256 against the file on the machine). Run:
``python benchmarks/bench_transfer.py [--size-mb 1024] [--runs 1]`` (needs
openssh-server and openssh-client).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model  # noqa: E402  (benchmarks/, this script's directory)
from tests_multi_machine.sshd_machines import SshdPool  # noqa: E402

#: ``squeue -t all``: the same question is answered afresh each time (no kept text)
SQUEUE = {"squeue": True, "group_arrays": True, "steps": False, "header": True,
          "states": "all", "format": "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"}


def digest(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return path.stat().st_size, h.hexdigest()


def make_file(path: Path, size_mb: int) -> tuple[int, str]:
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(size_mb):
            block = os.urandom(1 << 20)
            h.update(block)
            f.write(block)
    return size_mb << 20, h.hexdigest()


def squeue_ms(home: Path) -> float:
    """One squeue round trip, connection included, in ms."""
    from fleetslurm.paths import StatePaths
    from fleetslurm.rpc import connect

    t0 = time.perf_counter()
    with connect(StatePaths(home)) as c:
        c.call("squeue", **SQUEUE)
    return (time.perf_counter() - t0) * 1000


def squeue_cmd_ms(env: dict) -> float:
    """One ``squeue -t all`` command, start to exit, in ms."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", "squeue", "-t", "all"],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t0) * 1000


def _poll(what: str, home: Path, env: dict, out: list) -> "tuple[threading.Event, list]":
    """Start timing squeue round trips (``what`` "rpc": 50 a second, as a
    user's script polling it) or squeue commands ("cmd": one after the
    other); set the event returned to stop."""
    done = threading.Event()

    def rpc() -> None:
        while not done.is_set():
            out.append(squeue_ms(home))
            time.sleep(0.02)

    def cmd() -> None:
        while not done.is_set():
            out.append(squeue_cmd_ms(env))

    thread = threading.Thread(target=rpc if what == "rpc" else cmd, daemon=True)
    thread.start()
    return done, [thread]


def _one_output(home: Path, work: Path, src: Path, meanwhile) -> tuple[float, tuple[int, str]]:
    """Run the job that writes ``src`` as its output; seconds from its end to
    COMPLETED, and the digest of the output here. ``meanwhile()`` is started
    once the job is COMPLETING (its output on the way) and stopped at the end."""
    from fleetslurm.paths import StatePaths
    from fleetslurm.rpc import connect

    with connect(StatePaths(home)) as c:
        job = c.call("submit", options={"wrap": f"cat {src}; sync"},
                     script=f"#!/bin/sh\ncat '{src}'\nsync\n", script_args=[],
                     env={"PATH": "/usr/bin:/bin"}, cwd=str(work),
                     submit_host=platform.node(), script_name="wrap")["job_id"]
        running = None
        try:
            while True:
                rec = c.call("jobs", ids=[str(job)])[0]
                if rec["state"] == "COMPLETING" and meanwhile and running is None:
                    running = meanwhile()
                if rec["state"] not in ("PENDING", "RUNNING", "COMPLETING"):
                    seen = time.time()
                    break
                time.sleep(0.01)
        finally:
            if running is not None:
                running[0].set()
                for t in running[1]:
                    t.join()
    if rec["state"] != "COMPLETED":
        raise SystemExit(f"the job ended {rec['state']}")
    out = work / f"slurm-{job}.out"
    got = digest(out)
    out.unlink()
    return seen - float(rec["end_time"]), got


def run_fleetslurm(m, base: Path, src: Path, runs: int, scp) -> dict:
    """Seconds from the job's end to COMPLETED (``runs`` times, each followed
    by ``scp()``, whose results are kept too), the output's digest here, and
    squeue's times idle and during the copy."""
    from fleetslurm.paths import StatePaths
    from fleetslurm.rpc import connect

    home = base / "home"
    home.mkdir(mode=0o700)
    cfg = {"cluster_name": "bench", "heartbeat_interval": 5,
           "machines": {m.name: m.config_entry()}}
    path = base / "fleet_config.json"
    path.write_text(json.dumps(cfg))
    (home / "known_hosts").write_text(m.known_hosts_line + "\n")
    env = dict(os.environ, FLEETSLURM_HOME=str(home), FLEETSLURM_CONFIG=str(path))
    work = base / "work"
    work.mkdir()
    exe = [sys.executable, "-m", "fleetslurm.cli.main"]
    subprocess.run(exe + ["controller", "start"], env=env, check=True, cwd=work,
                   stdout=subprocess.DEVNULL)
    try:
        with connect(StatePaths(home)) as c:
            deadline = time.time() + 30
            while [n["state"] for n in c.call("nodes")["nodes"]] != ["idle"]:
                if time.time() > deadline:
                    raise SystemExit("the machine did not come up")
                time.sleep(0.1)
        with connect(StatePaths(home)) as c:
            # the queue is never empty: idle and busy squeue render job lines
            c.call("submit", options={"wrap": "true", "hold": True},
                   script="#!/bin/sh\ntrue\n", script_args=[],
                   env={"PATH": "/usr/bin:/bin"}, cwd=str(work),
                   submit_host=platform.node(), script_name="wrap")
        idle = [squeue_ms(home) for _ in range(50)]
        idle_cmd = [squeue_cmd_ms(env) for _ in range(10)]
        # the copy timed alone, then again with squeue asked meanwhile, one
        # way at a time (the squeue commands' own start-ups take a CPU of
        # this host's two)
        seconds, scps = [], []
        for _ in range(runs):
            took, digest_home = _one_output(home, work, src, None)
            seconds.append(took)
            scps.append(scp())
        busy: dict = {"rpc": [], "cmd": []}
        for what in busy:
            _one_output(home, work, src, lambda: _poll(what, home, env, busy[what]))
        return {"seconds": seconds, "scp": scps, "digest": digest_home, "idle": idle, "idle_cmd": idle_cmd,
                "busy": busy["rpc"], "busy_cmd": busy["cmd"]}
    finally:
        subprocess.run(exe + ["controller", "stop"], env=env, cwd=work,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_scp(m, base: Path, src: Path, key: Path) -> tuple[float, tuple[int, str]]:
    kh = base / "scp_known_hosts"
    kh.write_text(m.known_hosts_line + "\n")
    dest = base / "scp.out"
    t0 = time.perf_counter()
    subprocess.run(["scp", "-q", "-P", str(m.port), "-i", str(key), "-o", "BatchMode=yes",
                    "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={kh}",
                    "-o", "StrictHostKeyChecking=yes", f"root@{m.address}:{src}", str(dest)],
                   check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - t0, digest(dest)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024, help="the output's size in MiB")
    ap.add_argument("--runs", type=int, default=1,
                    help="timed copies, each next to an scp (default 1)")
    opts = ap.parse_args()
    if not Path("/usr/sbin/sshd").exists() or not shutil.which("scp"):
        print("needs openssh-server and openssh-client: apt-get install openssh-server "
              "openssh-client")
        return 2
    base = Path(tempfile.mkdtemp(prefix="fleetslurm-transfer-bench-"))
    (base / "sshd").mkdir()
    pool = SshdPool(base / "sshd")
    try:
        (m,) = pool.get(1)
        print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs "
              f"({cpu_model()}), Python {platform.python_version()}; one sshd on loopback",
              flush=True)
        src = m.workdir / "big.bin"
        want = make_file(src, opts.size_mb)
        size_mb = want[0] / 1e6
        print("load average before: %.2f %.2f %.2f" % os.getloadavg(), flush=True)
        fs = run_fleetslurm(m, base, src, max(1, opts.runs),
                            lambda: run_scp(m, base, src, pool.client_key))
        for label, got in [("fleetslurm", fs["digest"])] + [("scp", g) for _, g in fs["scp"]]:
            if got != want:
                raise SystemExit(f"{label}: the copy is not whole: {got} != {want}")
        print(f"{opts.size_mb} MiB output, checked whole (size + sha256) for both")
        ratios = []
        for took, (t_scp, _) in zip(fs["seconds"], fs["scp"]):
            rate_fs, rate_scp = size_mb / took, size_mb / t_scp
            ratios.append(rate_fs / rate_scp)
            print(f"fleetslurm (job end -> COMPLETED, output home and verified): "
                  f"{took:.2f} s -> {rate_fs:.1f} MB/s")
            print(f"scp (same file, same sshd):                              "
                  f"{t_scp:.2f} s -> {rate_scp:.1f} MB/s")
            print(f"fleetslurm / scp: {rate_fs / rate_scp:.2f}x")
        if len(ratios) > 1:
            print(f"fleetslurm / scp over {len(ratios)} runs: median "
                  f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}x, "
                  f"max {max(ratios):.2f}x)")
        idle, busy = statistics.median(fs["idle"]), statistics.median(fs["busy"] or [0.0])
        print(f"squeue round trip p50: {idle:.1f} ms idle, {busy:.1f} ms while the output "
              f"came home ({len(fs['busy'])} calls): {busy / idle:.2f}x")
        idle = statistics.median(fs["idle_cmd"])
        busy = statistics.median(fs["busy_cmd"] or [0.0])
        print(f"squeue -t all command p50: {idle:.0f} ms idle, {busy:.0f} ms while the output "
              f"came home ({len(fs['busy_cmd'])} runs): {busy / idle:.2f}x")
        print("load average after: %.2f %.2f %.2f" % os.getloadavg())
    finally:
        pool.shutdown()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

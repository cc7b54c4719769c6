"""A job's start and end on its machine, measured straight at a node agent.

Launches N ``true`` jobs (``-c 1``: CPU quota and cpuset where the machine
allows) one at a time through the agent's JSON-lines protocol, as the
controller does, and reports medians and p90s of:

- launch request -> ``started`` (the supervisor's fork, its cgroups, the
  job child's fork and set-up up to exec);
- the supervisor's recorded end time -> ``ended`` at the client (the result
  written, reported, read);
- launch request -> ``ended``.

Next to it, where cgroup v1's ``cpu`` hierarchy is writable (root), the way
a forked child joins a cgroup: its pid written to ``cgroup.procs`` (the
kernel takes the global threadgroup lock for writing and waits for an RCU
grace period) against "0" written to ``tasks`` (one thread, no global lock),
each timed in the child, the two alternately.

Run: ``python benchmarks/bench_agent.py [--jobs 80] [--writes 150]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_agent import AgentClient, spec  # noqa: E402

CPU_V1 = Path("/sys/fs/cgroup/cpu")


def p90(xs: list) -> float:
    xs = sorted(xs)
    return xs[int(0.9 * (len(xs) - 1))]


def agent_latencies(n: int, base: Path) -> dict:
    """Milliseconds for each of the three spans, per job."""
    agent = AgentClient(base / "workdir")
    env = {"PATH": "/usr/bin:/bin", "SLURM_CPUS_ON_NODE": "1"}
    spans: dict = {"started": [], "end->ended": [], "ended": []}
    try:
        for i in range(n):
            key = f"{i + 1}.0"
            t0 = time.perf_counter()
            reply = agent.launch(key, spec("#!/bin/sh\ntrue\n", base, env=env, cpus=1,
                                           stdout="/dev/null", stderr="/dev/null"))
            assert reply["ev"] == "started", reply
            t1 = time.perf_counter()
            result = agent.ended(key)
            t2, now = time.perf_counter(), time.time()
            assert result["state"] == "COMPLETED", result
            spans["started"].append((t1 - t0) * 1000)
            spans["end->ended"].append((now - result["end_time"]) * 1000)
            spans["ended"].append((t2 - t0) * 1000)
            agent.request({"op": "forget", "key": key})
    finally:
        agent.close()
    return spans


def join_once(way: str, cg: Path) -> float:
    """Milliseconds a forked child takes to join the (new) cgroup ``cg``."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            t = time.perf_counter()
            name, text = (("cgroup.procs", str(os.getpid())) if way == "procs"
                          else ("tasks", "0"))
            fd = os.open(str(cg / name), os.O_WRONLY)
            os.write(fd, text.encode())
            os.close(fd)
            os.write(w, b"%f" % ((time.perf_counter() - t) * 1000))
        finally:
            os._exit(0)
    os.close(w)
    took = float(os.read(r, 64))
    os.close(r)
    os.waitpid(pid, 0)
    return took


def join_times(n: int) -> dict:
    """Both ways of joining a new cgroup v1 cpu group, alternately, n each."""
    base = CPU_V1 / f"fleetslurm-bench-{os.getpid()}"
    base.mkdir()
    out: dict = {"procs": [], "tasks": []}
    try:
        for i in range(n):
            for way in ("procs", "tasks") if i % 2 else ("tasks", "procs"):
                cg = base / f"{way}{i}"
                cg.mkdir()
                out[way].append(join_once(way, cg))
                cg.rmdir()
    finally:
        for cg in base.iterdir():
            if cg.is_dir():
                cg.rmdir()
        base.rmdir()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=80)
    ap.add_argument("--writes", type=int, default=150)
    opts = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fleetslurm-agent-bench-"))
    try:
        print(f"load average {os.getloadavg()[0]:.1f}; {opts.jobs} `true` jobs, -c 1, "
              "one at a time")
        spans = agent_latencies(opts.jobs, base)
        for name, label in (("started", "launch -> started"),
                            ("end->ended", "job's end -> ended"), ("ended", "launch -> ended")):
            xs = spans[name]
            print(f"{label:20s} median {statistics.median(xs):6.2f} ms, p90 {p90(xs):6.2f} ms")
        if (CPU_V1 / "cpu.cfs_quota_us").exists() and os.access(CPU_V1, os.W_OK):
            times = join_times(opts.writes)
            for way, label in (("procs", "pid -> cgroup.procs"), ("tasks", '"0" -> tasks')):
                xs = times[way]
                print(f"cgroup v1 join, {label:20s} median {statistics.median(xs):5.3f} ms, "
                      f"mean {statistics.mean(xs):5.3f} ms, max {max(xs):6.3f} ms")
        else:
            print("cgroup v1 join: no writable cgroup v1 cpu hierarchy here, not measured")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

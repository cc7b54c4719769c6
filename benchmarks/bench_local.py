"""Figures for the embedded default (this machine alone), printed side by side.

1. ``fleetslurm sbatch`` whole-process latency: median of 50 runs, next to
   ``python -c pass`` measured in the same run.
2. Throughput: 500 ``--wrap true`` jobs from submission to COMPLETED, submitted
   over one client connection (as the Python API does), in jobs per second.

Run: ``python benchmarks/bench_local.py [--jobs 500] [--runs 50]``. It uses a
fresh temporary FLEETSLURM_HOME and no config, and stops its controller.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import median_ms  # benchmarks/, this script's directory


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--runs", type=int, default=50)
    opts = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fleetslurm-bench-"))
    env = dict(os.environ, FLEETSLURM_HOME=str(root / "home"))
    env.pop("FLEETSLURM_CONFIG", None)
    work = root / "work"
    work.mkdir()
    exe = shutil.which("fleetslurm") or "fleetslurm"
    try:
        subprocess.run([exe, "controller", "start"], env=env, cwd=work, check=True,
                       stdout=subprocess.DEVNULL)
        print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
        py = median_ms([sys.executable, "-c", "pass"], opts.runs, env, str(work))
        sb = median_ms([exe, "sbatch", "--wrap", "true"], opts.runs, env, str(work))
        print(f"sbatch latency (median of {opts.runs}): {sb:.1f} ms   "
              f"python -c pass: {py:.1f} ms   (fleetslurm's own share: {sb - py:.1f} ms)")
        os.environ["FLEETSLURM_HOME"] = env["FLEETSLURM_HOME"]
        from fleetslurm.rpc import connect

        with connect() as c:
            # let the latency jobs drain first
            while c.call("count")["active"]:
                time.sleep(0.1)
            t0 = time.perf_counter()
            ids = []
            for _ in range(opts.jobs):
                r = c.call("submit", options={"wrap": "true"}, script="#!/bin/sh\ntrue\n",
                           script_args=[], env={"PATH": os.environ.get("PATH", "")},
                           cwd=str(work), submit_host=platform.node(), script_name="wrap")
                ids.append(r["job_id"])
            t_sub = time.perf_counter() - t0
            while c.call("count")["active"]:
                time.sleep(0.05)
            total = time.perf_counter() - t0
            recs = c.call("jobs", ids=[str(i) for i in ids], steps=False)
            states = {r["state"] for r in recs}
        print(f"throughput: {opts.jobs} jobs submitted in {t_sub:.2f} s, all ended in "
              f"{total:.2f} s -> {opts.jobs / total:.0f} jobs/s (states: {sorted(states)})")
    finally:
        subprocess.run([exe, "controller", "stop"], env=env, cwd=work,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

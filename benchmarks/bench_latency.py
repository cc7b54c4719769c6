"""Latency of one job and one command on the embedded default, whole processes.

1. ``srun true`` from the submit host: median of ``--runs`` whole processes,
   next to the real SLURM's ``srun true`` (the oracle, when one runs here:
   root, ``sinfo`` answering) and ``python -S -c pass`` in the same run; and
   the same with ``FLEETSLURM_NO_FAST_PATH=1`` (the full path: the option
   tables, and a second srun inside the job runs step 0).
2. How soon a waiter learns of a job's end. The job's last command writes
   the time (``date +%s.%N``); the figure is the time from then until the
   waiter returned: ``sbatch -W`` (the shim, whole process: until it
   exited), ``Job.result()`` of the Executor (the call's own return time
   from inside the job) and DataBench's ``wait_for_jobs`` (in this process).
   Also ``sbatch -W --wrap true`` whole, and the same less the job's own run
   time as its record has it (what issue 17 calls sbatch -W's overhead).
3. The ``sbatch`` and ``squeue`` shims (``fleetslurm shims install``), per
   call, with a small queue (``--queue`` held jobs), next to
   ``python -S -c pass``.

Commands run with byte-compiled modules (``PYTHONDONTWRITEBYTECODE`` is
dropped), as an installed package has them. A fresh temporary
FLEETSLURM_HOME, no config; its controller is stopped at the end, and the
oracle's jobs are only those this script submits (srun's, which end).

Run: ``python benchmarks/bench_latency.py [--runs 21] [--queue 40]``. Not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model, median_ms, oracle_up  # benchmarks/, this script's directory


def stamp_job(marker: Path) -> str:
    """A job whose last command writes the time it ran."""
    return f"date +%s.%N > {marker}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--queue", type=int, default=40)
    ap.add_argument("--no-oracle", action="store_true")
    opts = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fleetslurm-lat-"))
    env = dict(os.environ, FLEETSLURM_HOME=str(root / "home"))
    for key in list(env):
        if key.startswith(("SLURM_", "SBATCH_", "SQUEUE_", "SRUN_")) or key in (
                "FLEETSLURM_CONFIG", "PYTHONDONTWRITEBYTECODE"):
            del env[key]
    work = root / "work"
    work.mkdir()
    fleet = [sys.executable, "-m", "fleetslurm.cli.main"]
    n = opts.runs
    figures: dict[str, float] = {}
    try:
        subprocess.run(fleet + ["controller", "start"], env=env, cwd=work, check=True,
                       stdout=subprocess.DEVNULL)
        os.environ["FLEETSLURM_HOME"] = env["FLEETSLURM_HOME"]
        from fleetslurm.shims import install_shims

        shims = root / "bin"
        install_shims(shims)
        sbatch, squeue, srun = (str(shims / c) for c in ("sbatch", "squeue", "srun"))
        # compile once (as an installed package is), and warm the caches
        for _ in range(3):
            subprocess.run([srun, "true"], env=env, cwd=work, check=True)
        held = []
        for _ in range(opts.queue):
            out = subprocess.run([sbatch, "--parsable", "-H", "-o", "/dev/null", "--wrap",
                                  "true"], env=env, cwd=work, check=True, text=True,
                                 capture_output=True).stdout
            held.append(out.strip())

        figures["py_S"] = median_ms([sys.executable, "-S", "-c", "pass"], n, env, work)
        figures["py"] = median_ms([sys.executable, "-c", "pass"], n, env, work)
        load0 = os.getloadavg()[0]
        figures["srun"] = median_ms([srun, "true"], n, env, work)
        figures["srun_full"] = median_ms([srun, "true"], n,
                                         dict(env, FLEETSLURM_NO_FAST_PATH="1"), work)
        figures["shim_squeue"] = median_ms([squeue], n, env, work)
        figures["shim_sbatch"] = median_ms([sbatch, "-o", "/dev/null", "--wrap", "true"], n,
                                           env, work)
        figures["sbatch_W"] = median_ms([sbatch, "-W", "-o", "/dev/null", "--wrap", "true"],
                                        n, env, work)

        # (2) from the job's last command to the waiter's return
        gaps: dict[str, list[float]] = {"sbatch_W": [], "result": [], "databench": [],
                                        "overhead": []}
        marker = work / "end-stamp"
        from fleetslurm.api.executor.client import FleetClient

        fc = FleetClient()
        for _ in range(n):
            t0 = time.time()
            out = subprocess.run([sbatch, "-W", "--parsable", "-o", "/dev/null", "--wrap",
                                  stamp_job(marker)], env=env, cwd=work, check=True,
                                 text=True, capture_output=True).stdout
            t1 = time.time()
            gaps["sbatch_W"].append(t1 - float(marker.read_text()))
            rec = fc.job(out.strip().splitlines()[-1])
            gaps["overhead"].append((t1 - t0) - (rec["end_time"] - rec["start_time"]))
        from fleetslurm.api.executor.executor import Executor

        ex = Executor()
        for _ in range(n):
            job = ex.submit(time.time)
            ended = job.result()
            gaps["result"].append(time.time() - ended)
        from fleetslurm.api.databench.bench import DataBenchSLURM

        db = DataBenchSLURM(store=root / "db.h5", output_dir=root / "out", data_dir=root / "data")
        for _ in range(n):
            jid = fc.submit(f"#!/bin/sh\n{stamp_job(marker)}\n",
                            {"output": "/dev/null"}, cwd=str(work))
            db.wait_for_jobs([jid], progress=False)
            gaps["databench"].append(time.time() - float(marker.read_text()))
        for k, v in gaps.items():
            figures["gap_" + k] = statistics.median(v) * 1000

        peer = None
        if not opts.no_oracle and oracle_up():
            oenv = {k: v for k, v in env.items() if k != "FLEETSLURM_HOME"}
            subprocess.run(["/usr/bin/srun", "true"], env=oenv, cwd=work, check=True)
            peer = median_ms(["/usr/bin/srun", "true"], n, oenv, work)
        subprocess.run(fleet + ["scancel", *held], env=env, cwd=work, check=False)
    finally:
        subprocess.run(fleet + ["controller", "stop"], env=env, cwd=work,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)

    f = figures
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, {platform.system()} {platform.release()}")
    print(f"all figures: median of {n} (whole processes unless said); load average "
          f"{load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"python -S -c pass: {f['py_S']:.1f} ms   python -c pass: {f['py']:.1f} ms")
    print(f"(1) srun true: {f['srun']:.1f} ms   real SLURM srun true: "
          + (f"{peer:.1f} ms" if peer is not None else "(no SLURM runs here)")
          + f"   full path (FLEETSLURM_NO_FAST_PATH=1): {f['srun_full']:.1f} ms")
    print(f"(2) sbatch -W --wrap true: {f['sbatch_W']:.1f} ms whole; over the job's own run "
          f"time: {f['gap_overhead']:.1f} ms")
    print(f"    from the job's last command to the waiter's return: sbatch -W (process "
          f"exit) {f['gap_sbatch_W']:.1f} ms, Job.result() {f['gap_result']:.1f} ms, "
          f"DataBench.wait_for_jobs {f['gap_databench']:.1f} ms")
    print(f"(3) shims, {opts.queue} jobs queued: sbatch {f['shim_sbatch']:.1f} ms, "
          f"squeue {f['shim_squeue']:.1f} ms per call   (python -S -c pass "
          f"{f['py_S']:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

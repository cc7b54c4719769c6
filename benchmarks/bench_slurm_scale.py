"""Arrays and accounting at scale, measured as a user runs the commands.

Every figure is whole processes: ``fleetslurm sbatch`` (the console script)
and the ``sbatch``/``squeue``/``sacct`` shims that ``fleetslurm shims install DIR``
writes, each started fresh, median of ``--runs``:

1. submission latency of a 10,000-task array (``sbatch --array=0-9999``;
   held, so the measurements that follow run on a quiet machine);
2. ``squeue`` with 10,000 pending tasks: one 10,000-task array, and 10,000
   separate held jobs (the harder case: 10,000 records), unchanged between
   calls and with one of them changed before each call (``scontrol update``
   of its Comment, not timed), plus ``squeue -r`` (one line per pending task)
   for information;
3. ``sacct -S <start>`` over 100,000 finished jobs, the window holding all
   of them (200,000 lines: each job and its ``.batch`` step) and ``-X``
   (allocations only), next to ``sacct -S`` of the last hour (1,000 of them).

Peers measured in the same run, where one runs here: ``python -c pass`` (the
interpreter's own start), and the real SLURM 22.05 on this machine (the
oracle, ``/work/oracle``; root only) for ``sbatch --array`` and ``squeue``.
Its MaxArraySize is 1001, so its submission figure is for a 1,001-task
array; its MaxJobCount (10,000) counts every pending task and the oracle is
shared, so its squeue peer has 5,000 pending tasks (five held 1,000-task
arrays), cancelled right after.
SLURM's ``sacct`` does not work there (no slurmdbd), so (3) has no peer.

How the 100,000 finished jobs get into the store (say so wherever a figure
is quoted): not by running them (about ten minutes here) but through the
Store API, in one transaction, with the same calls the controller makes for
a job that ran and ended (``add_job``, ``add_task``, ``update_task`` with
the start, node, allocation and exit code, ``add_step`` and ``update_step``
with its usage, ``log`` of the start and the end) -- rows the real code
writes, not hand-made SQL. Their end times are spread over the last 100,000
seconds (one a second) with ``--jobs`` jobs in all.

Commands run with byte-compiled modules, as an installed package has them
(``PYTHONDONTWRITEBYTECODE`` is dropped from their environment).

Run: ``python benchmarks/bench_slurm_scale.py [--runs 15] [--jobs 100000]
[--no-oracle]``. It uses a fresh temporary FLEETSLURM_HOME with a config
raising MaxArraySize to 100,001, and stops its controller. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model, oracle_up  # benchmarks/, this script's directory

ORACLE_SBATCH = "/usr/bin/sbatch"


def run(cmd: list[str], env: dict, cwd: Path) -> str:
    return subprocess.run(cmd, env=env, cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def median_ms(cmd: list[str], runs: int, env: dict, cwd: Path,
              before=None) -> tuple[float, str]:  # type: ignore[no-untyped-def]
    """Median wall time of ``runs`` fresh processes; also the last one's output."""
    times, out = [], ""
    for _ in range(runs):
        if before is not None:
            before()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"{cmd} failed ({proc.returncode}): {proc.stderr.strip()}")
        out = proc.stdout
    return statistics.median(times) * 1000, out


def fill_finished(home: Path, jobs: int, now: float) -> None:
    """``jobs`` finished jobs written through the Store API (see the module doc)."""
    from fleetslurm.store import Store
    from fleetslurm.views import user_name

    store = Store(home / "state.db")
    uid = os.getuid()
    user = user_name(uid)
    req = {"name": "wrap", "partition": "debug", "cpus": 1, "mem_mb": 0, "gpus": 0,
           "time_limit": None, "nice": 0, "nodelist": [], "exclude": [], "constraint": "",
           "begin_time": None, "dependency": "", "exclusive": False, "priority": 0}
    # as sbatch stores it: the submitter's environment (export ALL) is most of it
    spec = {"name": "wrap", "workdir": str(home), "array": None, "ntasks": 1,
            "cpus_per_task": 1, "account": "", "comment": "", "requeue": True,
            "env": {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}}
    script = "#!/bin/sh\n# This script was created by sbatch --wrap.\n\ntrue\n"
    with store.transaction():
        first = store.allocate_ids(jobs)
        for n in range(jobs):
            job_id = first + n
            end = now - (jobs - n)
            start = end - 1.0
            store.add_job(job_id, uid, user, start - 0.5, spec, script, None)
            store.add_task(job_id, job_id, None, req, start - 0.5, False)
            key = f"{job_id}.0"
            store.update_task(job_id, state="COMPLETED", node="localhost", alloc_cpus=1,
                              alloc_mem_mb=0, run_key=key, start_time=start, end_time=end,
                              exit_code=0, exit_signal=0, collected=1,
                              stdout=f"{home}/slurm-{job_id}.out",
                              stderr=f"{home}/slurm-{job_id}.out")
            store.add_step(key, job_id, "localhost", start)
            store.update_step(key, state="COMPLETED", end_time=end, exit_code=0, exit_signal=0,
                              user_cpu=0.01, system_cpu=0.01, max_rss_kb=2048)
            store.log(job_id, start, "start", f"localhost {key}")
            store.log(job_id, end, "end", "COMPLETED 0:0")
    store.close()


def wait_for_kept_lines(home: Path, timeout: float = 120.0) -> None:
    """The controller gives finished jobs their lines in sacct's default format a
    batch a second; a read-only look at the store says when it is done."""
    import sqlite3

    deadline = time.monotonic() + timeout
    db = sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True)
    try:
        while time.monotonic() < deadline:
            todo = db.execute("SELECT COUNT(*) FROM tasks WHERE acct_lines IS NULL "
                              "AND state = 'COMPLETED'").fetchone()[0]
            if not todo:
                return
            time.sleep(0.5)
    finally:
        db.close()


def oracle_peers(runs: int, cwd: Path) -> dict[str, float]:
    """The real SLURM's sbatch of a (held) 1,001-task array and its squeue with
    5,000 pending tasks (five held 1,000-task arrays). Cancels its own jobs."""
    env = dict(os.environ)
    for key in list(env):
        if key.startswith(("SLURM_", "SBATCH_", "SQUEUE_")):
            del env[key]
    mine: list[str] = []
    out: dict[str, float] = {}
    try:
        def sbatch() -> None:
            mine.append(run([ORACLE_SBATCH, "--parsable", "-H", "--array=0-1000", "-o",
                             "/dev/null", "--wrap", "true"], env, cwd).strip())
        times = []
        # three: a cancelled array's tasks count against MaxJobCount (10,000)
        # until MinJobAge (300 s) has passed, and the squeue peer needs 5,000
        for _ in range(3):
            t0 = time.perf_counter()
            sbatch()
            times.append(time.perf_counter() - t0)
        out["sbatch_1000"] = statistics.median(times) * 1000
        subprocess.run(["/usr/bin/scancel", *mine], env=env, check=False)
        mine.clear()
        for _ in range(5):
            mine.append(run([ORACLE_SBATCH, "--parsable", "-H", "--array=0-999", "-o",
                             "/dev/null", "--wrap", "true"], env, cwd).strip())
        ids = ",".join(mine)
        out["squeue_5000"], text = median_ms(["/usr/bin/squeue", "-j", ids], runs, env, cwd)
        out["squeue_lines"] = float(len(text.splitlines()) - 1)
    finally:
        if mine:
            subprocess.run(["/usr/bin/scancel", *mine], env=env, check=False)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--jobs", type=int, default=100_000, help="finished jobs for sacct")
    ap.add_argument("--no-oracle", action="store_true", help="skip the real SLURM peer")
    opts = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fleetslurm-scale-"))
    home, work, shims = root / "home", root / "work", root / "bin"
    work.mkdir()
    home.mkdir(mode=0o700)
    config = {"cluster_name": "bench", "max_array_size": 100_001,
              "partitions": {"debug": {"default": True}},
              "machines": {"localhost": {"transport": "local", "cpus": 2, "memory_gb": 4,
                                         "hostname": "localhost"}}}
    (root / "fleet_config.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "SBATCH_", "SQUEUE_", "SACCT_"))}
    env.update(FLEETSLURM_HOME=str(home), FLEETSLURM_CONFIG=str(root / "fleet_config.json"))
    # byte-compiled modules, as an installed package has them (a development
    # shell may turn that off, and then every command recompiles what it imports)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    exe = shutil.which("fleetslurm") or "fleetslurm"
    now = time.time()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()}), "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    print(f"filling the store with {opts.jobs:,} finished jobs through the Store API ...",
          flush=True)
    t0 = time.perf_counter()
    fill_finished(home, opts.jobs, now)
    print(f"  done in {time.perf_counter() - t0:.1f} s")
    try:
        run([exe, "controller", "start"], env, work)
        run([exe, "shims", "install", str(shims)], env, work)
        wait_for_kept_lines(home)
        sb, sq, sa = str(shims / "sbatch"), str(shims / "squeue"), str(shims / "sacct")
        figures: dict[str, float] = {}
        figures["python"], _ = median_ms([sys.executable, "-c", "pass"], opts.runs, env, work)
        # (3) sacct over the finished jobs (first: only they are in the store)
        start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now - opts.jobs - 10))
        hour = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now - 1000))
        figures["sacct_all"], out = median_ms([sa, "-S", start], opts.runs, env, work)
        lines_sacct = len(out.splitlines()) - 2
        figures["sacct_X"], out = median_ms([sa, "-X", "-S", start], opts.runs, env, work)
        lines_sacct_x = len(out.splitlines()) - 2
        figures["sacct_hour"], out = median_ms([sa, "-S", hour], opts.runs, env, work)
        lines_hour = len(out.splitlines()) - 2

        figures["sbatch_plain"], _ = median_ms([exe, "sbatch", "-H", "--wrap", "true"],
                                               opts.runs, env, work)
        cmd = ["-H", "--array=0-9999", "-o", "/dev/null", "--wrap", "true"]
        figures["sbatch_array"], _ = median_ms([exe, "sbatch", *cmd], opts.runs, env, work)
        figures["sbatch_array_shim"], _ = median_ms([sb, *cmd], opts.runs, env, work)
        # (2) one 10,000-task array pending, then 10,000 separate held jobs
        run([exe, "scancel", "-t", "PD", "--me"], env, work)
        array_id = run([sb, "--parsable", *cmd], env, work).strip()
        time.sleep(1.0)
        figures["squeue_array"], out = median_ms([sq], opts.runs, env, work)
        lines_array = len(out.splitlines()) - 1
        figures["squeue_r"], out = median_ms([sq, "-r"], max(3, opts.runs // 3), env, work)
        lines_r = len(out.splitlines()) - 1
        run([exe, "scancel", array_id], env, work)
        os.environ.update(FLEETSLURM_HOME=env["FLEETSLURM_HOME"],
                          FLEETSLURM_CONFIG=env["FLEETSLURM_CONFIG"])
        from fleetslurm.rpc import connect

        with connect() as c:  # 10,000 jobs over one connection, as the Python API submits
            submitted = [c.call("submit", options={"wrap": "true", "hold": True,
                                                   "output": "/dev/null"},
                                script="#!/bin/sh\ntrue\n", script_args=[], env={},
                                cwd=str(work), submit_host=platform.node(),
                                script_name="wrap")["job_id"] for _ in range(10_000)]
        time.sleep(1.0)
        figures["squeue_jobs"], out = median_ms([sq], opts.runs, env, work)
        lines_jobs = len(out.splitlines()) - 1
        # the same with one job changed before each call (scontrol update of its
        # Comment): the queue's last text no longer holds, and that job's record
        # and line are made again (the other 9,999 are kept)
        touched = iter(range(1_000_000))

        def touch() -> None:
            with connect() as c:
                c.call("update_job", ids=[str(submitted[0])],
                       fields={"Comment": f"bench{next(touched)}"})

        figures["squeue_jobs_changed"], _ = median_ms([sq], opts.runs, env, work, before=touch)
        run([exe, "scancel", "-t", "PD", "--me"], env, work)
        peers: dict[str, float] = {}
        slurm = "real SLURM: not measured (oracle not running, or not root)"
        if not opts.no_oracle and oracle_up(ORACLE_SBATCH):
            try:
                peers = oracle_peers(opts.runs, work)
            except subprocess.CalledProcessError as exc:
                # a busy oracle refuses jobs (MaxJobCount): fleetslurm's figures stand
                slurm = f"real SLURM: not measured ({(exc.stderr or '').strip()[-200:]})"
    finally:
        subprocess.run([exe, "controller", "stop"], env=env, cwd=work,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)
    f, n = figures, opts.runs
    py = f"python -c pass {f['python']:.1f} ms"
    print(f"\nall figures: median of {n} whole processes (squeue -r: of {max(3, n // 3)})")
    print(f"(1) sbatch --array=0-9999 (held): fleetslurm {f['sbatch_array']:.1f} ms, "
          f"sbatch shim {f['sbatch_array_shim']:.1f} ms   [target < 500 ms]")
    print(f"    peers: plain fleetslurm sbatch {f['sbatch_plain']:.1f} ms; {py}; "
          + (f"real SLURM sbatch --array=0-1000, held (its MaxArraySize is 1001) "
             f"{peers['sbatch_1000']:.1f} ms (median of 3)" if peers else slurm))
    print(f"(2) squeue, 10,000 pending tasks in one array: {f['squeue_array']:.1f} ms "
          f"({lines_array} line)   [target <= 150 ms]")
    print(f"    squeue, 10,000 separate pending jobs: {f['squeue_jobs']:.1f} ms "
          f"({lines_jobs} lines; the queue unchanged between calls)")
    print(f"    the same, one job changed before each call: {f['squeue_jobs_changed']:.1f} ms")
    print(f"    squeue -r, one line per pending task: {f['squeue_r']:.1f} ms ({lines_r} lines)")
    print("    peer: " + (f"real SLURM squeue, 5,000 pending tasks (five 1,000-task arrays): "
                          f"{peers['squeue_5000']:.1f} ms ({peers['squeue_lines']:.0f} lines)"
                          if peers else slurm))
    print(f"(3) sacct -S over {opts.jobs:,} finished jobs (Store API fill): "
          f"{f['sacct_all']:.1f} ms ({lines_sacct:,} lines)   [target <= 500 ms]")
    print(f"    sacct -X -S (allocations only): {f['sacct_X']:.1f} ms ({lines_sacct_x:,} lines)")
    print(f"    sacct -S of the last 1,000 s: {f['sacct_hour']:.1f} ms ({lines_hour:,} lines)")
    print("    peer: none (SLURM's sacct needs slurmdbd, which the oracle does not run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

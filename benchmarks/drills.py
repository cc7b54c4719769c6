"""Reliability drills on the loopback sshd fleet: load, crashes, bad input.

Starts four real sshd "machines" on loopback (the multi-machine tests'
fixture: 127.0.0.2-5, each with its own host key, port and workdir), a
controller for them, and runs three drills. Every job leaves a file of its
own for each run (``runs/<job id>.<random>``), so the figures count what
ran, not what the controller says ran.

1. **Load**: ``--submitters`` processes each run ``--per-submitter`` sbatch
   commands at once. Figures: submissions, distinct ids, jobs COMPLETED,
   jobs whose run file exists.
2. **Controller kill -9**: ``--crash-jobs`` short jobs are submitted, and the
   controller is killed with SIGKILL ``--kills`` times while they run (the
   next command starts a new one). Figures: jobs lost (not COMPLETED, or no
   run file), jobs run twice without a requeue (more run files than
   ``restart_count + 1``).
3. **Bad input**: a table of malformed sbatch options and scripts, each
   given to ``sbatch``. Figures: cases tried, cases that printed a Python
   traceback or "internal error", cases that exited 0, and whether the
   controller still answers afterwards.

Run: ``python benchmarks/drills.py [--submitters 10 --per-submitter 40
--crash-jobs 300 --kills 3]`` (needs openssh-server). Exits 1 when a drill
lost, doubled or crashed anything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests_multi_machine.sshd_machines import SshdPool  # noqa: E402

FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}

#: sbatch arguments that must be refused (or, for the few SLURM accepts, run),
#: never answered with a traceback or an internal error
BAD_OPTIONS: list[list[str]] = [
    ["--time=abc"], ["--time=-5"], ["--time=99999999999999999999"], ["-t", "1:2:3:4"],
    ["--mem=-1"], ["--mem=1Q"], ["--mem=99999999999999999999T"], ["--mem="],
    ["-c", "0"], ["-c", "-3"], ["-c", "99999999999999999999"], ["-c", "x"],
    ["-N", "0"], ["-N", "a-b"], ["-n", "-1"], ["--gpus=-1"], ["--gpus=x:y:z"],
    ["--array=5-1"], ["--array=0-99999999999"], ["--array=1-3%0"], ["--array=,,"],
    ["--array=1:2:3"], ["--dependency=afterok:x"], ["--dependency=afterok:9223372036854775808"],
    ["--dependency=nonsense:1"], ["--dependency=afterok:"], ["--begin=never"],
    ["--begin=now+99999999999999999999"], ["--begin=2026-13-45"], ["--nice=99999999999"],
    ["--nice=x"], ["--export=ALL,=x"], ["--export==="], ["--export=NONE,A"],
    ["-o", ""], ["-o", "/proc/forbidden/%j"], ["-e", "%"], ["-J", "x" * 5000],
    ["--partition="], ["--partition=nosuch"], ["-w", "nosuchnode"], ["-w", "m[1-"],
    ["-x", "]["], ["--constraint=&&"], ["--mail-type=bogus"], ["--signal=XYZ@10"],
    ["--signal=B:USR1@-5"], ["--open-mode=sideways"], ["--kill-on-invalid-dep=maybe"],
    ["--requeue=x"], ["--chdir=/nonexistent/dir"], ["--cpus-per-gpu=0"], ["--wckey="],
    ["--umask=999"], ["--umask=x"], ["--priority=-1"], ["--exclusive=wrong"],
    ["--ntasks-per-node=0"], ["--mem-per-cpu=-1"], ["--mem=1G", "--mem-per-cpu=1G"],
    ["--tmp=-1"], ["--deadline=yesterday"], ["--comment=" + "\x01\x02"],
    ["-J", "a\nb"], ["--nodelist=" + "m1," * 2000], ["--unknown-option"], ["-Z"],
]


def fleet(machines, home: Path, base: Path, work: Path) -> dict:
    """The environment of the drills' fleet (its config and state directory)."""
    home.mkdir(mode=0o700)
    cfg = {"cluster_name": "drills", "heartbeat_interval": 1,
           # each drill's fleet its own workdir: one fleet per workdir
           "machines": {m.name: m.config_entry(shared_fs=False,
                                               workdir=f"{m.workdir}-{base.name}")
                        for m in machines}}
    path = base / "fleet_config.json"
    path.write_text(json.dumps(cfg))
    (home / "known_hosts").write_text("".join(m.known_hosts_line + "\n" for m in machines))
    work.mkdir()
    return dict(os.environ, FLEETSLURM_HOME=str(home), FLEETSLURM_CONFIG=str(path))


def cli(env: dict, cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", *args], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def job_script(runs: Path, seconds: float) -> str:
    """A job that leaves one file per run (mktemp: never the same name twice)."""
    return f"mktemp {runs}/$SLURM_JOB_ID.XXXXXX >/dev/null; sleep {seconds}"


def records(home: Path) -> list[dict]:
    from fleetslurm.paths import StatePaths
    from fleetslurm.rpc import connect

    with connect(StatePaths(home)) as c:
        return c.call("jobs", steps=False)


def wait_all_final(home: Path, env: dict, work: Path, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        cli(env, work, "squeue", "-h")  # starts a controller if none runs
        recs = records(home)
        if all(r["state"] in FINAL for r in recs):
            return recs
        if time.monotonic() > deadline:
            return recs
        time.sleep(0.5)


def run_counts(runs: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    for f in runs.iterdir():
        job = int(f.name.split(".")[0])
        counts[job] = counts.get(job, 0) + 1
    return counts


def controller_pid(home: Path) -> "int | None":
    try:
        return int((home / "controller.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def drill_load(env: dict, home: Path, work: Path, runs: Path, submitters: int,
               per: int) -> dict:
    def submitter(i: int) -> list[int]:
        ids = []
        for _ in range(per):
            proc = cli(env, work, "sbatch", "--parsable", "-o", "/dev/null",
                       "--wrap", job_script(runs, 0))
            if proc.returncode == 0:
                ids.append(int(proc.stdout.strip().split(";")[0]))
        return ids

    t0 = time.perf_counter()
    with ThreadPoolExecutor(submitters) as pool:
        ids = [j for part in pool.map(submitter, range(submitters)) for j in part]
    recs = {r["job_id"]: r for r in wait_all_final(home, env, work, 600)}
    counts = run_counts(runs)
    return {"submitted": submitters * per, "accepted": len(ids), "distinct ids": len(set(ids)),
            "completed": sum(recs.get(j, {}).get("state") == "COMPLETED" for j in ids),
            "ran (file found)": sum(j in counts for j in ids),
            "seconds": round(time.perf_counter() - t0, 1)}


def drill_kill(env: dict, home: Path, work: Path, runs: Path, jobs: int, kills: int) -> dict:
    """Submit ``jobs`` jobs one after another while another thread kills the
    controller with SIGKILL ``kills`` times, 2 s apart (the next command
    starts a new controller, as a user's would)."""
    import threading

    done_kills = [0]
    submitting = threading.Event()
    submitting.set()

    def killer() -> None:
        for _ in range(kills):
            time.sleep(2)
            if not submitting.is_set():
                return
            pid = controller_pid(home)
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                    done_kills[0] += 1
                except ProcessLookupError:
                    pass

    thread = threading.Thread(target=killer)
    thread.start()
    ids, refused = [], 0
    try:
        for _ in range(jobs):
            proc = cli(env, work, "sbatch", "--parsable", "-o", "/dev/null",
                       "--wrap", job_script(runs, 0.5))
            if proc.returncode == 0:
                ids.append(int(proc.stdout.strip()))
            else:
                refused += 1  # the controller died under this very command
    finally:
        submitting.clear()
        thread.join()
    recs = {r["job_id"]: r for r in wait_all_final(home, env, work, 900)}
    counts = run_counts(runs)
    lost = [j for j in ids if recs.get(j, {}).get("state") != "COMPLETED" or j not in counts]
    doubled = [j for j in ids if counts.get(j, 0) > recs.get(j, {}).get("restart_count", 0) + 1]
    # a refused sbatch must have stored nothing: every job that ran was accepted
    strays = sorted(set(counts) - set(ids))
    # and recorded nothing either (a job stored while its sbatch said it failed
    # would run once its user, told otherwise, submitted it again)
    unreported = sorted(set(recs) - set(ids))
    return {"jobs": len(ids), "sbatch refused while killed": refused, "kills": done_kills[0],
            "lost": len(lost), "doubled": len(doubled), "ran but never accepted": len(strays),
            "stored but reported refused": len(unreported),
            "requeued": sum(recs.get(j, {}).get("restart_count", 0) > 0 for j in ids)}


def drill_bad_input(env: dict, work: Path) -> dict:
    tracebacks, internal, zero = [], [], []
    cases = [opts + ["--wrap", "true"] for opts in BAD_OPTIONS]
    # malformed scripts: binary, no interpreter line, an #SBATCH line that is bad
    scripts = [b"\x00\x01\x02", b"echo no shebang\n", b"#!/bin/sh\n#SBATCH --time=abc\ntrue\n",
               b"#!/bin/sh\n#SBATCH -c 0\ntrue\n", b"\xff\xfe#!/bin/sh\n",
               b"#!/bin/sh\n#SBATCH --array=9-1\n"]
    for i, body in enumerate(scripts):
        path = work / f"bad-{i}.sh"
        path.write_bytes(body)
        cases.append([str(path)])
    for args in cases:
        proc = cli(env, work, "sbatch", "-o", "/dev/null", *args)
        text = proc.stdout + proc.stderr
        if "Traceback" in text:
            tracebacks.append(args)
        if "internal error" in text.lower():
            internal.append(args)
        if proc.returncode == 0:
            zero.append(args)
    alive = cli(env, work, "squeue", "-h").returncode == 0
    figures = {"cases": len(cases), "tracebacks": len(tracebacks),
               "internal errors": len(internal), "accepted (exit 0)": len(zero),
               "controller answers after": alive}
    if slurm_answers():
        # the same cases given to the real SLURM (held, then cancelled): which
        # does it accept? A difference is a place to look, not always a bug
        # (its node and partition names are not the fleet's)
        differ = [args for args in cases
                  if (real_sbatch_accepts(args, work)) != (args in zero)]
        figures["same accept/refuse as real SLURM"] = f"{len(cases) - len(differ)}/{len(cases)}"
        for args in differ:
            print(f"  real SLURM {'refuses' if args in zero else 'accepts'}: sbatch {_shown(args)}")
    for args in tracebacks + internal:
        print(f"  bad input gave a traceback or internal error: sbatch {args}")
    for args in zero:
        print(f"  accepted: sbatch {_shown(args)}")
    return figures


SLURM_BIN = Path("/usr/bin")


def _shown(args: list[str]) -> str:
    return " ".join(repr(a)[1:-1] if len(a) < 40 else repr(a[:37])[1:-1] + "..." for a in args)


def slurm_answers() -> bool:
    """Is a real SLURM up here (the differential suite's oracle)?"""
    try:
        return subprocess.run([str(SLURM_BIN / "sinfo"), "-h"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def real_sbatch_accepts(args: list[str], work: Path) -> bool:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    proc = subprocess.run([str(SLURM_BIN / "sbatch"), "-H", "--parsable", "-o", "/dev/null",
                           *args], capture_output=True, text=True, cwd=work, env=env,
                          timeout=60)
    if proc.returncode == 0 and proc.stdout.strip():
        subprocess.run([str(SLURM_BIN / "scancel"), proc.stdout.strip().split(";")[0]],
                       capture_output=True, timeout=60)
    return proc.returncode == 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--submitters", type=int, default=10)
    ap.add_argument("--per-submitter", type=int, default=40)
    ap.add_argument("--crash-jobs", type=int, default=300)
    ap.add_argument("--kills", type=int, default=3)
    opts = ap.parse_args()
    if not Path("/usr/sbin/sshd").exists():
        print("needs openssh-server: apt-get install openssh-server")
        return 2
    from benchmarks.machine import cpu_model

    base = Path(tempfile.mkdtemp(prefix="fleetslurm-drills-"))
    (base / "sshd").mkdir()
    pool = SshdPool(base / "sshd")
    failed = False
    try:
        machines = pool.get(4)
        print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs "
              f"({cpu_model()}), Python {platform.python_version()}; 4 sshd on loopback")
        for name, drill in (
                ("load", lambda env, home, work, runs: drill_load(
                    env, home, work, runs, opts.submitters, opts.per_submitter)),
                ("kill -9", lambda env, home, work, runs: drill_kill(
                    env, home, work, runs, opts.crash_jobs, opts.kills)),
                ("bad input", lambda env, home, work, runs: drill_bad_input(env, work))):
            root = base / name.replace(" ", "-")
            home, work, runs = root / "home", root / "work", root / "runs"
            runs.mkdir(parents=True)
            env = fleet(machines, home, root, work)
            try:
                figures = drill(env, home, work, runs)
            finally:
                cli(env, work, "controller", "stop")
            print(f"{name:10s} " + ", ".join(f"{k} {v}" for k, v in figures.items()), flush=True)
            failed |= bool(figures.get("lost") or figures.get("doubled")
                           or figures.get("ran but never accepted")
                           or figures.get("stored but reported refused")
                           or figures.get("tracebacks") or figures.get("internal errors")
                           or figures.get("controller answers after") is False
                           or figures.get("ran (file found)", figures.get("accepted"))
                           != figures.get("accepted"))
    finally:
        pool.shutdown()
        shutil.rmtree(base, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

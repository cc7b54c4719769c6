"""Signals, time and requeue, end to end: ``--signal=[B:]SIG@secs``,
``scancel --signal``, KillWait and ``scontrol requeue`` from inside a job, with
SLURM 22.05's messages and exit statuses (checked on the oracle)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


def test_signal_before_the_time_limit(wide_fleet):
    """--signal=[B:]USR2@55 with a one-minute limit arrives about 5 s after the
    start: B: to the batch shell only, without B: to the srun steps only."""
    fleet = wide_fleet
    trap = ("trap 'date +%s > {who}.at; echo {who} got USR2; exit 0' USR2; "
            "while :; do sleep 0.2; done")
    batch = fleet.sbatch("-t", "1", "--signal=B:USR2@55", "--wrap", trap.format(who="batch"))
    step = fleet.sbatch("-t", "1", "--signal=USR2@55", "--wrap",
                        f"trap 'echo batch got USR2' USR2; srun sh -c \"{trap.format(who='step')}\"")
    untrapped = fleet.sbatch("-t", "1", "--signal=B:USR2@55", "--wrap", "sleep 300")
    for job, who in ((batch, "batch"), (step, "step")):
        rec = fleet.wait(job, timeout=40)
        assert rec["state"] == "COMPLETED", rec
        # the signal reaches the whole step (as in SLURM), so sh may first
        # report its `sleep` killed by it
        out = (fleet.work / f"slurm-{job}.out").read_text()
        assert out.replace("User defined signal 2\n", "") == f"{who} got USR2\n", out
        delay = int((fleet.work / f"{who}.at").read_text()) - rec["start_time"]
        assert 3 <= delay <= 20, delay  # 60 - 55 s after the start, well before the limit
    # the batch shell's default action for USR2 ends the job, before any TIMEOUT
    rec = fleet.wait(untrapped, timeout=40)
    assert (rec["state"], rec["exit_code"], rec["exit_signal"]) == ("FAILED", 0, 12), rec


def test_scancel_signal_messages(fleet):
    pending = fleet.sbatch("--hold", "--wrap", "true")
    proc = fleet.run("scancel", "--signal=USR1", str(pending))
    assert (proc.returncode, proc.stderr) == (
        228, f"scancel: error: Kill job error on job id {pending}: Job can not be altered "
             "now, try again later\n")
    proc = fleet.run("scancel", "-s", "BOGUS", str(pending))
    assert (proc.returncode, proc.stderr) == (1, "Unknown job signal: BOGUS\n")
    assert fleet.record(pending)["state"] == "PENDING"
    fleet.run("scancel", str(pending), check=True)
    proc = fleet.run("scancel", "--signal=USR1", str(pending))
    assert (proc.returncode, proc.stderr) == (
        1, f"scancel: error: Kill job error on job id {pending}: Invalid job id specified\n")
    proc = fleet.run("scancel", "--signal=USR1", "99999")
    assert (proc.returncode, proc.stderr) == (
        1, "scancel: error: Kill job error on job id 99999: Invalid job id specified\n")
    # without --signal an unknown id is silent, as 22.05 does
    assert fleet.run("scancel", "99999").returncode == 0


def test_killwait_after_scancel(fleet):
    """A job that ignores SIGTERM is killed KillWait (2 s here) later."""
    job = fleet.sbatch("--wrap", "trap 'echo got TERM' TERM; while :; do sleep 0.1; done")
    fleet.wait(job, {"RUNNING"})
    time.sleep(1)
    t0 = time.time()
    fleet.run("scancel", str(job), check=True)
    rec = fleet.wait(job, timeout=30)
    assert rec["state"] == "CANCELLED"
    assert 1.5 <= rec["end_time"] - t0 <= 10, rec["end_time"] - t0
    # SIGTERM goes to the job's process group (sh may report its `sleep` first)
    out = (fleet.work / f"slurm-{job}.out").read_text()
    # and slurmstepd's line for the cancel, as SLURM 22.05 writes it
    note = re.search(rf"^slurmstepd-\S+: error: \*\*\* JOB {job} ON \S+ CANCELLED AT \S+ \*\*\*\n",
                     out, re.M)
    assert note, out
    assert out.replace(note.group(0), "").replace("Terminated\n", "") == "got TERM\n", out
    steps = fleet.run("sacct", "-P", "-n", "-j", str(job), "-o", "jobid,state,exitcode",
                      check=True).stdout
    assert steps == f"{job}|CANCELLED by {os.getuid()}|0:0\n{job}.batch|CANCELLED|0:9\n"


def test_requeue_from_inside_the_job(fleet):
    """The oracle's output for the same script (its slurmstepd line aside):
    the job gets SIGTERM, scontrol returns 0, the old run's exit 7 counts for
    nothing, and the job is PENDING (BeginTime) under the same id, then runs
    again with SLURM_RESTART_COUNT=1 appending to its log."""
    script = fleet.work / "rq.sh"
    script.write_text("""#!/bin/sh
#SBATCH --open-mode=append
#SBATCH -o rq-%j.out
echo "start restart=${SLURM_RESTART_COUNT:-none}"
if [ -z "$SLURM_RESTART_COUNT" ]; then
  trap 'echo got TERM' TERM
  scontrol requeue $SLURM_JOB_ID; echo "requeue rc=$?"
  sleep 1; echo still-here
  exit 7
fi
echo second run
""")
    job = fleet.sbatch(str(script))
    seen = []
    deadline = time.monotonic() + 60
    while True:
        rec = fleet.record(job)
        seen.append((rec["state"], rec["reason"], rec["restart_count"]))
        if rec["state"] == "COMPLETED" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rec["state"] == "COMPLETED" and rec["restart_count"] == 1, seen
    assert ("PENDING", "BeginTime", 1) in seen, seen
    assert not any(state == "FAILED" for state, _, _ in seen)
    # slurmstepd's line for the requeue comes first, before the job sees SIGTERM
    assert re.fullmatch(
        rf"start restart=none\nslurmstepd-\S+: error: \*\*\* JOB {job} ON \S+ CANCELLED AT "
        r"\S+ DUE TO JOB REQUEUE \*\*\*\ngot TERM\nrequeue rc=0\nstill-here\n"
        r"start restart=1\nsecond run\n", (fleet.work / f"rq-{job}.out").read_text())
    assert fleet.run("sacct", "-X", "-P", "-n", "-j", str(job), "-o", "jobid,state,exitcode",
                     check=True).stdout == f"{job}|COMPLETED|0:0\n"
    show = fleet.run("scontrol", "show", "job", str(job), check=True).stdout
    assert "Restarts=1" in show


def test_requeue_refusals(fleet):
    pending = fleet.sbatch("--hold", "--wrap", "true")
    proc = fleet.run("scontrol", "requeue", str(pending))
    assert (proc.returncode, proc.stderr) == (1, f"Job is pending execution for job {pending}\n")
    never = fleet.sbatch("--no-requeue", "--wrap", "sleep 30")
    fleet.wait(never, {"RUNNING"})
    proc = fleet.run("scontrol", "requeue", str(never))
    assert (proc.returncode, proc.stderr) == (
        1, f"Requested operation is presently disabled for job {never}\n")
    assert fleet.record(never)["state"] == "RUNNING"
    fleet.run("scancel", str(never), str(pending), check=True)


def test_requeuehold_keeps_it_pending_until_released(fleet):
    job = fleet.sbatch("--open-mode=append", "--wrap",
                       'echo run${SLURM_RESTART_COUNT:-0}; sleep 30')
    fleet.wait(job, {"RUNNING"})
    fleet.run("scontrol", "requeuehold", str(job), check=True)
    time.sleep(5)  # past the requeue's BeginTime
    rec = fleet.record(job)
    # SLURM 22.05's reason for it (squeue shows it with spaces)
    assert (rec["state"], rec["reason"], rec["restart_count"]) == \
        ("PENDING", "job requeued in held state", 1)
    fleet.run("scontrol", "release", str(job), check=True)
    fleet.wait(job, {"RUNNING"}, timeout=30)
    fleet.run("scancel", str(job), check=True)
    fleet.wait(job)
    out = (fleet.work / f"slurm-{job}.out").read_text()
    # slurmstepd's lines for the requeue and the cancel, as SLURM 22.05 writes them
    assert re.fullmatch(
        rf"run0\nslurmstepd-\S+: error: \*\*\* JOB {job} ON \S+ CANCELLED AT \S+ DUE TO JOB "
        rf"REQUEUE \*\*\*\nrun1\nslurmstepd-\S+: error: \*\*\* JOB {job} ON \S+ CANCELLED AT "
        r"\S+ \*\*\*\n", out), out


def test_commands_inside_a_job_that_cannot_reach_its_controller(tmp_path):
    """A job on a remote machine (no controller socket there) gets a clear error
    from scontrol, and no controller of its own is started there."""
    import subprocess
    import sys

    home = tmp_path / "remote-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "FLEETSLURM_"))}
    env.update(FLEETSLURM_HOME=str(home), FLEETSLURM_STEPS_DIR=str(tmp_path / "steps"),
               SLURM_JOB_ID="5")
    proc = subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", "scontrol", "requeue",
                           "5"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("scontrol: error: no controller answers at ")
    assert "cannot reach the controller that started it" in proc.stderr
    assert not (home / "controller.pid").exists()


def test_a_controller_started_by_a_command_holding_sigterm_can_be_stopped(fleet):
    """scontrol requeue from inside a job holds SIGTERM back; a controller that
    a command started while holding it must not inherit the mask (it could
    then never be stopped by SIGTERM)."""
    code = ("import signal, subprocess, sys; "
            "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM}); "
            "sys.exit(subprocess.run([sys.executable, '-m', 'fleetslurm.cli.main', "
            "'squeue']).returncode)")
    proc = subprocess.run([sys.executable, "-c", code], env=fleet.env, cwd=fleet.work,
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    pid = fleet.controller_pid()
    status = Path(f"/proc/{pid}/status").read_text()
    blocked = int(re.search(r"^SigBlk:\s*([0-9a-f]+)", status, re.M).group(1), 16)
    assert not blocked & (1 << (signal.SIGTERM - 1)), status
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists() or \
        "zombie" in Path(f"/proc/{pid}/status").read_text()

"""A job over its --mem, as SLURM 22.05 reports a cgroup OOM kill (node/agent/oom.py):
slurmstepd's line in the job's stderr, OUT_OF_MEMORY with ExitCode 0:125 in
squeue, sacct and scontrol; an srun step's tasks killed with srun's lines."""

from __future__ import annotations

import sys

from tests.conftest import Fleet

HOG = (f"{sys.executable} -c \"import time; b = bytearray(300 << 20); "
       "b[::4096] = b'x' * len(b[::4096]); time.sleep(30)\"")


def test_batch_oom_line_state_and_exit_code(fleet: Fleet) -> None:
    job = fleet.sbatch("--mem=100M", "--wrap", f"echo before; {HOG}; echo after")
    rec = fleet.wait(job, timeout=60)
    assert (rec["state"], rec["exit_code"], rec["exit_signal"]) == ("OUT_OF_MEMORY", 0, 125), rec
    out = (fleet.work / f"slurm-{job}.out").read_text()
    assert out == (f"before\nslurmstepd-localhost: error: Detected 1 oom-kill event(s) in "
                   f"StepId={job}.batch. Some of your processes may have been killed by the "
                   "cgroup out-of-memory handler.\n"), out
    show = fleet.run("scontrol", "show", "job", str(job), check=True).stdout
    assert "JobState=OUT_OF_MEMORY Reason=OutOfMemory" in show, show
    assert " ExitCode=0:125" in show, show
    sacct = fleet.run("sacct", "-j", str(job), "-n", "-P", "-o", "JobID,State,ExitCode",
                      check=True).stdout.splitlines()
    assert sacct[:2] == [f"{job}|OUT_OF_MEMORY|0:125", f"{job}.batch|OUT_OF_MEMORY|0:125"], sacct
    squeue = fleet.run("squeue", "-h", "-t", "all", "-j", str(job), "-o", "%T %t",
                       check=True).stdout
    assert squeue == "OUT_OF_MEMORY OOM\n"


def test_srun_step_oom(fleet: Fleet) -> None:
    """The step's tasks die, srun says so and exits 1; the batch script goes
    on (as under SLURM, where the OOM killer hit the step's processes)."""
    script = fleet.work / "step.sh"
    script.write_text(f"#!/bin/sh\nsrun {HOG}\necho srun=$?\n")
    job = fleet.sbatch("--mem=100M", "-e", "err-%j", str(script))
    rec = fleet.wait(job, timeout=60)
    assert rec["state"] == "COMPLETED", rec
    assert (fleet.work / f"slurm-{job}.out").read_text() == "srun=1\n"
    err = (fleet.work / f"err-{job}").read_text()
    assert err == (f"slurmstepd-localhost: error: Detected 1 oom-kill event(s) in StepId={job}.0. "
                   "Some of your processes may have been killed by the cgroup out-of-memory "
                   "handler.\nsrun: error: localhost: task 0: Out Of Memory\n"), err
    sacct = fleet.run("sacct", "-j", str(job), "-n", "-P", "-o", "JobID,State,ExitCode",
                      check=True).stdout.splitlines()
    assert f"{job}.0|OUT_OF_MEMORY|0:125" in sacct, sacct
    assert f"{job}|COMPLETED|0:0" in sacct, sacct


def test_srun_outside_a_job_oom(fleet: Fleet) -> None:
    """srun making its own job: its step 0 is killed for memory, srun prints
    slurmstepd's and its own line and exits 1 (srun.c: SIG_OOM -> 1)."""
    proc = fleet.run("srun", "--mem=100M", "sh", "-c", HOG, timeout=90)
    assert proc.returncode == 1, proc
    assert "error: Detected 1 oom-kill event(s) in StepId=" in proc.stderr, proc.stderr
    assert proc.stderr.rstrip().endswith("srun: error: localhost: task 0: Out Of Memory"), \
        proc.stderr


def test_the_oom_record_follows_no_link_and_waits_on_no_fifo(tmp_path) -> None:
    """The job's directory is its user's while it runs, and a root supervisor
    writes the OOM record there: a symlink or a hard link planted as that
    file is not written through, a FIFO does not block the supervisor (which
    would then enforce nothing for the job), and the steps are killed all
    the same; with nothing planted the record is made, readable by srun."""
    import os
    import subprocess
    import time

    from fleetslurm.node.agent import oom

    target = tmp_path / "not-the-jobs"
    target.write_text("keep\n")
    for plant in ("symlink", "hardlink", "fifo", None):
        jobdir = tmp_path / str(plant)
        jobdir.mkdir()
        record = jobdir / oom.OOM_FILE
        if plant == "symlink":
            record.symlink_to(target)
        elif plant == "hardlink":
            os.link(target, record)
        elif plant == "fifo":
            os.mkfifo(record)
        step = subprocess.Popen(["sleep", "60"], start_new_session=True)
        try:
            t0 = time.monotonic()
            assert oom.kill_steps_first(str(jobdir), [step.pid], set()) is True
            assert time.monotonic() - t0 < 5  # (blocked for good before)
            assert step.wait(timeout=10) == -9
        finally:
            step.kill()
            step.wait()
        assert target.read_text() == "keep\n"
        if plant is None:
            assert record.read_text() == f"{step.pid}\n"
            assert record.stat().st_mode & 0o777 == 0o644

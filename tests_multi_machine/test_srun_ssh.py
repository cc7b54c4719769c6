"""srun and scontrol inside jobs on SSH machines that are this host (loopback
sshd, the same user): with the shims on PATH (as the README says to) the job
reaches the controller, so its steps are recorded and it can requeue itself,
as on the local transport."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from .test_fleet import fleet4  # noqa: F401  (the fixture)


def _shims_first(cli) -> None:
    """The submitter's PATH starts with fleetslurm's shims (this machine also
    has SLURM's own srun in /usr/bin, which must not be the one found)."""
    cli.env["PATH"] = f"{cli.files.home / 'bin'}:{cli.env['PATH']}"


def test_srun_steps_on_an_ssh_machine(fleet4):  # noqa: F811
    cli, machines = fleet4
    _shims_first(cli)
    job = cli.sbatch("-w", "m2", "-n", "2", "-J", "st", "--wrap",
                     "srun sh -c 'echo $SLURMD_NODENAME rank=$SLURM_PROCID step=$SLURM_STEP_ID'"
                     " | sort; srun -n 1 sh -c 'exit 3'; echo rc=$?")
    rec = cli.wait(job)
    assert rec["state"] == "COMPLETED", rec
    assert (cli.work / f"slurm-{job}.out").read_text() == (
        "m2 rank=0 step=0\nm2 rank=1 step=0\n"
        "srun: error: m2: task 0: Exited with exit code 3\nrc=3\n")
    sacct = cli.run("sacct", "-P", "-n", "-j", str(job), "-o", "jobid,state,exitcode,nodelist",
                    check=True).stdout.splitlines()
    assert sacct == [f"{job}|COMPLETED|0:0|m2", f"{job}.batch|COMPLETED|0:0|m2",
                     f"{job}.0|COMPLETED|0:0|m2", f"{job}.1|FAILED|3:0|m2"]


def test_requeue_itself_on_an_ssh_machine(fleet4):  # noqa: F811
    cli, machines = fleet4
    _shims_first(cli)
    job = cli.sbatch("-w", "m3", "--open-mode=append", "--wrap",
                     'echo run${SLURM_RESTART_COUNT:-0}; '
                     'if [ -z "$SLURM_RESTART_COUNT" ]; then trap "echo got TERM" TERM; '
                     'scontrol requeue $SLURM_JOB_ID; echo rc=$?; sleep 30; fi')
    rec = cli.wait(job, timeout=90)
    assert (rec["state"], rec["restart_count"]) == ("COMPLETED", 1)
    # the old run's output (to its SIGKILL after KillWait) comes home before the new run's
    # (after slurmstepd's line for the requeue, as SLURM 22.05 writes it)
    assert re.fullmatch(
        rf"run0\nslurmstepd-m3: error: \*\*\* JOB {job} ON m3 CANCELLED AT \S+ DUE TO JOB "
        r"REQUEUE \*\*\*\ngot TERM\nrc=0\nrun1\n", (cli.work / f"slurm-{job}.out").read_text())


def test_srun_from_the_submit_host_runs_on_a_machine(fleet4):  # noqa: F811
    cli, machines = fleet4
    data = os.urandom(200_000)
    proc = subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", "srun", "-w", "m4",
                           "-n", "2", "sh", "-c",
                           'if [ $SLURM_PROCID = 0 ]; then cat; else cat >/dev/null; fi; '
                           'exit $((SLURM_PROCID+4))'],
                          input=data, capture_output=True, env=cli.env, cwd=str(cli.work),
                          timeout=120)
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout == data
    assert proc.stderr.decode() == ("srun: error: m4: task 0: Exited with exit code 4\n"
                                    "srun: error: m4: task 1: Exited with exit code 5\n")

"""SLURM's commands inside a job on an SSH machine (issue 14 item 3): the job
finds them first on its PATH with nothing of fleetslurm installed there but
the agent, and they reach the controller through that agent as the job's
owner. The job's PATH here is ``/usr/bin:/bin`` only: no fleetslurm command
on it, and this host's real SLURM commands (``/usr/bin/srun``...) in it,
which the agent's must come before."""

from __future__ import annotations

import re
import shlex

from .test_fleet import fleet4  # noqa: F401  (the fixture)

#: what the job's environment says about PATH (exported by sbatch, as SLURM's is)
BARE_PATH = "/usr/bin:/bin"


def test_commands_inside_a_job_come_from_the_agent_and_reach_the_controller(
        fleet4):  # noqa: F811
    cli, machines = fleet4
    cli.env["PATH"] = BARE_PATH
    m2 = next(m for m in machines if m.name == "m2")
    script = cli.work / "inside.sh"
    # (the child's output: an absolute path on the submit host, where output
    # comes home; its submit directory is the job's directory on m2)
    script.write_text(f"""#!/bin/sh
for c in srun scontrol squeue sacct scancel sbatch sinfo; do echo "which $c=$(command -v $c)"; done
scontrol show job $SLURM_JOB_ID | head -1
squeue -h -j $SLURM_JOB_ID -o '%i|%T|%N|%u'
sinfo -h -N -n m2 -o '%N'
child=$(sbatch --parsable -w m3 -o {cli.work}/child-%j.out --wrap 'echo child of $SLURM_JOB_USER')
echo "child rc=$? id=$child"
srun hostname
srun -n 2 -l sh -c 'echo rank $SLURM_PROCID'
echo "srun rc=$?"
sacct -n -P -j $SLURM_JOB_ID -o jobid,state
""")
    job = cli.sbatch("-w", "m2", "-n", "2", "-o", "inside-%j.out", str(script))
    rec = cli.wait(job, timeout=90)
    out = (cli.work / f"inside-{job}.out").read_text()
    assert rec["state"] == "COMPLETED", (rec, out)
    lines = out.splitlines()
    bin_dir = f"{m2.workdir}/bin"
    for c in ("srun", "scontrol", "squeue", "sacct", "scancel", "sbatch", "sinfo"):
        assert f"which {c}={bin_dir}/{c}" in lines, out
    assert re.search(rf"^JobId={job} JobName=inside.sh$", out, re.M), out
    assert f"{job}|RUNNING|m2|root" in lines, out
    assert "m2" in lines, out
    m = re.search(r"^child rc=0 id=(\d+)$", out, re.M)
    assert m, out
    child = int(m.group(1))
    child_rec = cli.wait(child, timeout=60)
    assert child_rec["state"] == "COMPLETED" and child_rec["user"] == "root", child_rec
    assert (cli.work / f"child-{child}.out").read_text() == "child of root\n"
    assert "0: rank 0" in lines and "1: rank 1" in lines and "srun rc=0" in lines, out
    # the steps are the controller's: sacct inside the job already saw step 0
    assert f"{job}.0|COMPLETED" in lines, out
    sacct = cli.run("sacct", "-P", "-n", "-j", str(job), "-o", "jobid,state,nodelist",
                    check=True).stdout.splitlines()
    assert sacct == [f"{job}|COMPLETED|m2", f"{job}.batch|COMPLETED|m2",
                     f"{job}.0|COMPLETED|m2", f"{job}.1|COMPLETED|m2"], sacct


def test_a_job_on_a_machine_requeues_itself(fleet4):  # noqa: F811
    cli, machines = fleet4
    cli.env["PATH"] = BARE_PATH
    job = cli.sbatch("-w", "m4", "--open-mode=append", "--wrap",
                     'echo run${SLURM_RESTART_COUNT:-0}; '
                     'if [ -z "$SLURM_RESTART_COUNT" ]; then trap "echo got TERM" TERM; '
                     'scontrol requeue $SLURM_JOB_ID; echo rc=$?; sleep 30; fi')
    rec = cli.wait(job, timeout=90)
    assert (rec["state"], rec["restart_count"]) == ("COMPLETED", 1)
    assert re.fullmatch(
        rf"run0\nslurmstepd-m4: error: \*\*\* JOB {job} ON m4 CANCELLED AT \S+ DUE TO JOB "
        r"REQUEUE \*\*\*\ngot TERM\nrc=0\nrun1\n", (cli.work / f"slurm-{job}.out").read_text())


def test_inside_a_job_the_commands_say_what_they_say_on_the_submit_host(
        fleet4):  # noqa: F811
    """Answers and errors come back as the CLI prints them on the submit host
    (the same front ends, the same requests): the same lines, the same exit
    codes, no traceback."""
    cli, machines = fleet4
    cli.env["PATH"] = BARE_PATH
    commands = [["scontrol", "show", "job", "999999"], ["squeue", "--bogus"],
                ["scancel", "999999"], ["sinfo", "-h", "-N", "-o", "%N %c"],
                ["sbatch", "--wrap"], ["sacct", "-j", "abc"], ["sshare"], ["sprio"]]
    shell = "".join(f"{shlex.join(c)} 2>&1; echo rc=$?\n" for c in commands)
    job = cli.sbatch("-w", "m1", "--wrap", shell)
    rec = cli.wait(job, timeout=60)
    out = (cli.work / f"slurm-{job}.out").read_text()
    assert rec["state"] == "COMPLETED", out
    want = ""
    for c in commands:
        p = cli.run(*c)
        want += p.stdout + p.stderr + f"rc={p.returncode}\n"
    assert "Traceback" not in out and out == want, (out, want)



def test_reconfigure_inside_a_job_says_where_to_run_it(fleet4):  # noqa: F811
    cli, machines = fleet4
    cli.env["PATH"] = BARE_PATH
    job = cli.sbatch("-w", "m3", "--wrap", "scontrol reconfigure; echo rc=$?")
    cli.wait(job, timeout=60)
    assert (cli.work / f"slurm-{job}.out").read_text() == (
        "scontrol: error: scontrol reconfigure is not available inside a job on a machine: "
        "run it on the controller's host\nrc=1\n")

"""srun's fast paths outside an allocation: step 0 of one task started by the
job's supervisor (no second srun inside the job: ctld/srun_direct.py), and a
command line without options read without the option tables. Each must give
what the full path gives, byte for byte: output, srun's lines, exit status,
sacct's records and the task's environment (``FLEETSLURM_NO_FAST_PATH=1``
takes the full path)."""

from __future__ import annotations

import os
import re

import pytest

from fleetslurm.cli.srun_cmd import _plain, direct_step
from fleetslurm.slurm.option_env import command_options
from tests.test_lab_as_user import root_lab  # noqa: F401  (fixture)
from tests.second_user import other_user, shared_tmp  # noqa: F401  (fixtures)

SLOW = {"FLEETSLURM_NO_FAST_PATH": "1"}
#: which way the task was started: only the supervisor's child is the task itself
WHICH = 'test "$$" = "$SLURM_TASK_PID" && echo direct >&2 || echo inner >&2; '
#: what differs from one job (or one process) to the next
_PER_RUN = ("SLURM_JOB_ID=", "SLURM_JOBID=", "SLURM_TASK_PID=", "SLURM_STEP_LAUNCHER_PORT=",
            "SLURM_CPU_BIND=", "SLURM_CPU_BIND_LIST=")  # (the CPU a run got)


def _last_job(fleet) -> int:
    ids = fleet.run("squeue", "-h", "-t", "all", "-o", "%A", check=True).stdout.split()
    return max(int(i) for i in ids)


def _run(fleet, args: tuple, env: "dict | None") -> tuple:
    proc = fleet.run("srun", *args, env=env)
    job = _last_job(fleet)
    sacct = fleet.run("sacct", "-P", "-n", "-j", str(job), "-o",
                      "jobid,jobname,state,exitcode,ntasks,alloccpus", check=True).stdout
    # (a job's id: the first field of sacct's lines, and in srun's StepId=N.0)
    norm = lambda text: re.sub(rf"(^|StepId=){job}\b", r"\1<job>", text, flags=re.M)
    return proc.returncode, proc.stdout, norm(proc.stderr), norm(sacct)


@pytest.mark.parametrize("args", [
    ("sh", "-c", WHICH + "echo out; echo err >&2; exit 4"),
    ("-J", "named", "sh", "-c", WHICH + "echo 'a b'"),
    ("-c", "1", "sh", "-c", WHICH + "kill -9 $$"),
    ("sh", "-c", WHICH + "kill -TERM $$"),
    ("no-such-command-here",),
])
def test_direct_step_zero_is_the_second_sruns_twin(fleet, args):
    direct = _run(fleet, args, None)
    inner = _run(fleet, args, SLOW)
    if WHICH in args[-1]:
        assert direct[2].startswith("direct\n") and inner[2].startswith("inner\n"), \
            (direct, inner)
    assert direct[:2] == inner[:2]
    assert direct[2].replace("direct\n", "", 1) == inner[2].replace("inner\n", "", 1)
    assert direct[3] == inner[3]


def test_a_step_whose_command_cannot_start_inside_a_job(fleet):
    """srun inside a batch job: slurmstepd's line, the task's exit code the
    errno, the step FAILED, and the script goes on (as SLURM 22.05)."""
    job = fleet.sbatch("-e", "err-%j", "--wrap", "srun no-such-command-here; echo srun=$?")
    assert fleet.wait(job)["state"] == "COMPLETED"
    assert (fleet.work / f"slurm-{job}.out").read_text() == "srun=2\n"
    assert (fleet.work / f"err-{job}").read_text() == (
        "slurmstepd-localhost: error: execve(): no-such-command-here: No such file or "
        "directory\nsrun: error: localhost: task 0: Exited with exit code 2\n")
    sacct = fleet.run("sacct", "-P", "-n", "-j", f"{job}.0", "-o", "state,exitcode",
                      check=True).stdout
    assert sacct == "FAILED|2:0\n"


def test_direct_step_zero_has_the_steps_environment(fleet):
    show = ("sh", "-c", "env | grep -E '^(SLURM|CUDA)_' | sort")
    direct = fleet.run("srun", "-c", "1", *show, check=True).stdout.splitlines()
    inner = fleet.run("srun", "-c", "1", *show, env=SLOW, check=True).stdout.splitlines()
    keep = lambda lines: [line for line in lines if not line.startswith(_PER_RUN)]
    assert keep(direct) == keep(inner)
    assert "SLURM_STEP_ID=0" in direct and "SLURM_STEP_NUM_TASKS=1" in direct


def test_a_command_that_cannot_start_fails_as_slurms_task_does(fleet):
    """As SLURM 22.05 (checked on the oracle): slurmstepd's line, the task's
    exit code the errno (2, 13), the step FAILED."""
    code, out, err, sacct = _run(fleet, ("no-such-command-here",), None)
    assert (code, out) == (2, "")
    assert err == ("slurmstepd-localhost: error: execve(): no-such-command-here: No such file "
                   "or directory\nsrun: error: localhost: task 0: Exited with exit code 2\n")
    assert sacct.splitlines()[1].startswith("<job>.0|no-such-command-here|FAILED|2:0|1|")
    tool = fleet.work / "bin" / "tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")  # on PATH, not executable
    path = {"PATH": f"{tool.parent}:{os.environ['PATH']}"}
    proc = fleet.run("srun", "tool", env=path)
    assert (proc.returncode, proc.stderr) == (13, (
        "slurmstepd-localhost: error: execve(): tool: Permission denied\n"
        "srun: error: localhost: task 0: Exited with exit code 13\n"))
    tool.chmod(0o755)
    assert fleet.run("srun", "tool", env=path).returncode == 0  # found on the job's PATH


def test_step_signals_reach_the_task_once(fleet):
    """scancel --signal (the steps) and the job's end (steps and the job's
    group, which here are one group) signal the task once each."""
    import subprocess
    import sys
    import time

    trap = ('n=0; trap \'n=$((n+1)); echo "usr1 $n"\' USR1; '
            'trap \'echo term; exit 0\' TERM; while :; do sleep 0.1; done')
    p = subprocess.Popen([sys.executable, "-m", "fleetslurm.cli.main", "srun", "sh", "-c", trap],
                         cwd=str(fleet.work), env=fleet.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            out = fleet.run("squeue", "-h", "-t", "R", "-o", "%A").stdout.split()
            if out:
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        job = out[0]
        time.sleep(1)  # the trap is set
        fleet.run("scancel", "--signal=USR1", job, check=True)
        time.sleep(1)
        fleet.run("scancel", job, check=True)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert out == "usr1 1\nterm\n", (out, err)


@pytest.mark.parametrize("argv", [["true"], ["sh", "-c", "echo -n x"], ["echo", "--help"],
                                  ["a'; echo foo", "-n", "2"]])
def test_a_plain_command_line_has_no_options(argv, monkeypatch):
    for key in list(os.environ):
        if key.startswith(("SLURM_", "SRUN_")) or key == "FLEETSLURM_NO_FAST_PATH":
            monkeypatch.delenv(key)
    assert _plain(argv)
    assert command_options("srun", argv, os.environ) == ({}, argv)
    assert direct_step({})


@pytest.mark.parametrize("argv, env", [
    (["-n", "2", "true"], {}), (["--help"], {}), (["-", "x"], {}), ([], {}),
    (["true"], {"SLURM_NTASKS": "2"}), (["true"], {"SRUN_CPUS_PER_TASK": "2"}),
    (["true"], {"FLEETSLURM_NO_FAST_PATH": "1"}),
])
def test_anything_else_takes_the_full_path(argv, env, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert not _plain(argv)


@pytest.mark.parametrize("opts, direct", [
    ({}, True), ({"ntasks": "1", "job_name": "x", "cpus_per_task": "2"}, True),
    ({"input": "0"}, True), ({"input": "all"}, True), ({"ntasks": "2"}, False),
    ({"output": "o-%t"}, False), ({"label": True}, False), ({"input": "none"}, False),
    ({"kill_on_bad_exit": "1"}, False), ({"overcommit": True}, False),
    ({"open_mode": "append"}, False), ({"unbuffered": True}, False),
])
def test_which_requests_step_zero_runs_directly(opts, direct, monkeypatch):
    monkeypatch.delenv("FLEETSLURM_NO_FAST_PATH", raising=False)
    assert direct_step(opts) is direct


def test_a_lab_users_srun_step_zero_runs_as_the_user(root_lab, other_user):
    """In a lab (a root agent) the task runs as its user, who owns the step's
    record of its process group (signals for steps reach it) and its files."""
    lab, user = root_lab, other_user
    p = lab.fs("srun", "sh", "-c", 'id -u; cat "$FLEETSLURM_STEPS_DIR/$$"; echo; '
               'stat -c %u "$FLEETSLURM_STEPS_DIR/$$"; exit 3', user=user)
    assert p.returncode == 3, p.stderr
    assert p.stdout.splitlines() == [str(user.pw_uid), "0 0", str(user.pw_uid)], p.stdout
    assert p.stderr == "srun: error: localhost: task 0: Exited with exit code 3\n"
    acct = lab.fs("sacct", "-n", "-P", "-a", "-u", user.pw_name, "-o", "jobid,state,exitcode")
    assert [line.split("|", 1)[1] for line in acct.stdout.splitlines()] == [
        "FAILED|3:0", "FAILED|3:0"], acct.stdout

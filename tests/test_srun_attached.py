"""srun outside an allocation: it allocates a job, runs the tasks as its step
0, streams output and input, forwards signals and exits with the tasks'
status, as SLURM 22.05's srun does (checked on the oracle)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from fleetslurm.cli.srun_cmd import job_script, step_arguments


def _srun(fleet, *args: str, **kw) -> subprocess.Popen:
    env = dict(fleet.env)
    return subprocess.Popen([sys.executable, "-m", "fleetslurm.cli.main", "srun", *args],
                            cwd=str(fleet.work), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def _last_job(fleet) -> int:
    ids = fleet.run("squeue", "-h", "-t", "all", "-o", "%A", check=True).stdout.split()
    return max(int(i) for i in ids)


def _wait_steps(fleet, job: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (fleet.record(job).get("job_steps")):
        assert time.monotonic() < deadline, f"job {job} never started its step"
        time.sleep(0.1)
    time.sleep(0.5)  # the tasks have set their traps


def test_exit_codes_ranks_and_sacct(fleet):
    proc = fleet.run("srun", "-J", "four", "sh", "-c", "echo out; echo err >&2; exit 4")
    assert (proc.returncode, proc.stdout) == (4, "out\n")
    assert proc.stderr == "err\nsrun: error: localhost: task 0: Exited with exit code 4\n"
    four = _last_job(fleet)
    proc = fleet.run("srun", "-n", "2", "sh", "-c",
                     "echo rank=$SLURM_PROCID/$SLURM_NTASKS step=$SLURM_STEP_ID")
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.splitlines()) == ["rank=0/2 step=0", "rank=1/2 step=0"]
    two = _last_job(fleet)
    proc = fleet.run("srun", "-J", "killed", "sh", "-c", "kill -9 $$")
    killed = _last_job(fleet)
    assert proc.returncode == 137
    assert proc.stderr == ("srun: error: localhost: task 0: Killed\n"
                           f"srun: Force Terminated StepId={killed}.0\n")
    sacct = fleet.run("sacct", "-P", "-n", "-j", f"{four},{two},{killed}", "-o",
                      "jobid,jobname,state,exitcode,ntasks", check=True).stdout.splitlines()
    # no batch step: a job srun allocates has only its step 0 (SLURM: N.extern aside)
    assert sacct == [f"{four}|four|FAILED|4:0|", f"{four}.0|four|FAILED|4:0|1",
                     f"{two}|sh|COMPLETED|0:0|", f"{two}.0|sh|COMPLETED|0:0|2",
                     f"{killed}|killed|FAILED|0:9|", f"{killed}.0|killed|CANCELLED|0:9|1"]
    show = fleet.run("scontrol", "show", "job", str(killed), check=True).stdout
    assert "BatchFlag=0" in show and "ExitCode=0:9" in show
    # output reached the terminal only: no slurm-N.out files
    assert not list(fleet.work.glob("slurm-*.out"))


def test_stdin_is_streamed_to_the_tasks(fleet):
    data = os.urandom(3 * 1024 * 1024)  # binary, and more than a pipe holds
    proc = subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", "srun", "cat"],
                          input=data, capture_output=True, cwd=str(fleet.work),
                          env=fleet.env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == data
    # SLURM's default: every task gets all of it; -i N: task N only; -i none: EOF
    run = lambda *a: fleet.run("srun", *a, input="line\n", check=True).stdout
    assert sorted(run("-n", "2", "sh", "-c", 'read x; echo "$SLURM_PROCID $x"').splitlines()) \
        == ["0 line", "1 line"]
    assert sorted(run("-n", "2", "-i", "1", "sh", "-c",
                      'read x; echo "$SLURM_PROCID [$x]"').splitlines()) == ["0 []", "1 [line]"]
    assert run("-i", "none", "sh", "-c", "cat; echo done") == "done\n"


def test_stdin_arrives_while_the_task_runs(fleet):
    """Interactive use: a line typed now reaches the task now, not at EOF."""
    p = _srun(fleet, "sh", "-c", 'while read l; do echo "got $l"; done', stdin=subprocess.PIPE)
    try:
        p.stdin.write(b"first\n")
        p.stdin.flush()
        assert p.stdout.readline() == b"got first\n"
        p.stdin.write(b"second\n")
        p.stdin.flush()
        assert p.stdout.readline() == b"got second\n"
        p.stdin.close()
        assert p.wait(timeout=30) == 0
    finally:
        p.kill()


def test_queued_then_allocated(fleet):
    blocker = fleet.sbatch("--exclusive", "--wrap", "sleep 30")
    fleet.wait(blocker, {"RUNNING"})
    p = _srun(fleet, "echo", "ran")
    time.sleep(2)
    job = _last_job(fleet)
    assert fleet.record(job)["state"] == "PENDING"
    fleet.run("scancel", str(blocker), check=True)
    out, err = p.communicate(timeout=60)
    assert (p.returncode, out) == (0, b"ran\n")
    assert err == (f"srun: job {job} queued and waiting for resources\n"
                   f"srun: job {job} has been allocated resources\n").encode()


def test_ctrl_c(fleet):
    """One Ctrl-C: the tasks' state, the job goes on; a second within a second:
    SIGINT to the tasks, and the job is cancelled."""
    trap = 'trap "echo got INT; exit 5" INT; trap "echo got TERM; exit 6" TERM; ' \
           'while :; do sleep 0.1; done'
    p = _srun(fleet, "sh", "-c", trap)
    job = _last_job_when_running(fleet)
    _wait_steps(fleet, job)
    p.send_signal(signal.SIGINT)
    time.sleep(1.5)
    assert p.poll() is None and fleet.record(job)["state"] == "RUNNING"
    p.send_signal(signal.SIGINT)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert out.startswith(b"got INT\n"), out
    assert p.returncode == 5
    assert err.decode().startswith(
        "srun: interrupt (one more within 1 sec to abort)\n"
        f"srun: StepId={job}.0 task 0: running\n"
        "srun: interrupt (one more within 1 sec to abort)\n"
        f"srun: StepId={job}.0 task 0: running\n"
        f"srun: sending Ctrl-C to StepId={job}.0\n"), err
    assert fleet.wait(job)["state"] == "CANCELLED"


def test_sigterm_cancels_and_other_signals_are_forwarded(fleet):
    trap = 'trap "echo got USR1" USR1; trap "echo got TERM; exit 0" TERM; ' \
           'while :; do sleep 0.1; done'
    p = _srun(fleet, "sh", "-c", trap)
    job = _last_job_when_running(fleet)
    _wait_steps(fleet, job)
    p.send_signal(signal.SIGUSR1)
    time.sleep(1)
    assert p.poll() is None
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert out.decode().replace("User defined signal 1\n", "") == "got USR1\ngot TERM\n", out
    assert p.returncode == 0  # the task's own exit status
    # (sh reports its `sleep` killed by the forwarded USR1 on stderr)
    # (a job that waited over half a second first says so, as srun does: load)
    err_text = re.sub(rf"srun: job {job} (queued and waiting for resources|has been allocated "
                      r"resources)\n", "", err.decode())
    assert err_text.replace("User defined signal 1\n", "").startswith(
                                   "srun: forcing job termination\n"
                                   "srun: Job step aborted: Waiting up to 4 seconds for job "
                                   "step to finish.\n"), err
    assert fleet.wait(job)["state"] == "CANCELLED"


def test_ctrl_c_while_pending_cancels_the_request(fleet):
    p = _srun(fleet, "--begin=now+1hour", "true")
    time.sleep(2)
    job = _last_job(fleet)
    assert fleet.record(job)["reason"] == "BeginTime"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 1
    assert err.endswith(b"srun: error: Unable to allocate resources: Job/step already "
                        b"completing or completed\n"), err
    assert fleet.record(job)["state"] == "CANCELLED"


def _last_job_when_running(fleet, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            job = _last_job(fleet)
        except ValueError:
            job = None
        if job is not None and fleet.record(job)["state"] == "RUNNING":
            return job
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_the_job_script_runs_tasks_where_fleetslurm_is_not_installed(tmp_path):
    """On a machine without fleetslurm's srun the job's script starts the tasks
    itself: ranks, step 0, the highest exit status."""
    script = tmp_path / "job.sh"
    script.write_text(job_script({"ntasks": "3"}))
    script.chmod(0o700)
    # inside a job, but the machine's only srun (if any) is not fleetslurm's
    env = {"PATH": "/usr/bin:/bin", "SLURM_NTASKS": "3", "SLURMD_NODENAME": "n1",
           "FLEETSLURM_STEPS_DIR": str(tmp_path / "steps")}
    proc = subprocess.run([str(script), "sh", "-c",
                           'echo "$SLURM_PROCID/$SLURM_STEP_ID/$SLURM_STEP_NODELIST"; '
                           'exit $SLURM_PROCID'], env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert sorted(proc.stdout.splitlines()) == ["0/0/n1", "1/0/n1", "2/0/n1"]
    env["SLURM_NTASKS"] = "1"
    proc = subprocess.run([str(script), "sh", "-c", "kill -9 $$"], env=env)
    assert proc.returncode == -9  # one task: exec'd, its own status


def test_step_arguments():
    assert step_arguments({"ntasks": "2", "label": True, "output": "o %t", "job_name": "x",
                           "input": "none", "kill_on_bad_exit": "0", "partition": "p"}) == \
        ["--ntasks=2", "--job-name=x", "--output=o %t", "--input=none", "--label",
         "--kill-on-bad-exit=0"]


def test_unsupported_modes_are_refused(fleet):
    for args, flag in ((["--jobid=5"], "--jobid=5"), (["--pty"], "--pty"),
                       (["--multi-prog"], "--multi-prog")):
        proc = fleet.run("srun", *args, "true")
        assert proc.returncode == 1
        assert proc.stderr.startswith(f"srun: error: fleetslurm does not support {flag}"), \
            proc.stderr
    assert fleet.run("squeue", "-h", "-t", "all", check=True).stdout == ""  # nothing submitted

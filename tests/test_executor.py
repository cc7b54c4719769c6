"""fleetslurm.Executor on the fleet backend (the default): a real controller,
agent, supervisors and python jobs on this machine."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import fleetslurm
from fleetslurm import Executor, Job
from fleetslurm.errors import (JobTimeout, RemoteJobError, SerializationError, SubmitError,
                               UsageError)

REPO = str(Path(__file__).resolve().parent.parent)


@pytest.fixture
def ex_env(fleet_env):
    """This process talks to the test's fleet (and so do the scripts it runs)."""
    fleet = fleet_env
    env = dict(fleet.env, PYTHONPATH=REPO)
    return env


def _run_script(env: dict, cwd: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    path = cwd / "user_script.py"
    path.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=180)


def _all_jobs() -> list:
    from fleetslurm.api.executor.client import FleetClient

    return FleetClient().call("jobs", states="all")


def square(x):
    print(f"squaring {x}")
    print("to stderr", file=sys.stderr)
    return x * x


def fails(x):
    raise ValueError(f"cannot use {x}")


def sleeper(seconds):
    time.sleep(seconds)
    return seconds


def test_submit_result_output_and_usage(ex_env, fleet):
    ex = Executor(cpus_per_task=1, time=5)
    job = ex.submit(square, 12)
    assert job.job_id.isdigit()
    assert job.result(timeout=120) == 144
    assert job.state == "COMPLETED" and job.done()
    assert job.stdout() == "squaring 12\n"
    assert job.stderr() == "to stderr\n"
    usage = job.usage()
    assert usage.state == "COMPLETED" and usage.node == "localhost"
    assert usage.exit_code == 0 and usage.cpu_time_s > 0 and usage.max_rss_kb > 1000
    assert 0 < usage.elapsed_s < 120
    # what the controller sees: a normal batch job named after the function
    rec = fleet.record(job.job_id)
    assert rec["name"] == "square" and rec["cpus"] == 1 and rec["time_limit"] == 5
    assert job.wait() == "COMPLETED"


def test_a_remote_exception_comes_back_with_its_traceback(ex_env):
    job = Executor().submit(fails, "that")
    err = job.exception(timeout=120)
    assert isinstance(err, RemoteJobError)
    assert err.remote_type == "ValueError" and err.remote_message == "cannot use that"
    assert f"job {job.job_id} failed remotely: ValueError: cannot use that" in str(err)
    assert "in fails" in str(err) and 'raise ValueError(f"cannot use {x}")' in str(err)
    assert job.state == "FAILED" and err.state == "FAILED"
    with pytest.raises(RemoteJobError, match="cannot use that"):
        job.result()
    assert "ValueError: cannot use that" in job.stderr()


def test_cancel_and_result_of_a_cancelled_job(ex_env):
    job = Executor().submit(sleeper, 300)
    deadline = time.monotonic() + 60
    while job.state != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert job.cancel() is True
    assert job.wait(timeout=60) == "CANCELLED"
    with pytest.raises(RemoteJobError, match=f"job {job.job_id} ended without a result: it "
                                             "was cancelled"):
        job.result()
    assert job.cancel() is False  # already over


def test_timeouts_raise_and_the_job_goes_on(ex_env):
    job = Executor().submit(sleeper, 300)
    t0 = time.monotonic()
    with pytest.raises(JobTimeout, match=f"job {job.job_id} is still (PENDING|RUNNING) after "
                                         "0.5 s"):
        job.result(timeout=0.5)
    with pytest.raises(TimeoutError):  # JobTimeout is a TimeoutError, as in futures
        job.exception(timeout=0.2)
    assert time.monotonic() - t0 < 10
    assert not job.done()
    job.cancel()


def test_time_limit_gives_timeout_state(ex_env, fleet):
    # --time=1 (a minute) is too long for a test: shorten the running job's limit
    job = Executor(time=1).submit(sleeper, 300)
    while job.state != "RUNNING":
        time.sleep(0.1)
    fleet.run("scontrol", "update", f"JobId={job.job_id}", "TimeLimit=0:02", check=True)
    assert job.wait(timeout=120) == "TIMEOUT"
    with pytest.raises(RemoteJobError, match="it reached its time limit"):
        job.result()


def test_map_is_one_array_with_its_throttle(ex_env, fleet):
    ex = Executor(array_parallelism=1)
    jobs = ex.map(sleeper, [2, 0, 0])
    master = jobs[0].job_id.split("_")[0]
    assert [j.job_id for j in jobs] == [f"{master}_{i}" for i in range(3)]
    # squeue sees one array, its pending part throttled to one task at a time
    deadline = time.monotonic() + 60
    while True:
        out = fleet.run("squeue", "-h", "-o", "%i %T", check=True).stdout.split("\n")
        if f"{master}_0 RUNNING" in out:
            break
        assert time.monotonic() < deadline, out
        time.sleep(0.1)
    assert f"{master}_[1-2%1] PENDING" in out
    assert [j.result(timeout=120) for j in jobs] == [2, 0, 0]
    acct = fleet.run("sacct", "-X", "-n", "-P", "-j", master, "-o", "JobID,JobName,State",
                     check=True).stdout.split()
    # one row per task (in the order SLURM keeps them: the last to start holds
    # the array's own record, so it may come first)
    assert sorted(acct) == [f"{master}_{i}|sleeper|COMPLETED" for i in range(3)]
    starts = [fleet.record(j.job_id)["start_time"] for j in jobs]
    ends = [fleet.record(j.job_id)["end_time"] for j in jobs]
    assert starts[1] >= ends[0] and starts[2] >= ends[1]  # one at a time
    assert ex.map(square, []) == []


def test_batch_collects_submits_into_one_array(ex_env, fleet):
    ex = Executor()
    with ex.batch():
        a = ex.submit(square, 3)
        b = ex.submit(lambda s: s.upper(), "shout")
        c, d = ex.map(pow, [2, 3], [5, 2])
        with pytest.raises(UsageError, match="gets its id when the `with` block ends"):
            a.job_id
    master = a.job_id.split("_")[0]
    assert [j.job_id for j in (a, b, c, d)] == [f"{master}_{i}" for i in range(4)]
    assert [j.result(timeout=120) for j in (a, b, c, d)] == [9, "SHOUT", 32, 9]
    recs = fleet.records(master)
    assert len(recs) == 4 and {r["array_job_id"] for r in recs} == {int(master)}


def test_a_batch_that_raises_submits_nothing(ex_env, fleet):
    ex = Executor()
    with pytest.raises(RuntimeError):
        with ex.batch():
            ex.submit(square, 1)
            raise RuntimeError("changed my mind")
    assert _all_jobs() == []


def test_payload_limit_and_unpicklable_fail_at_submit(ex_env, fleet):
    ex = Executor(max_payload_bytes=10_000)
    with pytest.raises(SubmitError, match=r"the pickled call of len is 19\.\d KB, over the "
                                          r"payload limit of 9\.8 KB"):
        ex.submit(len, b"x" * 20_000)
    with pytest.raises(SerializationError, match="cannot pickle argument 0 of square"):
        ex.submit(square, threading.Lock())
    with pytest.raises(SerializationError, match="argument 0 of square"):
        ex.map(square, [1, threading.Lock()])
    assert _all_jobs() == []
    with pytest.raises(SubmitError, match="an array of 1002 tasks is more than the cluster "
                                          r"allows \(MaxArraySize"):
        Executor().map(abs, range(1002))
    assert not list((fleet.home / "executor").glob("2*"))  # no payload left behind


def test_job_load_across_processes(ex_env, fleet):
    # submitted here, followed from another process
    job = Executor().submit(square, 9)
    proc = _run_script(ex_env, fleet.work, """
        import sys, fleetslurm
        job = fleetslurm.Job.load(sys.argv[1])
        print(job.result(timeout=120), job.state)
    """, job.job_id)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "81 COMPLETED\n"
    # submitted by another process (then gone), loaded here
    proc = _run_script(ex_env, fleet.work, """
        import fleetslurm
        def triple(x):
            return 3 * x
        jobs = fleetslurm.Executor().map(triple, [1, 2])
        print(" ".join(j.job_id for j in jobs))
    """)
    assert proc.returncode == 0, proc.stderr
    ids = proc.stdout.split()
    assert [Job.load(i).result(timeout=120) for i in ids] == [3, 6]
    with pytest.raises(fleetslurm.InvalidJobId, match="is an array of 2 tasks"):
        Job.load(ids[0].split("_")[0])
    with pytest.raises(fleetslurm.InvalidJobId, match="no Executor job with this id"):
        Job.load("99999")


def test_functions_defined_in_main_work(ex_env, fleet):
    proc = _run_script(ex_env, fleet.work, """
        import fleetslurm

        FACTOR = 7

        class Point:
            def __init__(self, x):
                self.x = x

        def scaled(p):
            return Point(p.x * FACTOR)

        if __name__ == "__main__":
            job = fleetslurm.Executor().submit(scaled, Point(6))
            print(job.result(timeout=120).x)
            print(fleetslurm.Executor().submit(lambda: __name__).result(timeout=120))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "42"


def test_setup_lines_modules_python_and_missing_cloudpickle(ex_env, fleet):
    def read_env():
        return os.environ.get("MY_SETTING"), os.environ.get("SLURM_CPUS_PER_TASK")

    ex = Executor(setup=["export MY_SETTING='from setup'"], cpus_per_task=2)
    assert ex.submit(read_env).result(timeout=120) == ("from setup", "2")
    # a node python without cloudpickle: the error says so, in the job's exception
    bare = fleet.work / "bare-python"
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    bare.chmod(0o755)
    err = Executor(python=str(bare)).submit(abs, -1).exception(timeout=120)
    assert err is not None and err.remote_type == "ModuleNotFoundError"
    assert "cloudpickle is not installed for" in str(err)
    # `module load` where there is no module command: the job says what failed
    job = Executor(modules=["gcc"]).submit(abs, -1)
    assert job.wait(timeout=120) == "FAILED"
    with pytest.raises(RemoteJobError) as err:
        job.result()
    assert "module: command not found" in str(err.value) or "module: not found" in str(err.value)
    assert "fleetslurm: module load gcc failed on" in str(err.value)


def test_payloads_are_private(ex_env, fleet):
    job = Executor().submit(square, 2)
    job.result(timeout=120)
    folder = Path(job.paths["call"]).parent
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    for name in ("call", "result"):
        assert oct(Path(job.paths[name]).stat().st_mode & 0o777) == "0o600"

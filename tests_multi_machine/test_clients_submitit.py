"""submitit, unmodified, on the loopback sshd fleet: only PATH is changed.

submitit writes an sbatch script that runs ``srun --unbuffered --output ...
python -m submitit.core._submit FOLDER``, parses ``Submitted batch job N``,
polls ``sacct -o JobID,State,NodeList --parsable2 -j N``, cancels with
``scancel N``, asks for ``--signal=USR2@<delay>`` and, in a checkpointable
job that got the signal, calls ``scontrol requeue N`` from inside the job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

submitit = pytest.importorskip("submitit", reason="submitit is in the test extra")

import cloudpickle  # noqa: E402  (submitit depends on it)

from .slurm_clients import ClientFleet, client_fleet  # noqa: E402,F401

# the jobs unpickle these functions in a fresh interpreter that cannot import
# this test module: ship them by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])

FINISHED_POLL = 0.5


@pytest.fixture(autouse=True)
def fresh_watcher():
    """submitit caches job states per job id in one watcher per process;
    each test's fleet numbers its jobs from 1 again, so forget the last one's."""
    from submitit.slurm.slurm import SlurmJob

    SlurmJob.watcher.clear()
    yield
    SlurmJob.watcher.clear()


def where(x: int) -> tuple:
    """The job's view: its result, node, ids and the SLURM command it finds."""
    import shutil

    return (x * x, os.environ["SLURMD_NODENAME"], os.environ["SLURM_JOB_ID"],
            os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID"),
            shutil.which("srun"))


def sleeper(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def stubborn(seconds: float) -> str:
    """Ignores submitit's USR2 (as code stuck in C would): only the limit stops it."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    time.sleep(seconds)
    return "never"


class Resumable(submitit.helpers.Checkpointable):
    """Sleeps until preempted on its first run; finishes at once after a requeue."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str]] = []

    def __call__(self, seconds: float) -> list:
        self.runs.append((os.environ["SLURM_JOB_ID"], os.environ.get("SLURM_RESTART_COUNT", "0")))
        if len(self.runs) == 1:
            time.sleep(seconds)  # submitit's USR2 handler checkpoints and requeues
        return self.runs


def wait_done(job, timeout: float = 90) -> None:
    """Poll as a user would, forcing submitit to ask sacct each time."""
    deadline = time.monotonic() + timeout
    while not job.done(force_check=True):
        if time.monotonic() > deadline:
            raise AssertionError(f"{job} not done after {timeout} s: {job.get_info()}")
        time.sleep(FINISHED_POLL)


def final_state(job, timeout: float = 60) -> str:
    """The job's state once sacct says it is over (the result pickle is
    written a moment before the job itself ends)."""
    deadline = time.monotonic() + timeout
    while True:
        state = job.get_info(mode="force").get("State", "")
        if state and job.watcher.is_done(job.job_id, mode="cache"):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"{job}: still {state!r} after {timeout} s")
        time.sleep(FINISHED_POLL)


def record(job) -> str:
    """What fleetslurm and the job's logs say, for a failure message."""
    acct = subprocess.run(["sacct", "-P", "-j", job.job_id, "-o",
                           "JobID,State,ExitCode,NodeList,Start,End,Reason"],
                          capture_output=True, text=True).stdout
    home = os.environ.get("FLEETSLURM_HOME", "")
    try:
        with open(os.path.join(home, "controller.log")) as f:
            log = "".join(f.readlines()[-40:])
    except OSError:
        log = ""
    return (f"\n{acct}\n--- stdout\n{job.stdout()}\n--- stderr\n{job.stderr()}"
            f"\n--- controller.log\n{log}")


def test_submit_result_map_array_and_cancel(client_fleet: ClientFleet, tmp_path) -> None:
    fleet = client_fleet
    machines = {m.name for m in fleet.machines}
    ex = submitit.AutoExecutor(folder=tmp_path / "sub" / "%j", cluster="slurm")
    assert ex.cluster == "slurm"
    ex.update_parameters(timeout_min=5, slurm_signal_delay_s=30, cpus_per_task=1)

    job = ex.submit(where, 7)
    assert job.job_id.isdigit()
    value, node, job_id, array_id, task_id, srun = job.result()
    assert value == 49 and node in machines and job_id == job.job_id
    assert array_id is None and task_id is None
    # inside the job, srun is the machine's agent's (first on the job's PATH)
    workdir = next(m.workdir for m in fleet.machines if m.name == node)
    assert srun == f"{workdir}/bin/srun"
    assert final_state(job) == "COMPLETED"
    assert job.get_info()["NodeList"] == node
    assert "Job completed successfully" in job.stdout()

    # map_array: one array job, `A_i` ids, every task's result
    jobs = ex.map_array(where, [1, 2, 3, 4])
    array_id = jobs[0].job_id.split("_")[0]
    assert [j.job_id for j in jobs] == [f"{array_id}_{i}" for i in range(4)]
    results = [j.result() for j in jobs]
    assert [r[0] for r in results] == [1, 4, 9, 16]
    assert all(r[3] == array_id and r[4] == str(i) for i, r in enumerate(results))
    assert all(r[1] in machines for r in results)
    assert [final_state(j) for j in jobs] == ["COMPLETED"] * 4

    # cancel: a running job is cancelled and submitit sees it finished
    long = ex.submit(sleeper, 300)
    deadline = time.monotonic() + 60
    while long.get_info().get("State") != "RUNNING":
        assert time.monotonic() < deadline, long.get_info()
        time.sleep(FINISHED_POLL)
    long.cancel()
    wait_done(long)
    assert long.state.startswith("CANCELLED"), long.state
    assert not long.paths.result_pickle.exists()


def test_timeouts_and_a_checkpointed_requeue(client_fleet: ClientFleet, tmp_path) -> None:
    """Three jobs at once (the limits are whole minutes): a job that gets
    submitit's USR2 near its limit and is not checkpointable, one that
    ignores it and is killed at the limit, and a Checkpointable one that
    submitit requeues with `scontrol requeue` from inside the job."""
    ex = submitit.SlurmExecutor(folder=tmp_path / "sub" / "%j", max_num_timeout=3)
    # a one-minute limit; USR2 50 s before it, i.e. about 10 s after the start
    ex.update_parameters(time=1, signal_delay_s=50)
    unlucky = ex.submit(sleeper, 120)
    resumable = ex.submit(Resumable(), 120)
    stuck = ex.submit(stubborn, 120)

    # not checkpointable: submitit's handler reports the timeout as the job's error
    with pytest.raises(submitit.core.utils.FailedJobError,
                       match="timed-out and not checkpointable"):
        unlucky.result()
    assert final_state(unlucky) == "FAILED", record(unlucky)

    # checkpointable: checkpointed, requeued under the same id, run again, done
    runs = resumable.result()
    assert runs == [(resumable.job_id, "0"), (resumable.job_id, "1")]
    assert final_state(resumable) == "COMPLETED", record(resumable)
    shown = subprocess.run(["scontrol", "show", "job", resumable.job_id], capture_output=True,
                           text=True, check=True).stdout
    assert "JobState=COMPLETED" in shown and "Restarts=1" in shown, shown
    log = resumable.stdout()
    assert log.count("Starting with") == 2, log
    assert "Calling checkpoint method" in log and "Job completed successfully" in log

    # ignored USR2: SIGTERM at the limit, SIGKILL after KillWait, TIMEOUT
    wait_done(stuck, timeout=120)
    assert stuck.state == "TIMEOUT", record(stuck)
    with pytest.raises(submitit.core.utils.UncompletedJobError, match="state: TIMEOUT"):
        stuck.result()

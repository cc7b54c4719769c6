"""The Executor's other backends with real processes: ``local`` (subprocesses,
no controller), ``debug`` (in this process) and ``slurm`` (a real SLURM's
sbatch: the oracle on this machine, skipped where none runs)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetslurm import Executor, Job
from fleetslurm.errors import JobTimeout, RemoteJobError

REPO = str(Path(__file__).resolve().parent.parent)


@pytest.fixture
def home(tmp_path, monkeypatch, no_slurm_env):
    h = tmp_path / "home"
    monkeypatch.setenv("FLEETSLURM_HOME", str(h))
    monkeypatch.delenv("FLEETSLURM_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    yield h
    # no job left behind by a failing test
    for rec in h.glob("executor/local/runs/*/task*.json"):
        pid = json.loads(rec.read_text()).get("pid")
        if pid and json.loads(rec.read_text())["state"] == "RUNNING":
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


def square(x):
    print(f"squaring {x}")
    return x * x


def fails(x):
    raise ArithmeticError(f"no {x}")


def timed_sleep(seconds):
    t0 = time.time()
    time.sleep(seconds)
    return t0, time.time()


def where():
    return os.getpid(), os.environ.get("SLURM_ARRAY_TASK_ID")


# -- local ----------------------------------------------------------------------------
def test_local_result_exception_output_usage(home):
    ex = Executor(backend="local")
    job, bad = ex.submit(square, 5), ex.submit(fails, 1)
    assert job.result(timeout=120) == 25
    assert job.stdout() == "squaring 5\n" and job.state == "COMPLETED"
    usage = job.usage()
    assert usage.state == "COMPLETED" and usage.cpu_time_s > 0 and usage.max_rss_kb > 1000
    assert usage.elapsed_s > 0 and usage.exit_code == 0
    err = bad.exception(timeout=120)
    assert err.remote_type == "ArithmeticError" and "in fails" in err.remote_traceback
    assert bad.state == "FAILED" and bad.usage().exit_code == 1
    assert job.job_id.isdigit() and int(bad.job_id) == int(job.job_id) + 1
    pid, task = ex.submit(where).result(timeout=120)
    assert pid != os.getpid() and task is None


def test_local_map_is_one_array_throttled(home):
    jobs = Executor(backend="local", array_parallelism=1).map(timed_sleep, [1, 1])
    master = jobs[0].job_id.split("_")[0]
    assert [j.job_id for j in jobs] == [f"{master}_0", f"{master}_1"]
    (s0, e0), (s1, e1) = [j.result(timeout=120) for j in jobs]
    assert s1 >= e0  # one at a time
    assert Executor(backend="local").map(where, []) == []
    assert len(list((home / "executor" / "local" / "runs").iterdir())) == 1
    tasks = Executor(backend="local").map(lambda _: where()[1], [0, 0, 0])
    assert [t.result(timeout=120) for t in tasks] == ["0", "1", "2"]


def test_local_cancel_timeout_and_load(home, tmp_path):
    job = Executor(backend="local").submit(timed_sleep, 300)
    with pytest.raises(JobTimeout):
        job.result(timeout=0.3)
    deadline = time.monotonic() + 60
    while job.state != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = json.loads(next(home.glob("executor/local/runs/*/task.json")).read_text())["pid"]
    # another process finds it and cancels it
    code = f"import fleetslurm; print(fleetslurm.Job.load('{job.job_id}').cancel())"
    env = dict(os.environ, PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.stdout == "True\n", out.stderr
    assert job.wait(timeout=60) == "CANCELLED"
    with pytest.raises(RemoteJobError, match="it was cancelled"):
        job.result()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert Job.load(job.job_id, "local").state == "CANCELLED"


def test_local_killed_supervisor_does_not_hang_the_caller(home):
    job = Executor(backend="local").submit(timed_sleep, 300)
    while job.state != "RUNNING":
        time.sleep(0.05)
    rundir = next(home.glob("executor/local/runs/*"))
    os.kill(int((rundir / "pid").read_text()), signal.SIGKILL)
    assert job.wait(timeout=30) == "FAILED"
    with pytest.raises(RemoteJobError, match="ended without a result"):
        job.result()
    os.killpg(json.loads((rundir / "task.json").read_text())["pid"], signal.SIGKILL)


def test_local_memmap_argument_and_big_result(home, tmp_path):
    np = pytest.importorskip("numpy")
    mm = np.memmap(tmp_path / "data.bin", dtype=np.float32, mode="w+", shape=(1_000_000,))
    mm[:] = np.arange(1_000_000, dtype=np.float32)
    mm.flush()
    job = Executor(backend="local").submit(lambda a: (a[::2] * 2, float(a.max())), mm)
    folder = Path(job.paths["call"]).parent
    assert (folder / "call.h5").exists()  # the 4 MB memmap went by HDF5, not a pickle
    half, top = job.result(timeout=120)
    assert top == 999_999.0 and half.dtype == np.float32
    assert np.array_equal(half, np.arange(0, 1_000_000, 2, dtype=np.float32) * 2)
    assert (folder / "result.h5").exists()


# -- debug ----------------------------------------------------------------------------
def test_debug_runs_in_this_process_at_submit(home):
    ex = Executor(backend="debug")
    job = ex.submit(where)
    assert job.done() and job.state == "COMPLETED"  # already ran
    assert job.result() == (os.getpid(), None)
    assert ex.submit(square, 4).stdout() == "squaring 4\n"
    err = ex.submit(fails, 2).exception()
    assert err.remote_type == "ArithmeticError" and "no 2" in str(err)
    with ex.batch():
        a, b = ex.submit(square, 2), ex.submit(square, 3)
    assert a.job_id.endswith("_0") and b.job_id.endswith("_1")
    assert (a.result(), b.result()) == (4, 9)
    assert [j.result() for j in ex.map(square, [6, 7])] == [36, 49]
    assert Job.load(job.job_id, "debug").result() == (os.getpid(), None)
    assert job.usage().state == "COMPLETED"
    np = pytest.importorskip("numpy")
    big = ex.submit(np.zeros, 500_000)  # a 4 MB result: by HDF5
    assert big.state == "COMPLETED" and big.result().shape == (500_000,)


# -- slurm (the oracle) ------------------------------------------------------------------
def _slurm_reason() -> str | None:
    from fleetslurm.api.executor.backends.slurm import slurm_available

    return slurm_available()


@pytest.mark.skipif(_slurm_reason() is not None,
                    reason=f"no real SLURM here: {_slurm_reason()}")
def test_slurm_backend_runs_the_same_script_on_real_slurm(home):
    ex = Executor(backend="slurm", array_parallelism=1, time=5)
    jobs = ex.map(square, [3, 4])
    single = Executor(backend="slurm").submit(fails, 9)
    master = jobs[0].job_id.split("_")[0]
    try:
        # SLURM itself sees one array, throttled as asked
        show = subprocess.run(["scontrol", "show", "job", master], capture_output=True,
                              text=True, timeout=60).stdout
        assert f"ArrayJobId={master}" in show and "ArrayTaskThrottle=1" in show, show
        assert re.search(r"JobName=square\b", show)
        assert [j.result(timeout=180) for j in jobs] == [9, 16]
        err = single.exception(timeout=180)
        assert err.remote_type == "ArithmeticError" and "no 9" in str(err)
        assert single.state == "FAILED" and jobs[0].stdout() == "squaring 3\n"
        usage = jobs[1].usage()
        assert usage.state == "COMPLETED" and usage.node == "localhost"
        assert usage.exit_code == 0
        # the script SLURM ran is the one the other backends run
        script = Path(jobs[0].paths["call"]).parent / "job.sh"
        assert script.read_text().startswith("#!/bin/bash\n#SBATCH --time=5\n")
    finally:
        subprocess.run(["scancel", master, single.job_id], timeout=60)


def test_slurm_states_from_sacct_with_accounting(tmp_path, monkeypatch):
    """Where slurmdbd runs, sacct is the source (none runs here: canned sacct
    and squeue output in SLURM 22.05's formats stand in for it)."""
    from fleetslurm.api.executor.backends.slurm import SlurmBackend, parse_duration, parse_rss_kb

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text(
        "#!/bin/sh\necho \"$@\" >> " + str(tmp_path / "sacct.args") + "\n"
        "printf '12_0|COMPLETED\\n12_[1-3%%1]|PENDING\\n13|CANCELLED by 0\\n'\n")
    (bin_dir / "squeue").write_text("#!/bin/sh\nprintf '14|RUNNING\\n'\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    states = SlurmBackend().states(["12_0", "12_2", "13", "14"])
    assert states == {"12_0": "COMPLETED", "12_2": "PENDING", "13": "CANCELLED",
                      "14": "RUNNING"}  # 14: not in accounting yet, squeue knows it
    assert (tmp_path / "sacct.args").read_text().split() == \
        ["-P", "-n", "-o", "JobID,State", "-j", "12,13,14", "-X"]
    assert parse_duration("1-02:03:04") == 93784 and parse_duration("00:01.500") == 1.5
    assert parse_duration("") is None
    assert parse_rss_kb("2048K") == 2048 and parse_rss_kb("3M") == 3072
    assert parse_rss_kb("4096") == 4 and parse_rss_kb("") is None

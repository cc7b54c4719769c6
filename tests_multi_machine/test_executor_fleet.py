"""fleetslurm.Executor on a fleet of real sshd "machines" with their own
workdirs and no shared filesystem: the pickled call goes to the machine and
the result comes back through the SSH transport."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetslurm import Executor
from fleetslurm.errors import RemoteJobError


@pytest.fixture
def ex_fleet(sshd_fleet, make_config, ssh_home, tmp_path, monkeypatch):
    m1, m2 = sshd_fleet(2)
    # m1's python is this one (it has cloudpickle); m2's is the system's bare python3
    files = make_config([m1, m2], heartbeat_interval=0.5, kill_wait=2,
                        overrides={"m1": {"python": sys.executable},
                                   "m2": {"python": "/usr/bin/python3"}})
    for k in list(os.environ):
        if k.startswith(("SLURM_", "SBATCH_")):
            monkeypatch.delenv(k)
    for k, v in files.env.items():
        monkeypatch.setenv(k, v)
    submit = tmp_path / "submit"
    submit.mkdir()
    monkeypatch.chdir(submit)
    yield files, m1, m2
    subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", "controller", "stop"],
                   env=dict(os.environ, **files.env), capture_output=True, timeout=60)


def where_and_what(data: bytes):
    """Runs on the machine: where it ran, what it got, a big answer back."""
    stage = os.environ.get("FLEETSLURM_STAGE_DIR")
    return {"stage": stage, "cwd": os.getcwd(), "files": sorted(os.listdir(stage)),
            "modes": {n: oct(os.stat(os.path.join(stage, n)).st_mode & 0o777)
                      for n in os.listdir(stage)},
            "stage_mode": oct(os.stat(stage).st_mode & 0o777),
            "sha": hashlib.sha256(data).hexdigest(), "back": data[::-1]}


def test_function_and_large_payload_travel_over_ssh(ex_fleet):
    files, m1, _ = ex_fleet
    data = os.urandom(6 * 1024 * 1024)  # 6 MiB out, 6 MiB back
    job = Executor(nodelist="m1").submit(where_and_what, data)
    out = job.result(timeout=180)
    assert out["sha"] == hashlib.sha256(data).hexdigest()
    assert out["back"] == data[::-1]
    # it ran in m1's own workdir, from files staged there through SFTP
    assert out["stage"].startswith(str(m1.workdir) + "/jobs/")
    assert out["stage"] != str(Path(job.paths["call"]).parent)
    from fleetslurm.api.executor import bigdata

    zip_name = ["fleetslurm_objser.zip"] if bigdata.available() else []
    assert out["files"] == ["call.pkl", *zip_name, "fleetslurm_runner.py"]
    assert set(out["modes"].values()) == {"0o600"} and out["stage_mode"] == "0o700"
    assert job.usage().node == "m1" and job.usage().cpu_time_s > 0
    # stdout/stderr came home too, and the machine forgot the job's files
    assert job.stdout() == "" and Path(job.paths["stdout"]).exists()
    deadline = time.monotonic() + 30
    while os.path.exists(out["stage"]) or list((m1.workdir / "stage").glob("*")):
        assert time.monotonic() < deadline, "the machine kept the job's files"
        time.sleep(0.2)


def test_map_and_failures_come_back_over_ssh(ex_fleet):
    files, m1, m2 = ex_fleet

    def describe(i):
        if i == 2:
            raise LookupError(f"task {i} looked in vain")
        print(f"task {i} on {os.environ['SLURMD_NODENAME']}")
        return i * 10, os.environ["SLURMD_NODENAME"]

    jobs = Executor(nodelist="m1", array_parallelism=2).map(describe, range(4))
    assert len({j.job_id.split("_")[0] for j in jobs}) == 1
    results = []
    for j in jobs:
        try:
            results.append(j.result(timeout=180))
        except RemoteJobError as exc:
            results.append(exc.remote_type)
            assert "task 2 looked in vain" in str(exc) and "in describe" in str(exc)
    assert results == [(0, "m1"), (10, "m1"), "LookupError", (30, "m1")]
    assert jobs[3].stdout() == "task 3 on m1\n"


def test_a_machine_python_without_cloudpickle_says_so(ex_fleet):
    files, _, m2 = ex_fleet
    if subprocess.run(["/usr/bin/python3", "-c", "import cloudpickle"],
                      capture_output=True).returncode == 0:
        pytest.skip("/usr/bin/python3 has cloudpickle here: no bare python to test with")
    err = Executor(nodelist="m2").submit(abs, -3).exception(timeout=180)
    assert err is not None and err.remote_type == "ModuleNotFoundError"
    assert "cloudpickle is not installed for /usr/bin/python3" in str(err)
    # the Executor's python wins over the machine's
    assert Executor(nodelist="m2", python=sys.executable).submit(abs, -3).result(
        timeout=180) == 3


def test_numpy_payload_and_result_go_by_hdf5_over_ssh(ex_fleet):
    np = pytest.importorskip("numpy")
    files, m1, _ = ex_fleet
    a = np.random.default_rng(7).random((500, 1000))  # 4 MB of float64

    def normalise(x):
        return {"mean": float(x.mean()), "centred": x - x.mean(),
                "staged": sorted(os.listdir(os.environ["FLEETSLURM_STAGE_DIR"]))}

    job = Executor(nodelist="m1").submit(normalise, a)
    out = job.result(timeout=180)
    assert out["mean"] == pytest.approx(a.mean())
    assert np.array_equal(out["centred"], a - a.mean())
    # the arrays went as HDF5 files, with the ObjectSerializer beside the runner
    assert out["staged"] == ["call.h5", "call.pkl", "fleetslurm_objser.zip",
                             "fleetslurm_runner.py"]
    folder = Path(job.paths["call"]).parent
    assert (folder / "result.h5").stat().st_size > 1_000_000

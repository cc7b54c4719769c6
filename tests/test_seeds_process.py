"""Process (run() in a job, usage on the Job and in sacct) and JobContainer
(a job in a Serializer file, executed where the file is, or submitted)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import fleetslurm
from fleetslurm import JobContainer, ObjectSerializer, Process, Serializer
from fleetslurm.errors import RemoteJobError, SerializationError, UsageError
from fleetslurm.slurm.units import format_rss_kb


class Burner(Process):
    """Burns CPU for a while and holds some memory."""

    slurm_options = {"mem": "400M", "time": "5"}

    def __init__(self, seconds: float, megabytes: int) -> None:
        self.seconds, self.megabytes = seconds, megabytes

    def run(self):
        block = bytearray(self.megabytes * 1024 * 1024)
        for i in range(0, len(block), 4096):  # touch every page
            block[i] = 1
        t0, n = time.process_time(), 0
        while time.process_time() - t0 < self.seconds:
            n += 1
        return {"touched": sum(block[::4096]), "spins": n > 0}


class NoRun(Process):
    pass


def test_a_process_runs_in_a_job_and_reports_cpu_and_memory(fleet_env):
    job = Burner(0.6, 80).submit()
    assert job.result(timeout=120) == {"touched": 80 * 256, "spins": True}
    usage = job.usage()
    assert usage.state == "COMPLETED" and usage.node == "localhost"
    assert usage.cpu_time_s >= 0.5
    assert usage.max_rss_kb >= 80 * 1024
    rec = fleet_env.record(job.job_id)
    assert rec["name"] == "Burner" and rec["mem_mb"] == 400 and rec["time_limit"] == 5
    out = fleet_env.run("sacct", "-j", job.job_id, "-P", "-n", "-o",
                        "JobID,State,TotalCPU,MaxRSS", check=True).stdout.splitlines()
    batch = [ln.split("|") for ln in out if ln.startswith(f"{job.job_id}.batch")]
    assert batch and batch[0][1] == "COMPLETED"
    # sacct prints MaxRSS as SLURM does (96M for 98304K): the same number, SLURM's units
    assert batch[0][3] == format_rss_kb(usage.max_rss_kb)
    minutes, seconds = batch[0][2].split(":")
    assert abs(int(minutes) * 60 + float(seconds) - usage.cpu_time_s) < 0.01


def test_a_process_without_run_fails_with_the_reason(fleet_env):
    job = NoRun().submit(backend="debug")
    with pytest.raises(RemoteJobError, match="NoRun must implement run"):
        job.result()
    assert Burner(0.0, 1).submit(backend="local").result(timeout=60)["touched"] == 256
    assert Burner(0.0, 1).execute() == {"touched": 256, "spins": False}


def test_container_executes_where_it_is_and_records_the_outcome(tmp_path):
    c = Burner(0.1, 4).save(tmp_path / "burn.h5")
    assert c.outcome() is None and isinstance(c.load(), Burner)
    assert c.execute() == {"touched": 4 * 256, "spins": True}
    out = c.outcome()
    assert out["state"] == "COMPLETED" and out["result"] == {"touched": 1024, "spins": True}
    assert out["usage"]["cpu_time_s"] >= 0.09 and out["usage"]["node"] == os.uname().nodename
    # a callable with arguments; arrays in the result are stored as arrays
    c2 = JobContainer.create(tmp_path / "lin.h5", np.linspace, 0.0, 1.0, num=5)
    assert np.array_equal(c2.execute(), np.linspace(0, 1, 5))
    assert ObjectSerializer(tmp_path / "lin.h5").info("/outcome/result").kind == "array"
    # a plain Serializer file holding a callable is a container too
    Serializer.serialize_to_file((divmod, (17, 5), {}), tmp_path / "plain.h5")
    assert JobContainer(tmp_path / "plain.h5").execute() == (3, 2)


def test_a_failing_container_records_the_error_and_raises(tmp_path):
    c = JobContainer.create(tmp_path / "bad.h5", int, "not a number")
    with pytest.raises(ValueError, match="invalid literal"):
        c.execute()
    out = c.outcome()
    assert out["state"] == "FAILED" and out["error"]["type"] == "ValueError"
    assert "invalid literal" in out["error"]["message"] and "Traceback" in out["error"]["traceback"]
    assert "result" not in out
    # running it again replaces the record
    JobContainer.create(tmp_path / "bad.h5", int, "12")
    assert c.execute() == 12 and c.outcome()["state"] == "COMPLETED"


def test_container_submitted_to_the_fleet_and_collected(fleet_env, tmp_path):
    c = Burner(0.2, 10).save(tmp_path / "remote.h5")
    job = c.submit()
    assert c.collect(job, timeout=120) == {"touched": 2560, "spins": True}
    out = c.outcome()
    assert out["state"] == "COMPLETED" and out["usage"]["job_id"] == job.job_id
    assert out["usage"]["node"] == "localhost" and out["usage"]["max_rss_kb"] >= 10 * 1024
    bad = JobContainer.create(tmp_path / "remote_bad.h5", int, "x")
    with pytest.raises(RemoteJobError, match="ValueError"):
        bad.collect(bad.submit(), timeout=120)
    assert bad.outcome()["state"] == "FAILED"
    assert bad.outcome()["error"]["type"] == "ValueError"


def test_container_bad_input(tmp_path):
    with pytest.raises(UsageError, match="does not exist; write one with JobContainer.create"):
        JobContainer(tmp_path / "none.h5").execute()
    ObjectSerializer(tmp_path / "other.h5").serialize([1, 2], "/data")
    with pytest.raises(SerializationError, match="is not a job container: it has no "
                                                 "'/object' entry"):
        JobContainer(tmp_path / "other.h5").execute()
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(SerializationError):
        JobContainer(tmp_path / "junk.h5").load()
    with pytest.raises(UsageError, match="holds a Process or a callable"):
        JobContainer.create(tmp_path / "x.h5", 42)
    with pytest.raises(UsageError, match="takes its inputs in its constructor"):
        JobContainer.create(tmp_path / "x.h5", Burner(0, 1), 3)
    assert fleetslurm.JobContainer is JobContainer and fleetslurm.Process is Process

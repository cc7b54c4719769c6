"""SLURMDriver(backend="slurm") and SLURMConstructor's scripts on a real SLURM
(Debian's slurm-wlm one-node cluster on this machine, /work/oracle): the same
calls that drive the fleet drive SLURM's own sbatch/squeue."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetslurm import SLURMConstructor, SLURMDriver
from fleetslurm.api.executor.backends.slurm import slurm_available
from fleetslurm.errors import InvalidJobId, SubmitError

GOLDEN = Path(__file__).resolve().parent / "golden" / "seeds"

_WHY = slurm_available()
pytestmark = pytest.mark.skipif(_WHY is not None, reason=f"no real SLURM here: {_WHY}")


@pytest.fixture
def here(tmp_path, monkeypatch, no_slurm_env):
    tmp_path.chmod(0o755)  # slurmd writes the output file as the job's user
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_constructed_script_runs_on_real_slurm_through_the_driver(here):
    script = SLURMConstructor().write_slurm_script(
        here / "train.sbatch", GOLDEN / "train.py", cpus=1, memory="100M", time="2",
        args=["a b"])
    driver = SLURMDriver("slurm")
    job = driver.submit_job(script, setup=["export EXTRA=1"],
                            slurm_args={"job_name": "fleetslurm-test"})
    try:
        assert driver.wait([job], timeout=120) == {job: "COMPLETED"}
    finally:
        driver.cancel_job(job)
    assert driver.check_job_status(job) == "COMPLETED"
    assert (here / f"slurm-{job}.out").read_text() == "train ['a b'] cpus 1\n"
    arr = driver.submit_job(script, slurm_args={"array": "0-1", "job_name": "fleetslurm-test"})
    try:
        assert driver.wait([arr], timeout=120) == {f"{arr}_0": "COMPLETED",
                                                   f"{arr}_1": "COMPLETED"}
    finally:
        driver.cancel_job(arr)
    assert driver.check_job_status(arr) == "COMPLETED"
    assert driver.check_all_job_statuses() == {job: "COMPLETED", f"{arr}_0": "COMPLETED",
                                               f"{arr}_1": "COMPLETED"}


def test_real_slurm_refusals_come_back_as_errors(here):
    (here / "ok.sh").write_text("#!/bin/sh\ntrue\n")
    driver = SLURMDriver("slurm")
    with pytest.raises(SubmitError, match="Invalid --time specification"):
        driver.submit_job(here / "ok.sh", slurm_args={"time": "soon"})
    with pytest.raises(InvalidJobId):
        driver.check_job_status("999999")


def test_slurmify_on_real_slurm(here, monkeypatch):
    """The decorator API with the slurm dispatcher: the same calls, SLURM's sbatch."""
    import fleetslurm
    from fleetslurm.api.compat import slurmify as sm

    monkeypatch.setattr(sm, "_SETTINGS", sm._Settings())
    monkeypatch.setenv("FLEETSLURM_HOME", str(here / "home"))
    d = fleetslurm.set_dispatcher("slurm")

    @fleetslurm.slurmify(job_name="fleetslurm-test", time="2")
    def double(x):
        return [2 * v for v in x]

    jid = double.distribute({1, 2})
    try:
        assert sorted(d.result(jid, timeout=120)) == [2, 4]
    finally:
        d.job(jid).cancel()
    with fleetslurm.Batch(max_size=2) as batch:
        for i in range(3):
            double.wait_for(jid).distribute([i])
    try:
        assert [d.result(j, timeout=120) for j in batch.job_ids] == [[[0], [2]], [[4]]]
    finally:
        for j in batch.job_ids:
            d.job(j).cancel()

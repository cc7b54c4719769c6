"""SLURMDriver on a real controller on this machine (and prepare_script, pure)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fleetslurm import SLURMDriver
from fleetslurm.api.compat.driver import prepare_script
from fleetslurm.errors import InvalidJobId, SubmitError, UsageError
from fleetslurm.slurm.option_env import sbatch_options


@pytest.fixture
def driver(fleet_env):
    return SLURMDriver()


# -- prepare_script (pure) ----------------------------------------------------------
SHELL = "#!/bin/bash\n#SBATCH -J x\n\n# a comment\n#SBATCH -c 2\necho hi\n#SBATCH --ignored\n"


def test_a_shell_script_gets_setup_after_its_sbatch_block():
    out = prepare_script(SHELL, "x.sh", setup=["export A=1"])
    assert out == ("#!/bin/bash\n#SBATCH -J x\n\n# a comment\n#SBATCH -c 2\n"
                   "# set up by fleetslurm's SLURMDriver\nexport A=1\necho hi\n#SBATCH --ignored\n")
    assert sbatch_options([], out, {})[0] == {"job_name": "x", "cpus_per_task": "2"}
    assert prepare_script(SHELL, "x.sh") == SHELL  # nothing to add: unchanged
    env_bash = "#!/usr/bin/env bash\necho\n"
    assert prepare_script(env_bash, "e", setup=["true"]).startswith("#!/usr/bin/env bash\n#")


def test_a_python_script_is_wrapped_keeping_its_directives(tmp_path):
    py = ("#!/usr/bin/env python3\n#SBATCH --job-name=py\nimport os, sys\n"
          "print(os.environ['A'], sys.argv[1:])\n")
    out = prepare_script(py, "p.py", setup=["export A=set-up"])
    assert out.startswith("#!/bin/bash\n#SBATCH --job-name=py\n")
    assert sbatch_options([], out, {})[0] == {"job_name": "py"}
    proc = subprocess.run(["bash", "-c", out, "job", "arg 1"], capture_output=True, text=True,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert proc.stdout == "set-up ['arg 1']\n", proc.stderr
    nobang = prepare_script("#SBATCH -c 3\nprint('plain')\n", "plain.py", python=sys.executable)
    assert sbatch_options([], nobang, {})[0] == {"cpus_per_task": "3"}
    proc = subprocess.run(["bash", "-c", nobang], capture_output=True, text=True,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert proc.stdout == "plain\n"
    assert list(tmp_path.iterdir()) == []


def test_not_a_batch_script():
    with pytest.raises(UsageError, match="This does not look like a batch script"):
        prepare_script("echo hi\n", "job.txt")
    with pytest.raises(UsageError, match="Batch script is empty"):
        prepare_script("", "job.sh")


# -- the driver on the fleet ----------------------------------------------------------
def test_submit_follow_and_override(driver, fleet):
    script = fleet.work / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH --job-name=fromfile\n#SBATCH -c 1\n"
                      "echo \"$GREETING $1 cpus=$SLURM_CPUS_PER_TASK\"\n")
    job = driver.submit_job(script, slurm_args={"cpus_per_task": 2, "mem": "100M"},
                            setup=["export GREETING=hello"], args=["world"])
    assert job.isdigit() and driver.submitted == [job]
    assert driver.check_job_status(job) in ("PENDING", "RUNNING", "COMPLETING", "COMPLETED")
    assert driver.wait(timeout=60) == {job: "COMPLETED"}
    assert driver.check_job_status(job) == "COMPLETED"
    assert (fleet.work / f"slurm-{job}.out").read_text() == "hello world cpus=2\n"
    rec = fleet.record(job)
    assert rec["name"] == "fromfile" and rec["cpus"] == 2 and rec["mem_mb"] == 100
    # the script was read at submission: changing it now changes nothing
    script.write_text("#!/bin/sh\nexit 3\n")
    arr = driver.submit_job(fleet.work / "job.sh", slurm_args={"array": "0-2"})
    assert driver.wait([arr], timeout=60) == {f"{arr}_{i}": "FAILED" for i in range(3)}
    assert driver.check_job_status(arr) == "FAILED"
    assert driver.check_job_status(f"{arr}_1") == "FAILED"
    assert driver.check_all_job_statuses() == {job: "COMPLETED", f"{arr}_0": "FAILED",
                                               f"{arr}_1": "FAILED", f"{arr}_2": "FAILED"}


def test_python_script_with_modules_fails_with_a_message_where_there_are_none(driver, fleet):
    py = fleet.work / "analysis.py"
    py.write_text("print('ran')\n")
    ok = driver.submit_job(py)  # a .py without #!: run with python3
    bad = driver.submit_job(py, modules=["gcc/12"])
    states = driver.wait(timeout=60)
    assert (fleet.work / f"slurm-{ok}.out").read_text() == "ran\n"
    out = (fleet.work / f"slurm-{bad}.out").read_text()
    if states[bad] == "COMPLETED":
        pytest.skip("this machine has environment modules installed")
    assert states == {ok: "COMPLETED", bad: "FAILED"}
    assert "'module' is not available on" in out


def test_driver_bad_input(driver, fleet):
    with pytest.raises(UsageError, match="Unable to open file .*nope.sh: it does not exist"):
        driver.submit_job(fleet.work / "nope.sh")
    (fleet.work / "notes.txt").write_text("echo hi\n")
    with pytest.raises(UsageError, match="This does not look like a batch script"):
        driver.submit_job(fleet.work / "notes.txt")
    (fleet.work / "ok.sh").write_text("#!/bin/sh\ntrue\n")
    with pytest.raises(UsageError, match="unknown SLURM option 'cpus'"):
        driver.submit_job(fleet.work / "ok.sh", slurm_args={"cpus": 2})
    with pytest.raises(SubmitError, match="Requested node configuration is not available"):
        driver.submit_job(fleet.work / "ok.sh", slurm_args={"mem": "64G"})
    with pytest.raises(UsageError, match="not strings"):
        driver.submit_job(fleet.work / "ok.sh", modules="gcc")
    with pytest.raises(InvalidJobId, match="job 9999: no such job"):
        driver.check_job_status("9999")
    with pytest.raises(UsageError, match="valid backends are: fleet, slurm"):
        SLURMDriver("cloud")
    assert driver.submitted == [] and driver.check_all_job_statuses() == {}

"""fleetslurm.api.executor.client: the Python layer over the controller's RPC, against a
real controller on this machine."""

from __future__ import annotations


import pytest

from fleetslurm.api.executor.client import FleetClient, option_names, options_argv
from fleetslurm.errors import InvalidJobId, SubmitError, UsageError


@pytest.fixture
def fc(fleet_env):
    return FleetClient()


def test_options_argv_uses_sbatch_names():
    assert options_argv({"cpus_per_task": 2, "mem": "1G", "exclusive": True,
                         "requeue": False, "comment": None}) == \
        ["--cpus-per-task=2", "--mem=1G", "--exclusive"]
    assert options_argv({"job-name": "a b"}) == ["--job-name=a b"]
    assert "cpus_per_task" in option_names() and "wrap" not in option_names()


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(UsageError) as err:
        options_argv({"cpu": 1})
    assert "unknown SLURM option 'cpu'" in str(err.value)
    assert "cpus_per_task" in str(err.value) and "partition" in str(err.value)
    with pytest.raises(UsageError, match="is a flag"):
        options_argv({"hold": "yes"})


def test_submit_wait_record_and_output(fc, fleet):
    job = fc.submit("#!/bin/sh\n#SBATCH --job-name=fromscript\necho hi $1 $SLURM_CPUS_PER_TASK\n",
                    {"cpus_per_task": 2}, ["there"], cwd=str(fleet.work))
    assert job.isdigit()
    assert fc.wait([job], timeout=60) == {job: "COMPLETED"}
    rec = fc.job(job)
    assert rec["id"] == job and rec["name"] == "fromscript"
    assert rec["nodes"] == ["localhost"] and rec["exit_code"] == 0
    assert rec["stdout"] == str(fleet.work / f"slurm-{job}.out")
    assert open(rec["stdout"]).read() == "hi there 2\n"
    assert fc.read_output(job) == ("hi there 2\n", len("hi there 2\n"))
    assert rec["total_cpu"] is not None and rec["max_rss_kb"] > 0


def test_options_win_over_script_lines_and_values_are_checked(fc, fleet):
    job = fc.submit("#!/bin/sh\n#SBATCH --job-name=a\ntrue\n", {"job_name": "b"},
                    cwd=str(fleet.work))
    assert fc.job(job)["name"] == "b"
    with pytest.raises(UsageError, match="Invalid --time specification"):
        fc.submit("#!/bin/sh\ntrue\n", {"time": "abc"})
    with pytest.raises(SubmitError, match="Requested node configuration is not available"):
        fc.submit("#!/bin/sh\ntrue\n", {"cpus_per_task": 64})
    with pytest.raises(UsageError, match="does not look like a batch script"):
        fc.submit("echo no shebang\n")


def test_array_states_cancel_and_unknown_ids(fc, fleet):
    job = fc.submit("#!/bin/sh\nsleep 30\n", {"array": "0-2%1"}, cwd=str(fleet.work))
    states = fc.states([job])
    assert sorted(states) == [f"{job}_0", f"{job}_1", f"{job}_2"]
    with pytest.raises(InvalidJobId, match="array of 3 tasks"):
        fc.job(job)
    fc.cancel([job])
    assert set(fc.wait([job], timeout=60).values()) == {"CANCELLED"}
    assert fc.jobs(["99999"]) == []
    with pytest.raises(InvalidJobId, match="no such job"):
        fc.job("99999")
    fc.cancel(["99999"])  # unknown: silent, as scancel


def test_wait_times_out(fc, fleet):
    job = fc.submit("#!/bin/sh\nsleep 30\n", cwd=str(fleet.work))
    with pytest.raises(TimeoutError, match=f"still not finished after 0.5 s: {job}"):
        fc.wait([job], timeout=0.5)
    fc.cancel([job])


def test_cluster_status(fc):
    import time

    deadline = time.monotonic() + 60
    while fc.cluster_status()["localhost"]["state"] in ("down", "unk"):  # until its hello
        assert time.monotonic() < deadline, fc.cluster_status()
        time.sleep(0.1)
    status = fc.cluster_status()
    assert list(status) == ["localhost"]
    node = status["localhost"]
    assert node["cpus_total"] == 2 and node["memory_total_mb"] == 4096
    assert node["cpus_used"] == 0 and node["gpus_total"] == 0
    assert node["state"] in ("idle", "mix", "alloc")
    assert "debug" in node["partitions"]
    assert node["load"] is not None and node["memory_free_mb"] > 0


def test_a_stuck_controller_does_not_hang_the_caller(tmp_path):
    """A controller that accepts but never answers: ControllerError, not a hang."""
    import socket
    import threading
    import time

    from fleetslurm.errors import ControllerError
    from fleetslurm.paths import StatePaths, private_dir

    home = tmp_path / "home"
    private_dir(home)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(StatePaths(home).socket))
    server.listen(1)
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    try:
        t0 = time.monotonic()
        with pytest.raises(ControllerError, match="the controller did not answer 'ping' "
                                                  "within 0.5 s"):
            FleetClient(home=str(home), timeout=0.5).ping()
        assert time.monotonic() - t0 < 10
    finally:
        server.close()

"""Differences the differential suite (tests_slurm/) found against a real
SLURM 22.05, pinned here as fast tests that need no SLURM. Each names what
the oracle printed."""

from __future__ import annotations

import time

import pytest

from fleetslurm.cli.common import warn
from fleetslurm.errors import UsageError
from fleetslurm.slurm.fmt_common import end_time, start_time
from fleetslurm.slurm.jobspec import build_spec, job_environment
from fleetslurm.slurm.scontrol_fmt import show_job
from fleetslurm.slurm.squeue_fmt import default_sort_key, render
from fleetslurm.views import TOP_PRIORITY, job_record

NOW = time.mktime(time.strptime("2026-11-21T14:00:00", "%Y-%m-%dT%H:%M:%S"))


def _task(**kw) -> dict:
    task = dict(task_id=12, job_id=12, array_index=None, state="PENDING", reason="None",
                req={"name": "x", "partition": "debug", "cpus": 1, "mem_mb": 0,
                     "time_limit": None, "nice": 0, "nodelist": [], "exclude": [],
                     "begin_time": None, "dependency": ""},
                held=0, submit_time=NOW, eligible_time=None, start_time=None, end_time=None,
                node=None, gpu_ids=None, alloc_cpus=None, alloc_mem_mb=None, run_key=None,
                restart_count=0, exit_code=None, exit_signal=None, cancelled_by=None,
                stdout=None, stderr=None, collected=0)
    task.update(kw)
    return task


def _job(**spec) -> dict:
    base = {"name": "x", "workdir": "/w", "ntasks": 1, "cpus_per_task": 1, "output": None,
            "error": None, "command": "", "qos": "", "account": ""}
    base.update(spec)
    return {"job_id": 12, "user": "alice", "uid": 1000, "spec": base}


# -- job records ---------------------------------------------------------------

@pytest.mark.parametrize("state,code,sig,reason", [
    ("FAILED", 3, 0, "NonZeroExitCode"),       # --wrap 'exit 3'
    ("FAILED", 0, 9, "JobLaunchFailure"),      # --wrap 'kill -9 $$'
    ("TIMEOUT", 0, 15, "TimeLimit"),
    ("COMPLETED", 0, 0, "None"),
    ("CANCELLED", 0, 15, "None"),
])
def test_reason_of_an_ended_job(state, code, sig, reason):
    rec = job_record(_task(state=state, exit_code=code, exit_signal=sig, start_time=NOW,
                           end_time=NOW + 1, node="n1"), _job())
    assert rec["reason"] == reason


def test_priority_held_zero_else_falling_with_age():
    held = job_record(_task(held=1), _job())
    older = job_record(_task(), _job())
    newer = job_record(_task(task_id=13, job_id=13), dict(_job(), job_id=13))
    assert held["priority"] == 0 and held["reason"] == "JobHeldUser"
    assert older["priority"] == TOP_PRIORITY - 12 > newer["priority"]


def test_eligible_time_and_qos():
    ran = job_record(_task(state="COMPLETED", start_time=NOW + 5, end_time=NOW + 6), _job())
    assert ran["eligible_time"] == NOW  # oracle: EligibleTime = SubmitTime
    assert job_record(_task(held=1), _job())["eligible_time"] is None
    assert ran["qos"] == ""  # no accounting database: QOS=(null)


def test_pending_begin_job_shows_its_expected_start():
    # oracle: sbatch --begin=now+1hour ... -> StartTime=<begin> EndTime=Unknown, squeue %e NONE
    rec = job_record(_task(reason="BeginTime",
                           req=dict(_task()["req"], begin_time=NOW + 3600)), _job())
    assert start_time(rec) == NOW + 3600
    assert render("%e", [rec], now=NOW, header=False) == "NONE\n"
    assert "StartTime=2026-11-21T15:00:00 EndTime=Unknown" in show_job(rec, NOW)
    held = dict(rec, reason="JobHeldUser")
    assert start_time(held) is None and end_time(held, NOW) is None


# -- scontrol ------------------------------------------------------------------

def test_stdout_shown_half_expanded():
    # oracle: sbatch --hold -J nm -o 'ho-%j-%x-%A-%a-%u-%N-%5j-%%j.out' ...; scontrol show job
    rec = job_record(_task(), _job(name="nm", output="ho-%j-%x-%A-%a-%u-%N-%5j-%%j.out"))
    text = show_job(rec, NOW)
    assert "StdOut=/w/ho-12-x-12-4294967294-alice-%N-%5j-%12.out\n" in text
    assert "StdErr=/w/ho-12-x-12-4294967294-alice-%N-%5j-%12.out\n" in text


def test_stdout_of_an_array():
    pending = dict(job_record(_task(array_index=0), _job()), array_task_id=None,
                   array_task_str="0-9%4")
    assert "StdOut=/w/slurm-12_4294967294.out\n" in show_job(pending, NOW)
    task = job_record(_task(task_id=15, array_index=3), _job())
    assert "StdOut=/w/slurm-12_3.out\n" in show_job(task, NOW)


def test_mem_per_cpu_and_requested_nodes():
    rec = job_record(_task(req=dict(_task()["req"], nodelist=["n1"], cpus=2, mem_mb=600)),
                     _job(mem_per_cpu_mb=300))
    text = show_job(rec, NOW)
    assert "ReqNodeList=n1 ExcNodeList=(null)" in text
    assert "MinCPUsNode=1 MinMemoryCPU=300M MinTmpDiskNode=0" in text
    assert render("%m", [rec], now=NOW, header=False) == "300M\n"


# -- squeue ----------------------------------------------------------------------

def test_default_sort_is_partition_state_text_then_priority():
    def rec(job_id, state, priority):
        return {"job_id": job_id, "partition": "debug", "state": state, "priority": priority}

    jobs = [rec(1, "RUNNING", 9), rec(2, "PENDING", 0), rec(3, "PENDING", 7),
            rec(4, "COMPLETED", 5), rec(5, "TIMEOUT", 6), rec(6, "FAILED", 8),
            rec(7, "PENDING", 0)]
    order = [j["job_id"] for j in sorted(jobs, key=default_sort_key)]
    assert order == [4, 6, 3, 7, 2, 1, 5]  # CD F PD(prio, then newest) R TO


# -- job environment -------------------------------------------------------------

def _env(opts: dict, environ: dict | None = None, **kw) -> dict:
    spec = build_spec(opts, script="#!/bin/sh\ntrue\n", script_args=[],
                      env=environ or {"HOME": "/home/alice", "MARK": "1"}, cwd="/w",
                      submit_host="sub", now=NOW)
    spec.update(kw)
    return job_environment(spec, job_id=12, node="n1", partition="debug", cluster="c",
                           cpus=1, gpu_ids=[], user="alice", uid=1000)


def test_environment_variables_slurm_sets():
    env = _env({}, gid=100, prio_process=0)
    assert {k: env[k] for k in ("SLURM_JOB_GID", "SLURM_PRIO_PROCESS", "SLURM_NODE_ALIASES",
                                "SLURM_TOPOLOGY_ADDR", "SLURM_TOPOLOGY_ADDR_PATTERN",
                                "HOSTNAME", "TMPDIR")} == {
        "SLURM_JOB_GID": "100", "SLURM_PRIO_PROCESS": "0", "SLURM_NODE_ALIASES": "(null)",
        "SLURM_TOPOLOGY_ADDR": "n1", "SLURM_TOPOLOGY_ADDR_PATTERN": "node", "HOSTNAME": "n1",
        "TMPDIR": "/tmp"}
    # without accounting SLURM sets neither unless the job names an account
    assert "SLURM_JOB_QOS" not in env and "SLURM_JOB_ACCOUNT" not in env
    assert "SLURM_OPEN_MODE" not in env and "SLURM_EXPORT_ENV" not in env
    assert _env({"account": "lab"})["SLURM_JOB_ACCOUNT"] == "lab"
    assert _env({"open_mode": "append"})["SLURM_OPEN_MODE"] == "a"
    assert _env({"open_mode": "truncate"})["SLURM_OPEN_MODE"] == "t"


def test_export_none_gives_a_login_environment():
    env = _env({"export": "NONE"})
    assert env["SLURM_EXPORT_ENV"] == "NONE" and env["SLURM_GET_USER_ENV"] == "1"
    assert "MARK" not in env
    assert (env["HOME"], env["USER"], env["LOGNAME"]) == ("/home/alice", "alice", "alice")
    # a submitter without SHELL (a CI runner): the passwd entry supplies it
    import pwd
    root = pwd.getpwuid(0)
    env = job_environment(build_spec({"export": "NONE"}, script="#!/bin/sh\ntrue\n",
                                     script_args=[], env={"MARK": "1"}, cwd="/w",
                                     submit_host="sub", now=NOW),
                          job_id=12, node="n1", partition="debug", cluster="c", cpus=1,
                          gpu_ids=[], user=root.pw_name, uid=0)
    assert (env["SHELL"], env["HOME"]) == (root.pw_shell, root.pw_dir) and "MARK" not in env
    env = _env({"export": "ALL,FOO=1"})
    assert env["SLURM_EXPORT_ENV"] == "ALL,FOO=1" and env["MARK"] == "1" and env["FOO"] == "1"


# -- sbatch messages -------------------------------------------------------------

@pytest.mark.parametrize("value,ok", [("BEGIN", True), ("begin", True), ("BEGIN,BAD", True),
                                      ("ALL,NONE", True), ("BEGINX", False), ("", False)])
def test_mail_type_validation(value, ok):
    # oracle: sbatch --mail-type=BEGINX -> "Invalid --mail-type specification", exit 255
    if ok:
        _env({"mail_type": [value]})
        return
    with pytest.raises(UsageError, match=r"^Invalid --mail-type specification$") as info:
        _env({"mail_type": [value]})
    assert info.value.code == 255


def test_begin_garbage_names_the_position_first(capsys):
    with pytest.raises(UsageError) as info:
        _env({"begin": "garbage"})
    warn("sbatch", str(info.value))
    assert capsys.readouterr().err == ("Invalid time specification (pos=0): garbage\n"
                                       "sbatch: error: Invalid --begin specification\n")


def test_fatal_is_not_an_error_line(capsys):
    warn("sbatch", "fatal: --mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive.")
    assert capsys.readouterr().err == (
        "sbatch: fatal: --mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive.\n")


# -- a machine as SLURM shows a node ------------------------------------------------

def test_host_name_in_patterns_and_node_facts(fleet):
    # oracle: -o 'n-%N.out' on node "localhost" of host "vm" writes n-vm.out;
    # scontrol show node: Version=22.05.8, OS=<uname -s -r -v>, SlurmdStartTime=<time>
    import os
    import socket

    job = fleet.sbatch("-o", "n-%N.out", "--wrap", "true")
    assert fleet.wait(job)["state"] == "COMPLETED"
    assert (fleet.work / f"n-{socket.gethostname().split('.')[0]}.out").exists()
    node = fleet.run("scontrol", "show", "node", "localhost", check=True).stdout
    uname = os.uname()
    assert f"OS={uname.sysname} {uname.release} {uname.version} \n" in node
    assert "NodeHostName=localhost Version=22.05.8\n" in node
    assert "SlurmdStartTime=None" not in node and "LastBusyTime=Unknown" not in node


def test_srun_step_environment(fleet):
    # oracle, in an -n 2 job: srun -n 2 -> "0 block 0022 0,1 2"; srun -n 1 -> cyclic;
    # -o 'st-%N-%t.out' names the host, not the node
    import socket

    job = fleet.sbatch("-n", "2", "--wrap",
                       "umask 0022; srun -o 'st-%N-%t.out' sh -c 'echo $SLURM_PROCID "
                       "$SLURM_DISTRIBUTION $SLURM_UMASK $SLURM_GTIDS "
                       "$SLURM_JOB_CPUS_PER_NODE_PACK_GROUP_0'; "
                       "srun -n 1 sh -c 'echo $SLURM_DISTRIBUTION $SLURM_GTIDS'")
    assert fleet.wait(job)["state"] == "COMPLETED"
    host = socket.gethostname().split(".")[0]
    assert [(fleet.work / f"st-{host}-{t}.out").read_text() for t in (0, 1)] == \
        ["0 block 0022 0,1 2\n", "1 block 0022 0,1 2\n"]
    assert (fleet.work / f"slurm-{job}.out").read_text() == "cyclic 0\n"

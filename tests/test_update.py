"""``scontrol update`` of jobs, ``--begin`` and ``--hold``/release, end to end,
with SLURM 22.05's messages and exit statuses (each checked on the oracle)."""

from __future__ import annotations

import os
import re
import time

import pytest

from fleetslurm.errors import InvalidValue
from fleetslurm.slurm.units import format_datetime, parse_datetime


def _show(fleet, job: int) -> dict[str, str]:
    text = fleet.run("scontrol", "show", "job", str(job), check=True).stdout
    return dict(re.findall(r"(\S+?)=(\S*)", text))


def test_update_a_pending_job(fleet):
    other = fleet.sbatch("--hold", "--wrap", "true")
    job = fleet.sbatch("--hold", "-J", "old", "--wrap", "true")
    for kv in ("TimeLimit=10", "Partition=short", "Nice=10", f"Dependency=afterok:{other}",
               "StartTime=now+1hour", "JobName=new", "Comment=why-not"):
        proc = fleet.run("scontrol", "update", f"JobId={job}", kv)
        assert (proc.returncode, proc.stderr) == (0, ""), kv
    show = _show(fleet, job)
    assert (show["TimeLimit"], show["Partition"], show["Nice"], show["JobName"],
            show["Comment"]) == ("00:10:00", "short", "10", "new", "why-not")
    assert show["Dependency"].startswith(f"afterok:{other}")
    assert fleet.run("squeue", "-h", "-j", str(job), "-o", "%l|%P|%j|%y", check=True).stdout \
        == "10:00|short|new|10\n"
    # keys are case-insensitive, several at once
    fleet.run("scontrol", "update", f"jobid={job}", "timelimit=1-0", "nice=5", check=True)
    show = _show(fleet, job)
    assert (show["TimeLimit"], show["Nice"]) == ("1-00:00:00", "5")
    # Nice takes atoi's view, as SLURM's does
    fleet.run("scontrol", "update", f"JobId={job}", "Nice=abc", check=True)
    assert _show(fleet, job)["Nice"] == "0"
    fleet.run("scancel", str(job), str(other), check=True)


def test_updates_steer_the_scheduler(wide_fleet):
    fleet = wide_fleet
    first = fleet.sbatch("--wrap", "sleep 30")
    fleet.wait(first, {"RUNNING"})
    # (held while they are changed: they would run at once otherwise)
    dep = fleet.sbatch("--hold", "--wrap", "true")
    fleet.run("scontrol", "update", f"JobId={dep}", f"Dependency=afterok:{first}", check=True)
    later = fleet.sbatch("--hold", "--wrap", "true")
    fleet.run("scontrol", "update", f"JobId={later}", "StartTime=now+1hour", check=True)
    moved = fleet.sbatch("--hold", "--wrap", "true")
    fleet.run("scontrol", "update", f"JobId={moved}", "Partition=short", "TimeLimit=5",
              check=True)
    fleet.run("scontrol", "release", str(dep), str(later), str(moved), check=True)
    time.sleep(2)
    assert fleet.record(dep)["state"] == "PENDING"
    assert fleet.record(dep)["reason"] == "Dependency"
    assert (fleet.record(later)["state"], fleet.record(later)["reason"]) == \
        ("PENDING", "BeginTime")
    eligible = _show(fleet, later)["EligibleTime"]
    assert abs(time.mktime(time.strptime(eligible, "%Y-%m-%dT%H:%M:%S")) - time.time()
               - 3600) < 60
    rec = fleet.wait(moved)
    assert (rec["state"], rec["partition"], rec["time_limit"]) == ("COMPLETED", "short", 5)
    # clearing the dependency and the start time lets them run
    fleet.run("scontrol", "update", f"JobId={dep}", "Dependency=", check=True)
    fleet.run("scontrol", "update", f"JobId={later}", "StartTime=now", check=True)
    assert fleet.wait(dep)["state"] == "COMPLETED"
    assert fleet.wait(later)["state"] == "COMPLETED"
    fleet.run("scancel", str(first), check=True)


def test_nice_orders_pending_jobs(fleet):
    blocker = fleet.sbatch("--exclusive", "--wrap", "sleep 30")
    fleet.wait(blocker, {"RUNNING"})
    a = fleet.sbatch("--exclusive", "--wrap", "sleep 2")
    b = fleet.sbatch("--exclusive", "--wrap", "sleep 2")
    fleet.run("scontrol", "update", f"JobId={a}", "Nice=1000", check=True)
    fleet.run("scancel", str(blocker), check=True)
    fleet.wait(b, {"RUNNING"}, timeout=30)
    assert fleet.record(a)["state"] == "PENDING"  # b goes first now
    assert fleet.wait(a)["state"] == "COMPLETED"


def test_update_refusals(fleet):
    job = fleet.sbatch("--hold", "--wrap", "true")
    cases = [
        ([f"JobId={job}", "Foo=bar"],
         "Update of this parameter is not supported: Foo=bar\nRequest aborted\n"),
        ([f"JobId={job}", "Nice=5", "Foo=1"],
         "Update of this parameter is not supported: Foo=1\nRequest aborted\n"),
        ([f"JobId={job}", "foo"], "Invalid input: foo\nRequest aborted\n"),
        ([f"JobId={job}", "TimeLimit=abc"], "scontrol: error: Invalid TimeLimit value\n"),
        ([f"JobId={job}", "TimeLimit="], "scontrol: error: Invalid TimeLimit value\n"),
        ([f"JobId={job}", "StartTime=now+1hour", "TimeLimit=abc"],
         "scontrol: error: Invalid TimeLimit value\n"),
        ([f"JobId={job}", "Partition=nosuch"],
         f"Invalid partition name specified for job {job}\n"),
        ([f"JobId={job}", "Partition="], f"Invalid partition name specified for job {job}\n"),
        ([f"JobId={job}", "Dependency=bogus"], f"Job dependency problem for job {job}\n"),
        ([f"JobId={job}", f"Dependency=afterok:{job}"],
         f"Job dependency problem for job {job}\n"),
        ([f"JobId={job}", "StartTime=garbage"],
         "Invalid time specification (pos=0): garbage\nNo changes specified\n"),
        ([f"JobId={job}", "StartTime="], "No changes specified\n"),
        ([f"JobId={job}"], "No changes specified\n"),
        (["JobId=abc", "TimeLimit=5"], "Invalid job id specified for job abc\n"),
        ([f"JobId={job}_1", "TimeLimit=5"], f"{job}_1: Invalid job id specified\n"),
        (["TimeLimit=5"], "No valid entity in update command\nInput line must include "
                          '"NodeName", "PartitionName", "Reservation", "JobId", or '
                          '"SlurmctldDebug"\n'),
        ([], "too few arguments for update keyword\n"),
    ]
    for args, stderr in cases:
        proc = fleet.run("scontrol", "update", *args)
        assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", stderr), args
    # nothing of the refused lines was stored
    show = _show(fleet, job)
    assert (show["TimeLimit"], show["Nice"], show["Partition"], show["Dependency"]) == \
        ("UNLIMITED", "0", "debug", "(null)")


def test_running_and_finished_jobs(fleet):
    run = fleet.sbatch("-t", "20", "--wrap", "sleep 60")
    fleet.wait(run, {"RUNNING"})
    ok = ["TimeLimit=10", "Nice=10", "JobName=renamed", "Comment=c", "Partition=debug"]
    for kv in ok:
        proc = fleet.run("scontrol", "update", f"JobId={run}", kv)
        assert (proc.returncode, proc.stderr) == (0, ""), kv
    for kv in ("Dependency=afterok:1", "StartTime=now+1hour", "Partition=short",
               "NumCPUs=2", "MinMemoryNode=10"):
        proc = fleet.run("scontrol", "update", f"JobId={run}", kv)
        assert (proc.returncode, proc.stderr) == (
            1, f"Job is no longer pending execution for job {run}\n"), kv
    show = _show(fleet, run)
    assert (show["TimeLimit"], show["Nice"], show["JobName"], show["Partition"]) == \
        ("00:10:00", "10", "renamed", "debug")
    # root may also raise a running job's limit (others may only lower it)
    fleet.run("scontrol", "update", f"JobId={run}", "TimeLimit=30", check=True)
    assert _show(fleet, run)["TimeLimit"] == "00:30:00"
    fleet.run("scancel", str(run), check=True)
    fleet.wait(run)
    for kv in ("TimeLimit=3", "Nice=5", "Comment=x"):
        proc = fleet.run("scontrol", "update", f"JobId={run}", kv)
        assert (proc.returncode, proc.stderr) == (1, f"Job has already finished for job {run}\n")


def test_hold_and_release_cases(fleet):
    held = fleet.sbatch("-H", "--wrap", "true")
    _until(lambda: fleet.record(held)["reason"] == "JobHeldUser")  # sbatch --hold: user hold
    fleet.run("scontrol", "release", str(held), check=True)
    assert fleet.wait(held)["state"] == "COMPLETED"
    proc = fleet.run("scontrol", "hold", str(held))
    assert (proc.returncode, proc.stderr) == (
        1, f"Job has already finished for job {held}\nslurm_suspend error: Job has already "
           "finished\n")
    proc = fleet.run("scontrol", "release", str(held))
    assert proc.returncode == 1
    # a running job: hold and release change nothing and succeed, as in SLURM 22.05
    run = fleet.sbatch("--wrap", "sleep 30")
    fleet.wait(run, {"RUNNING"})
    assert fleet.run("scontrol", "hold", str(run)).returncode == 0
    assert fleet.run("scontrol", "release", str(run)).returncode == 0
    assert fleet.record(run)["state"] == "RUNNING"
    # uhold is a user hold; root's plain hold an admin hold
    pend = fleet.sbatch("--begin=now+1hour", "--wrap", "true")
    fleet.run("scontrol", "uhold", str(pend), check=True)
    assert fleet.record(pend)["reason"] == "JobHeldUser"
    fleet.run("scontrol", "release", str(pend), check=True)
    _until(lambda: fleet.record(pend)["reason"] == "BeginTime")
    if os.getuid() == 0:
        fleet.run("scontrol", "hold", str(pend), check=True)
        assert fleet.record(pend)["reason"] == "JobHeldAdmin"
        assert "Reason=JobHeldAdmin" in fleet.run("scontrol", "show", "job", str(pend)).stdout
    fleet.run("scancel", str(run), str(pend), check=True)


def _until(check, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


# -- --begin -----------------------------------------------------------------------

def test_begin_waits_then_runs(fleet):
    t0 = time.time()
    job = fleet.sbatch("--begin=now+4", "--wrap", "true")
    time.sleep(1)
    rec = fleet.record(job)
    assert (rec["state"], rec["reason"]) == ("PENDING", "BeginTime")
    assert _show(fleet, job)["EligibleTime"] == format_datetime(rec["eligible_time"])
    assert rec["eligible_time"] >= int(t0) + 3
    eligible = rec["eligible_time"]
    rec = fleet.wait(job, timeout=30)
    assert rec["state"] == "COMPLETED"
    # SLURM's times are whole seconds: now+4 is the submission's second + 4,
    # which can be under 3.5 s after t0 (t0 = 12.6 -> 16.0)
    assert rec["start_time"] >= max(eligible, int(t0) + 4)


@pytest.mark.parametrize("value, stderr", [
    ("4pm", "Invalid time specification (pos=1): 4pm\n"),
    ("garbage", "Invalid time specification (pos=0): garbage\n"),
    ("elevenses", "Invalid time specification (pos=0): elevenses\n"),
    ("", ""),
])
def test_begin_refused(fleet, value, stderr):
    proc = fleet.run("sbatch", f"--begin={value}", "--wrap", "true")
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        255, "", stderr + "sbatch: error: Invalid --begin specification\n")


def _local(*parts: int) -> float:
    year, month, day, *rest = parts
    hour, minute, second = (list(rest) + [0, 0, 0])[:3]
    return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))


# What SLURM 22.05 made of each --begin at 2026-11-21T14:22:31 (a Saturday):
# StartTime from `scontrol show job` of a held job submitted with it.
NOW = _local(2026, 11, 21, 14, 22, 31)


@pytest.mark.parametrize("text, expected", [
    ("now+60", NOW + 60),
    ("now+1hour", NOW + 3600),
    ("now + 5 minutes", NOW + 300),
    ("now+2days", NOW + 2 * 86400),
    ("now+1week", NOW + 7 * 86400),
    ("now-5", NOW - 5),
    ("16:00", _local(2026, 11, 21, 16)),
    ("16:00:30", _local(2026, 11, 21, 16, 0, 30)),
    ("10:00 pm", _local(2026, 11, 21, 22)),
    ("12:00am", _local(2026, 11, 22)),
    ("2027-01-05", _local(2027, 1, 5)),
    ("2027-01-05T10:11", _local(2027, 1, 5, 10, 11)),
    ("2027-01-05T10:11:12", _local(2027, 1, 5, 10, 11, 12)),
    ("midnight", _local(2026, 11, 22)),
    ("noon", _local(2026, 11, 22, 12)),
    ("teatime", _local(2026, 11, 21, 16)),
    ("fika", _local(2026, 11, 21, 15)),
    ("tomorrow", _local(2026, 11, 22)),
    ("tomorrowT10:00", _local(2026, 11, 22, 10)),
    ("0105", _local(2027, 1, 5)),
    ("1231", _local(2026, 12, 31)),
    ("01/05", _local(2027, 1, 5)),
    ("01/05/27", _local(2027, 1, 5)),
    ("01.05.27", _local(2027, 1, 5)),
    ("01/05-10:00", _local(2027, 1, 5, 10)),
    ("now+1hourT16:00", _local(2026, 11, 21, 16)),
    ("uts1900000000", 1900000000.0),
])
def test_begin_forms_as_slurm_reads_them(text, expected):
    assert parse_datetime(text, NOW) == expected


@pytest.mark.parametrize("text, pos", [
    ("4pm", 1), ("elevenses", 0), ("garbage", 0), ("now+", 3), ("now+5x", 4),
    ("now+5minutesfoo", 12), ("now 5", 4), ("now+30 min", 6), ("25:00", 0),
    ("2027-13-01", 5), ("2027-01-32", 8), ("2027-1-5", 0), ("01/5/2", 6), ("12-", 2),
    ("13/01", 0), ("x", 0), ("10:5", 4), ("13:00pm", 5), ("13pm", 0), ("uts12", 0),
])
def test_begin_errors_as_slurm_reports_them(text, pos):
    with pytest.raises(InvalidValue) as info:
        parse_datetime(text, NOW)
    assert str(info.value) == f"Invalid time specification (pos={pos}): {text}"

"""A job suspended by its workstation's policy, as squeue and scontrol show
it; the figures are those of real SLURM 22.05 for ``scontrol suspend`` and
``scontrol resume`` (oracle run below)."""

from __future__ import annotations

import time

from fleetslurm.slurm import squeue_fmt
from fleetslurm.slurm.scontrol_fmt import show_job
from fleetslurm.views import _suspension


def _epoch(text: str) -> float:
    return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))


# oracle: sbatch -t 5 -c 1 --mem=10 --wrap 'sleep 300' (2503), started 19:03:30;
#         scontrol suspend at 19:03:35, shown at 19:03:39:
#   squeue -o "%i %t %T %M %l %r %R %e"
#     2503 S SUSPENDED 0:05 5:00 None localhost 2026-12-07T19:08:30
#   scontrol show job: JobState=SUSPENDED Reason=None  RunTime=00:00:05
#     StartTime=2026-12-07T19:03:30 EndTime=2026-12-07T19:08:30
#     SuspendTime=2026-12-07T19:03:35 SecsPreSuspend=5
#   scontrol resume at 19:03:39, shown at 19:03:42:
#     2503 R RUNNING 0:08 5:00 None 2026-12-07T19:08:34
#     RunTime=00:00:08 EndTime=2026-12-07T19:08:34
#     SuspendTime=2026-12-07T19:03:39 SecsPreSuspend=5
START = _epoch("2026-12-07T19:03:30")
FMT = "%i %t %T %M %l %r %R %e"


def _record(state: str, suspend_time: float, suspended_s: float) -> dict:
    task = {"start_time": START, "suspend_time": suspend_time, "suspended_s": suspended_s}
    return dict(
        job_id=2503, array_job_id=None, array_task_id=None, array_task_str=None, name="wrap",
        user="root", uid=0, partition="debug", account="", state=state, reason="None",
        submit_time=START, eligible_time=START, start_time=START, end_time=None, time_limit=5,
        nodes=["localhost"], num_nodes=1, num_tasks=1, cpus=1, cpus_per_task=1, mem_mb=10,
        gpus=0, exit_code=None, exit_signal=None, workdir="/tmp", stdout="/tmp/o",
        stderr="/tmp/o", stdin="/dev/null", command="", comment="", priority=0, nice=0,
        features="", dependency="", restart_count=0, requeue=True, batch_host="localhost",
        submit_host="localhost", qos="", exclusive=False, alloc_sid=1, **_suspension(task))


def test_suspended_then_resumed_as_slurm_shows_them():
    suspended = _record("SUSPENDED", _epoch("2026-12-07T19:03:35"), 0.0)
    now = _epoch("2026-12-07T19:03:39")
    line = squeue_fmt.render(FMT, [suspended], now=now, header=False).strip()
    assert line == "2503 S SUSPENDED 0:05 5:00 None localhost 2026-12-07T19:08:30"
    shown = show_job(suspended, now=now)
    assert "JobState=SUSPENDED Reason=None" in shown
    assert "RunTime=00:00:05 " in shown
    assert "EndTime=2026-12-07T19:08:30 " in shown
    assert "SuspendTime=2026-12-07T19:03:35 SecsPreSuspend=5 " in shown

    resumed = _record("RUNNING", _epoch("2026-12-07T19:03:39"), 4.0)
    now = _epoch("2026-12-07T19:03:42")
    line = squeue_fmt.render(FMT, [resumed], now=now, header=False).strip()
    assert line == "2503 R RUNNING 0:08 5:00 None localhost 2026-12-07T19:08:34"
    shown = show_job(resumed, now=now)
    assert "RunTime=00:00:08 " in shown and "EndTime=2026-12-07T19:08:34 " in shown
    assert "SuspendTime=2026-12-07T19:03:39 SecsPreSuspend=5 " in shown


def test_never_suspended_shows_none():
    rec = _record("RUNNING", None, 0.0)  # type: ignore[arg-type]
    shown = show_job(rec, now=START + 10)
    assert "SuspendTime=None SecsPreSuspend=0 " in shown and "RunTime=00:00:10 " in shown

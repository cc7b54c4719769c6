"""``sbatch --test-only``: checked as a submission, the expected start printed
as SLURM 22.05 prints it (one line on stderr, exit 0), nothing submitted."""

from __future__ import annotations

import re
import time

from tests.conftest import Fleet

LINE = re.compile(r"sbatch: Job (\d+) to start at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d) using (\d+) "
                  r"processors on nodes (\S+) in partition (\S+)\n")


def _start(text: str) -> float:
    return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))


def test_test_only_prints_the_start_and_submits_nothing(fleet: Fleet) -> None:
    before = fleet.sbatch("--wrap", "true")
    fleet.wait(before)
    proc = fleet.run("sbatch", "--test-only", "-n", "2", "--wrap", "touch ran")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    m = LINE.fullmatch(proc.stderr)
    assert m, proc.stderr
    assert int(m[1]) == before + 1
    assert (m[3], m[4], m[5]) == ("2", "localhost", "debug")
    assert abs(_start(m[2]) - time.time()) < 30  # an idle machine: now
    # nothing stored, nothing run; the id is used up as SLURM's test-only does
    assert fleet.records(int(m[1])) == []
    after = fleet.sbatch("--wrap", "true")
    assert after == before + 2
    fleet.wait(after)
    assert not (fleet.work / "ran").exists()
    q = fleet.run("sacct", "-n", "-X", "-o", "JobID", check=True).stdout.split()
    assert q == [str(before), str(after)]


def test_test_only_waits_behind_running_jobs_and_begin(fleet: Fleet) -> None:
    busy = fleet.sbatch("-c", "2", "-t", "10", "--wrap", "sleep 300")
    fleet.wait(busy, states={"RUNNING"})
    proc = fleet.run("sbatch", "--test-only", "-p", "short", "--wrap", "true")
    m = LINE.fullmatch(proc.stderr)
    assert m and m[5] == "short", proc.stderr
    # the machine's two CPUs are busy until the sleeper's 10 minutes are up
    start = fleet.record(busy)["start_time"]
    assert abs(_start(m[2]) - (start + 600)) <= 2, (m[2], start)
    fleet.run("scancel", str(busy), check=True)
    fleet.wait(busy)
    proc = fleet.run("sbatch", "--test-only", "--begin=now+1hour", "--wrap", "true")
    m = LINE.fullmatch(proc.stderr)
    assert m, proc.stderr
    assert abs(_start(m[2]) - (time.time() + 3600)) < 30


def test_test_only_refusals_are_slurms(fleet: Fleet) -> None:
    # oracle: "allocation failure: Requested node configuration is not
    # available", exit 1; a bad partition adds the controller's line first
    proc = fleet.run("sbatch", "--test-only", "--mem=99999999", "--wrap", "true")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == "allocation failure: Requested node configuration is not available\n"
    proc = fleet.run("sbatch", "--test-only", "-p", "nope", "--wrap", "true")
    assert proc.returncode == 1
    assert proc.stderr == ("sbatch: error: invalid partition specified: nope\n"
                           "allocation failure: Invalid partition name specified\n")
    # a bad option is refused before anything is asked
    proc = fleet.run("sbatch", "--test-only", "--mail-type=BAD", "--wrap", "true")
    assert proc.returncode == 255 and "Invalid --mail-type specification" in proc.stderr


def test_srun_refuses_test_only(fleet: Fleet) -> None:
    proc = fleet.run("srun", "--test-only", "true")
    assert proc.returncode == 1
    assert "fleetslurm does not support --test-only" in proc.stderr


def test_will_run_queues_behind_planned_jobs() -> None:
    """The pure estimate: a job that fits on no node now starts after the
    running job ends *and* after the pending job backfill planned first;
    the state is left as it was."""
    from fleetslurm.scheduler import (JobRequest, JobSubmitted, NodeSpec, NodeUp, PartitionSet,
                                      PartitionSpec, SchedulerState)

    t0 = 1_800_000_000.0
    st = SchedulerState()
    st.handle([PartitionSet(PartitionSpec("debug", default=True)),
               NodeUp(NodeSpec("n1", cpus=2, mem_mb=1000)),
               NodeUp(NodeSpec("n2", cpus=1, mem_mb=1000))], t0)

    def req(jid: int, cpus: int, minutes: int, **kw) -> JobRequest:
        return JobRequest(jid, "alice", "debug", t0, cpus=cpus, time_limit=minutes, **kw)

    started = st.handle([JobSubmitted(req(1, 2, 10)), JobSubmitted(req(2, 2, 10))], t0)
    assert [a.job_id for a in started] == [1]  # job 2 waits, planned for t0 + 600 on n1
    now = t0 + 60
    st.handle([], now)
    plan = st.will_run(req(0, 2, 5), now)
    assert (plan.start, plan.node, plan.cpus, plan.partition) == (t0 + 1200, "n1", 2, "debug")
    small = st.will_run(req(0, 1, 5), now)  # n2 is free now
    assert (small.start, small.node, small.cpus) == (now, "n2", 1)
    later = st.will_run(req(0, 1, 5, begin_time=now + 3600), now)
    assert later.start == now + 3600
    assert st.pending() == [2] and set(st.running()) == {1}
    st.validate()

"""Job arrays and dependencies through the real CLI against a real controller.

Expected outputs are what slurm-wlm 22.05.8 (the oracle on the development
machine) printed for the same commands: ids (the last task keeps the array's
id, the others get new ones as they start), ``A_[list%N]`` for the pending
part, the verdicts of whole-array dependencies (``--array=1-4%2`` whose task
3 fails: ``afterok:A`` DependencyNeverSatisfied, ``afternotok:A``,
``afterany:A``, ``after:A`` and ``afterok:A_2`` run; with
``--kill-on-invalid-dep=yes`` CANCELLED with reason DependencyNeverSatisfied).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from conftest import FINAL, Fleet, _teardown, local_config


def poll(fn, timeout: float = 60, every: float = 0.2):
    """fn() until it returns something true; its last value on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def squeue(fleet: Fleet, *args: str) -> list[str]:
    return fleet.run("squeue", "-h", *args, check=True).stdout.splitlines()


def sacct(fleet: Fleet, job, fields: str) -> list[list[str]]:
    out = fleet.run("sacct", "-X", "-P", "-n", "-j", str(job), "-o", fields, check=True).stdout
    return [line.split("|") for line in out.splitlines()]


def test_ids_records_and_output_names(fleet):
    """Every task has its own JobIDRaw; the last keeps the array's id (SLURM: 239_1
    got 240, 239_3 kept 239); sacct has one row per task, selectable by A_i or raw id."""
    a = fleet.sbatch("--array=1-3,7", "-o", "out-%A_%a-%j.txt", "--wrap",
                     'echo "$SLURM_JOB_ID $SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID '
                     '$SLURM_ARRAY_TASK_COUNT $SLURM_ARRAY_TASK_STEP"')
    tasks = fleet.wait(a)["tasks"]
    rows = sacct(fleet, a, "JobID,JobIDRaw,State")
    # rows come in JobIDRaw order, as sacct lists them in the order they were recorded
    assert [r[0] for r in rows] == [f"{a}_7", f"{a}_1", f"{a}_2", f"{a}_3"]
    raw = {r[0]: int(r[1]) for r in rows}
    assert len(set(raw.values())) == 4 and raw[f"{a}_7"] == a
    assert all(r[2] == "COMPLETED" for r in rows)
    assert {t["job_id"] for t in tasks} == set(raw.values())
    for index in (1, 2, 3, 7):
        own = raw[f"{a}_{index}"]
        text = (fleet.work / f"out-{a}_{index}-{own}.txt").read_text()
        assert text == f"{own} {a} {index} 4 1\n"
        assert sacct(fleet, f"{a}_{index}", "JobIDRaw") == [[str(own)]]
        if own != a:  # the array's own id names the whole array
            assert sacct(fleet, own, "JobID") == [[f"{a}_{index}"]]
    assert [r[0] for r in sacct(fleet, f"{a}_[2-3]", "JobID")] == [f"{a}_2", f"{a}_3"]
    # a plain job submitted now gets the next id after the tasks'
    assert fleet.sbatch("-H", "--wrap", "true") == max(raw.values()) + 1


def test_pending_part_shows_as_one_line_and_unfolds_with_r(fleet):
    a = fleet.sbatch("-H", "--array=0-15:4%2", "--wrap", "true")
    shown = poll(lambda: [ln for ln in squeue(fleet, "-o", "%i|%A|%T|%r") if "JobHeldUser" in ln])
    assert shown == [f"{a}_[0,4,8,12%2]|{a}|PENDING|JobHeldUser"]
    assert squeue(fleet, "-r", "-o", "%i|%K") == [f"{a}_{i}|{i}" for i in (0, 4, 8, 12)]
    assert squeue(fleet, "-j", f"{a}_8", "-o", "%i|%T") == [f"{a}_8|PENDING"]
    show = fleet.run("scontrol", "show", "job", str(a), check=True).stdout
    assert f"ArrayJobId={a} ArrayTaskId=0,4,8,12%2" in show
    big = fleet.sbatch("-H", "--array=0-999", "--wrap", "true")
    assert squeue(fleet, "-j", str(big), "-o", "%i") == [f"{big}_[0-999]"]


def test_throttle_caps_running_tasks(wide_fleet):
    fleet = wide_fleet
    a = fleet.sbatch("--array=0-5%2", "-o", "/dev/null", "--wrap", "sleep 1")
    most = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        recs = fleet.records(a)
        most = max(most, sum(r["state"] == "RUNNING" for r in recs))
        if recs and all(r["state"] in FINAL for r in recs) and len(recs) == 6:
            break
        time.sleep(0.1)
    recs = fleet.records(a)
    assert sorted(r["array_task_id"] for r in recs) == list(range(6))
    assert {r["state"] for r in recs} == {"COMPLETED"}
    assert most == 2  # 8 CPUs free, the throttle lets two run at a time


def test_scancel_one_task_a_list_and_the_rest(fleet):
    a = fleet.sbatch("-H", "--array=0-9", "--wrap", "true")
    assert fleet.run("scancel", f"{a}_3", f"{a}_[5-6]", check=True).stdout == ""
    assert squeue(fleet, "-j", str(a), "-o", "%i") == [f"{a}_[0-2,4,7-9]"]
    # a pending index without a task is simply gone, as in SLURM ("Job 280_2 not found")
    gone = fleet.run("scontrol", "show", "job", f"{a}_3")
    assert gone.returncode == 1 and "Invalid job id specified" in gone.stderr
    fleet.run("scancel", str(a), check=True)
    assert squeue(fleet, "-j", str(a)) == []
    assert squeue(fleet, "-t", "all", "-j", str(a), "-o", "%i|%T") == [
        f"{a}_[0-2,4,7-9]|CANCELLED"]
    assert sacct(fleet, a, "JobID,JobIDRaw,State") == [
        [f"{a}_[0-2,4,7-9]", str(a), f"CANCELLED by {os.getuid()}"]]


def test_scontrol_on_one_pending_task(fleet):
    a = fleet.sbatch("-H", "--array=1-4", "-o", "/dev/null", "--wrap", "true")
    fleet.run("scontrol", "release", f"{a}_2", check=True)
    done = fleet.wait(f"{a}_2")
    assert (done["state"], done["array_task_id"]) == ("COMPLETED", 2)
    assert done["job_id"] != a
    # (reasons are refreshed a few times a second, as SLURM's are now and then)
    assert poll(lambda: squeue(fleet, "-j", str(a), "-o", "%i|%r") == [f"{a}_[1,3-4]|JobHeldUser"])
    fleet.run("scontrol", "release", str(a), check=True)
    tasks = fleet.wait(a)["tasks"]
    assert sorted(t["array_task_id"] for t in tasks) == [1, 2, 3, 4]
    assert {t["state"] for t in tasks} == {"COMPLETED"}


def submit_deps(fleet: Fleet, a: int) -> dict[str, int]:
    out = {}
    for name, dep in [("afterok", f"afterok:{a}"), ("afternotok", f"afternotok:{a}"),
                      ("afterany", f"afterany:{a}"), ("after", f"after:{a}"),
                      ("star", f"afterok:{a}_*"), ("one", f"afterok:{a}_2")]:
        out[name] = fleet.sbatch("-d", dep, "-o", "/dev/null", "--wrap", "true")
    out["kill"] = fleet.sbatch("-d", f"afterok:{a}", "--kill-on-invalid-dep=yes",
                               "-o", "/dev/null", "--wrap", "true")
    return out


def test_dependency_on_a_whole_array_waits_for_every_task(fleet, tmp_path):
    """Gap (a) of the old code: afterok:A looked at the first task only."""
    # task 2 runs until the test opens the gate: a loaded machine cannot
    # let it end before the checks below (a fixed sleep could)
    gate = tmp_path / "gate"
    a = fleet.sbatch("--array=1-4%1", "-o", "/dev/null", "--wrap",
                     f'if [ "$SLURM_ARRAY_TASK_ID" = 2 ]; then while [ ! -e {gate} ]; do sleep 0.1;'
                     ' done; fi; [ "$SLURM_ARRAY_TASK_ID" != 3 ]')
    deps = submit_deps(fleet, a)
    assert fleet.wait(f"{a}_1")["state"] == "COMPLETED"
    fleet.wait(f"{a}_2", {"RUNNING"})
    time.sleep(1)  # a few scheduling passes while task 2 runs and 3-4 wait
    assert squeue(fleet, "-j", str(a), "-t", "PD", "-o", "%i") == [f"{a}_[3-4%1]"]
    # task 1 is done, tasks 2-4 have not all run: nothing on the whole array may start
    for name in ("afterok", "afternotok", "afterany", "after", "star", "kill"):
        assert fleet.record(deps[name])["state"] == "PENDING", name
    assert squeue(fleet, "-j", str(deps["afterok"]), "-o", "%E") == [f"afterok:{a}_*(unfulfilled)"]
    gate.touch()
    tasks = fleet.wait(a, timeout=90)["tasks"]
    assert {t["array_task_id"]: t["state"] for t in tasks} == {
        1: "COMPLETED", 2: "COMPLETED", 3: "FAILED", 4: "COMPLETED"}
    last_end = max(t["end_time"] for t in tasks)
    for name in ("afternotok", "afterany", "after", "one"):
        rec = fleet.wait(deps[name])
        assert rec["state"] == "COMPLETED", name
    for name in ("afternotok", "afterany"):
        assert fleet.record(deps[name])["start_time"] >= last_end - 1e-6, name
    never = poll(lambda: fleet.record(deps["afterok"])["reason"] == "DependencyNeverSatisfied")
    assert never and fleet.record(deps["star"])["reason"] == "DependencyNeverSatisfied"
    assert fleet.record(deps["afterok"])["state"] == "PENDING"
    assert squeue(fleet, "-j", str(deps["afterok"]), "-o", "%E") == [f"afterok:{a}_*(failed)"]
    killed = fleet.wait(deps["kill"])
    assert (killed["state"], killed["reason"]) == ("CANCELLED", "DependencyNeverSatisfied")


def test_after_on_an_array_waits_until_no_task_is_pending(fleet):
    a = fleet.sbatch("-H", "--array=1-3", "-o", "/dev/null", "--wrap", "sleep 2")
    after = fleet.sbatch("-d", f"after:{a}", "-o", "/dev/null", "--wrap", "true")
    fleet.run("scontrol", "release", f"{a}_1", check=True)
    fleet.wait(f"{a}_1")
    assert fleet.record(after)["state"] == "PENDING"
    fleet.run("scontrol", "release", str(a), check=True)
    done = fleet.wait(after)
    starts = [t["start_time"] for t in fleet.records(a)]
    assert done["state"] == "COMPLETED" and done["start_time"] >= max(starts)


def test_any_of_and_all_of(fleet):
    bad = fleet.sbatch("-o", "/dev/null", "--wrap", "exit 1")
    good = fleet.sbatch("-o", "/dev/null", "--wrap", "true")
    either = fleet.sbatch("-d", f"afterok:{bad}?afterok:{good}", "-o", "/dev/null", "--wrap", "true")
    both = fleet.sbatch("-d", f"afterok:{bad},afterok:{good}", "-o", "/dev/null", "--wrap", "true")
    assert fleet.wait(either)["state"] == "COMPLETED"
    assert poll(lambda: fleet.record(both)["reason"] == "DependencyNeverSatisfied")
    assert fleet.record(both)["state"] == "PENDING"


def test_singleton_runs_one_at_a_time(wide_fleet):
    fleet = wide_fleet
    # the first runs until "else" has ended (not a fixed sleep: the three
    # submissions after it may take longer than that on a loaded machine)
    go = fleet.work / "go"
    first = f"while [ ! -e {go} ]; do sleep 0.1; done"
    ids = [fleet.sbatch("-J", "only", "-d", "singleton", "-o", "/dev/null", "--wrap", cmd)
           for cmd in (first, "sleep 1", "sleep 1")]
    other = fleet.sbatch("-J", "else", "-d", "singleton", "-o", "/dev/null", "--wrap", "true")
    done = fleet.wait(other)
    go.touch()
    recs = [fleet.wait(j) for j in ids]
    assert {r["state"] for r in recs} == {"COMPLETED"}
    for earlier, later in zip(recs, recs[1:]):
        assert later["start_time"] >= earlier["end_time"] - 1e-6
    assert done["start_time"] < recs[0]["end_time"]


def test_singleton_waits_for_an_array_submitted_before(fleet):
    a = fleet.sbatch("-H", "-J", "same", "--array=1-3", "-o", "/dev/null", "--wrap", "true")
    solo = fleet.sbatch("-J", "same", "-d", "singleton", "-o", "/dev/null", "--wrap", "true")
    time.sleep(1)
    assert fleet.record(solo)["reason"] == "Dependency"
    fleet.run("scontrol", "release", str(a), check=True)
    tasks = fleet.wait(a)["tasks"]
    assert fleet.wait(solo)["start_time"] >= max(t["end_time"] for t in tasks) - 1e-6


@pytest.mark.parametrize("dep", ["afterok:99999", "afterany:1:99999", "afterok:{a}_7",
                                 "afterok:{plain}_1", "afterwards:{plain}", "afterok:x",
                                 "afterok:{plain},afterany:{plain}?after:{plain}"])
def test_bad_or_unknown_dependency_is_refused_and_nothing_stored(fleet, dep):
    a = fleet.sbatch("-H", "--array=1-3", "--wrap", "true")
    plain = fleet.sbatch("-H", "--wrap", "true")
    proc = fleet.run("sbatch", "-d", dep.format(a=a, plain=plain), "--wrap", "true")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == "sbatch: error: Batch job submission failed: Job dependency problem\n"
    assert fleet.sbatch("-H", "--wrap", "true") == plain + 1  # no id was used
    assert len(fleet.run("squeue", "-h", "-t", "all", check=True).stdout.splitlines()) == 3


def test_update_dependency_to_an_unknown_job_is_refused(fleet):
    job = fleet.sbatch("-H", "--wrap", "true")
    proc = fleet.run("scontrol", "update", f"JobId={job}", "Dependency=afterok:99999")
    assert proc.returncode == 1 and proc.stderr == f"Job dependency problem for job {job}\n"
    assert fleet.record(job)["dependency"] == ""


@pytest.mark.parametrize("spec", ["0-1001", "1001", "5-1", "a", "0-3:0"])
def test_array_past_the_limit_or_malformed(fleet, spec):
    proc = fleet.run("sbatch", f"--array={spec}", "--wrap", "true")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == ("sbatch: error: Batch job submission failed: "
                           "Invalid job array specification\n")
    assert fleet.run("squeue", "-h", "-t", "all", check=True).stdout == ""


def test_kill_on_invalid_dep_value(fleet):
    proc = fleet.run("sbatch", "--kill-on-invalid-dep=maybe", "--wrap", "true")
    assert (proc.returncode, proc.stderr) == (
        255, "sbatch: error: Invalid --kill-on-invalid-dep specification\n")


def _array_rows(fleet: Fleet, job: int) -> tuple[int, int]:
    """The array's task rows in the store, and how many of them are PENDING
    (read in one snapshot)."""
    import sqlite3

    db = sqlite3.connect(fleet.home / "state.db")
    try:
        rows, pending = db.execute("SELECT COUNT(*), SUM(state = 'PENDING') FROM tasks "
                                   "WHERE job_id=?", (job,)).fetchone()
    finally:
        db.close()
    return rows, pending


def test_a_100000_task_array_is_one_record(tmp_path):
    """MaxArraySize raised to 100001: the array is one row until tasks start;
    squeue shows the pending part at once; scancel ends the remainder."""
    fleet = Fleet(tmp_path, local_config(max_array_size=100001))
    try:
        proc = fleet.run("sbatch", "--array=0-100001", "--wrap", "true")
        assert proc.returncode == 1 and "Invalid job array specification" in proc.stderr
        a = fleet.sbatch("--array=0-99999%2", "-o", "/dev/null", "--wrap", "true")
        done = poll(lambda: len([r for r in fleet.records(f"{a}_[0-9]")
                                 if r["state"] == "COMPLETED"]) >= 6)
        assert done
        line = squeue(fleet, "-j", str(a), "-t", "PD", "-o", "%i|%T")
        assert len(line) == 1 and line[0].endswith("-99999%2]|PENDING")
        # a task gets its row when it starts: the rows are the record and the
        # tasks that started, however many a fast or slow machine started
        rows, pending = _array_rows(fleet, a)
        assert pending == 1 and rows < 100000
        fleet.run("scancel", str(a), check=True)
        rows, pending = _array_rows(fleet, a)
        assert pending == 0  # the record is the cancelled remainder now
        acct = sacct(fleet, a, "JobID,State")
        # the record (JobIDRaw = the array's id, first) keeps the cancelled remainder
        assert acct[0][0].startswith(f"{a}_[") and acct[0][0].endswith("-99999%2]")
        assert acct[0][1] == f"CANCELLED by {os.getuid()}"
        assert {r[1] for r in acct[1:]} <= {"COMPLETED", f"CANCELLED by {os.getuid()}"}
        assert len(acct) == rows  # one line per started task and the record's
    finally:
        _teardown(fleet)


def test_an_array_survives_kill_dash_nine(fleet):
    a = fleet.sbatch("--array=0-11%2", "-o", "/dev/null", "--wrap", "sleep 0.3")
    assert poll(lambda: sum(r["state"] == "COMPLETED" for r in fleet.records(a)) >= 2)
    os.kill(fleet.controller_pid(), signal.SIGKILL)
    time.sleep(0.3)
    assert fleet.run("squeue").returncode == 0  # starts a new controller
    tasks = fleet.wait(a, timeout=120)["tasks"]
    assert sorted(t["array_task_id"] for t in tasks) == list(range(12))
    assert {t["state"] for t in tasks} == {"COMPLETED"}
    assert len({t["job_id"] for t in tasks}) == 12
    with fleet.client() as c:
        for t in tasks:  # none ran twice
            starts = [h for h in c.call("history", task_id=t["job_id"]) if h["event"] == "start"]
            assert len(starts) == 1, t


def test_kill_on_invalid_dep_cancels_a_whole_array(fleet):
    bad = fleet.sbatch("-o", "/dev/null", "--wrap", "exit 1")
    a = fleet.sbatch("--array=1-5", "-d", f"afterok:{bad}", "--kill-on-invalid-dep=yes",
                     "-o", "/dev/null", "--wrap", "true")
    assert poll(lambda: squeue(fleet, "-t", "all", "-j", str(a), "-o", "%i|%T|%r") == [
        f"{a}_[1-5]|CANCELLED|DependencyNeverSatisfied"])
    assert squeue(fleet, "-t", "all", "-j", str(a), "-o", "%E") == [f"afterok:{bad}(failed)"]


def test_requeue_of_a_cancelled_remainder_runs_it(fleet):
    a = fleet.sbatch("-H", "--array=1-3", "-o", "/dev/null", "--wrap", "true")
    fleet.run("scancel", str(a), check=True)
    assert squeue(fleet, "-t", "all", "-j", str(a), "-o", "%i|%T") == [f"{a}_[1-3]|CANCELLED"]
    fleet.run("scontrol", "requeue", str(a), check=True)
    assert squeue(fleet, "-j", str(a), "-o", "%i|%T") == [f"{a}_[1-3]|PENDING"]
    fleet.run("scontrol", "release", str(a), check=True)  # it was submitted held
    tasks = fleet.wait(a)["tasks"]
    assert sorted(t["array_task_id"] for t in tasks) == [1, 2, 3]
    assert {t["state"] for t in tasks} == {"COMPLETED"}


def test_aftercorr_pairs_the_tasks_of_two_arrays(wide_fleet):
    fleet = wide_fleet
    a = fleet.sbatch("--array=1-3", "-o", "/dev/null", "--wrap",
                     'sleep $((SLURM_ARRAY_TASK_ID == 2 ? 3 : 0)); [ "$SLURM_ARRAY_TASK_ID" != 3 ]')
    b = fleet.sbatch("--array=1-3", "-d", f"aftercorr:{a}", "-o", "/dev/null", "--wrap", "true")
    first = fleet.wait(f"{b}_1")
    assert first["state"] == "COMPLETED"
    assert fleet.record(f"{a}_2")["state"] == "RUNNING"  # b_1 did not wait for a_2
    assert fleet.wait(f"{b}_2")["start_time"] >= fleet.record(f"{a}_2")["end_time"] - 1e-6
    assert poll(lambda: squeue(fleet, "-j", f"{b}_3", "-o", "%r") == ["DependencyNeverSatisfied"])

"""srun inside an allocation, end to end through the CLI and a real controller.

Every expected output here was first produced by SLURM 22.05 (the oracle, see
/work/oracle/README.txt) running the same script; timestamps aside, fleetslurm
must print the same lines.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import time

from fleetslurm.slurm.sacct_fmt import parse_fields, render, rows_for
from fleetslurm.store import Store
from fleetslurm.views import job_record


def _run_script(fleet, text: str, *args: str, timeout: float = 60) -> tuple[int, str]:
    script = fleet.work / "job.sh"
    script.write_text("#!/bin/bash\n" + text)
    job = fleet.sbatch(*args, str(script))
    rec = fleet.wait(job, timeout=timeout)
    assert rec["state"] == "COMPLETED", rec
    return job, (fleet.work / f"slurm-{job}.out").read_text()


def _sacct(fleet, job: int, fields: str = "jobid,jobname,state,exitcode,ntasks") -> list[str]:
    out = fleet.run("sacct", "-P", "-n", "-j", str(job), "-o", fields, check=True).stdout
    return out.splitlines()


def test_steps_ranks_exit_codes_and_sacct_rows(fleet):
    job, out = _run_script(fleet, """
srun sh -c 'echo task=$SLURM_PROCID local=$SLURM_LOCALID step=$SLURM_STEP_ID/$SLURM_STEPID nt=$SLURM_NTASKS/$SLURM_STEP_NUM_TASKS node=$SLURM_NODEID' | sort
srun -n 1 sh -c 'echo one=$SLURM_NTASKS step=$SLURM_STEP_ID gtids=$SLURM_GTIDS'
srun -n 2 sh -c 'exit $((SLURM_PROCID+5))'; echo rc=$?
srun sh -c 'exit 3'; echo rc=$?
srun sh -c 'kill -9 $$'; echo rc=$?
srun sh -c 'kill -SEGV $$'; echo rc=$?
srun -J named true
srun -n 3 true; echo rc=$?
""", "-n", "2", "-J", "steps")
    assert out == (
        "task=0 local=0 step=0/0 nt=2/2 node=0\n"
        "task=1 local=1 step=0/0 nt=2/2 node=0\n"
        "one=1 step=1 gtids=0\n"
        "srun: error: localhost: task 0: Exited with exit code 5\n"
        "srun: error: localhost: task 1: Exited with exit code 6\n"
        "rc=6\n"
        "srun: error: localhost: tasks 0-1: Exited with exit code 3\n"
        "rc=3\n"
        "srun: error: localhost: tasks 0-1: Killed\n"
        f"srun: Force Terminated StepId={job}.4\n"
        "rc=137\n"
        "srun: error: localhost: tasks 0-1: Segmentation fault\n"
        "rc=139\n"
        f"srun: error: Unable to create step for job {job}: More processors requested than "
        "permitted\n"
        "rc=1\n")
    assert _sacct(fleet, job) == [
        f"{job}|steps|COMPLETED|0:0|",
        f"{job}.batch|batch|COMPLETED|0:0|1",
        f"{job}.0|sh|COMPLETED|0:0|2",
        f"{job}.1|sh|COMPLETED|0:0|1",
        f"{job}.2|sh|FAILED|6:0|2",
        f"{job}.3|sh|FAILED|3:0|2",
        f"{job}.4|sh|CANCELLED|0:9|2",
        f"{job}.5|sh|CANCELLED|0:11|2",
        f"{job}.6|named|COMPLETED|0:0|2",
    ]
    # -X: the allocation alone
    assert _sacct(fleet, job, "jobid")[:1] == [str(job)]
    assert fleet.run("sacct", "-X", "-P", "-n", "-j", str(job), "-o", "jobid",
                     check=True).stdout == f"{job}\n"


def test_output_error_input_and_label_modes(fleet):
    host = socket.gethostname().split(".")[0]
    user = getpass.getuser()
    job, out = _run_script(fleet, """
srun -o 'o-%j-%s-%t-%J-%n-%x-%A-%a-%N-%u-%%.txt' sh -c 'echo $SLURM_PROCID'
echo OLD-CONTENT-THAT-MUST-GO > same.txt
srun -o same.txt sh -c 'echo hi $SLURM_PROCID'
sort same.txt
srun --open-mode=append -o app.txt echo a
srun --open-mode=append -o app.txt echo b
sort app.txt
srun -e 'err-%t.txt' sh -c 'echo out$SLURM_PROCID; echo err$SLURM_PROCID >&2' | sort
cat err-0.txt err-1.txt
srun -o none sh -c 'echo o$SLURM_PROCID; echo e$SLURM_PROCID >&2'
srun -o 1 -e none sh -c 'echo o$SLURM_PROCID; echo e$SLURM_PROCID >&2'
echo A | srun sh -c 'read x; echo "$SLURM_PROCID got [$x]"' | sort
echo B | srun -i 1 sh -c 'read x; echo "$SLURM_PROCID got [$x]"' | sort
echo C | srun -i none sh -c 'cat; echo done$SLURM_PROCID' | sort
echo in0 > in-0; echo in1 > in-1
srun -i 'in-%t' sh -c 'read x; echo "$SLURM_PROCID read $x"' | sort
srun -l sh -c 'echo line$SLURM_PROCID; echo err$SLURM_PROCID >&2' 2>&1 | sort
srun -O -n 12 -l sh -c 'echo x' | sort | head -3
srun -o 5 true; echo rc=$?
""", "-n", "2", "-J", "io")
    for rank in (0, 1):
        name = f"o-{job}-0-{rank}-{job}.0-0-io-{job}-4294967294-{host}-{user}-%.txt"
        assert (fleet.work / name).read_text() == f"{rank}\n", name
    assert out == (
        "hi 0\nhi 1\n"          # same.txt was truncated, then written by both tasks
        "a\na\nb\nb\n"          # --open-mode=append
        "out0\nout1\n"          # -e: stdout still here
        "err0\nerr1\n"
        "o1\n"                  # -o none: nothing; -o 1 -e none: task 1's stdout only
        "0 got [A]\n1 got [A]\n"     # stdin is broadcast to every task
        "0 got []\n1 got [B]\n"      # -i 1: task 1 only
        "done0\ndone1\n"             # -i none: EOF at once
        "0 read in0\n1 read in1\n"   # -i pattern: a file per task
        "0: err0\n0: line0\n1: err1\n1: line1\n"
        " 0: x\n 1: x\n 2: x\n"      # --label pads to the widest rank
        "srun: error: --output=5: there is no task 5 in a step of 2 tasks (ranks 0-1)\n"
        "rc=1\n")


def test_signals_sent_to_srun(fleet):
    """SLURM 22.05: SIGTERM to srun kills the tasks; SIGUSR1 is forwarded; one
    Ctrl-C shows the tasks, a second within a second sends them SIGINT and ends
    the step; a task killed by a signal makes srun exit 128+signal."""
    job, out = _run_script(fleet, """
T='trap "echo $SLURM_PROCID got TERM; exit 0" TERM; trap "echo $SLURM_PROCID got INT; exit 0" INT; trap "echo $SLURM_PROCID got USR1; exit 0" USR1; while :; do sleep 0.1; done'
wait_step() { until [ "$(ls "$FLEETSLURM_STEPS_DIR" 2>/dev/null | grep -c '^[0-9]')" -ge 2 ]; do sleep 0.1; done; }
srun sh -c "$T" 2>term.err &
P=$!; wait_step; kill -TERM $P; wait $P; echo "term rc=$?"
srun sh -c "$T" >usr1.out &
P=$!; wait_step; kill -USR1 $P; wait $P; grep got usr1.out | sort; echo "usr1 done"
srun sh -c "$T" 2>int.err &
P=$!; wait_step; kill -INT $P; sleep 1.5; kill -INT $P; sleep 0.3; kill -INT $P; wait $P; echo "int rc=$?"
""", "-n", "2", timeout=90)
    assert out.startswith("term rc=137\n"), out
    term = (fleet.work / "term.err").read_text()
    assert re.fullmatch(
        r"srun: forcing job termination\n"
        r"srun: Job step aborted: Waiting up to 4 seconds for job step to finish\.\n"
        rf"slurmstepd-localhost: error: \*\*\* STEP {job}\.0 ON localhost CANCELLED AT "
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d \*\*\*\n"
        r"srun: error: localhost: tasks 0-1: Killed\n", term), term
    # USR1 reaches both tasks (each traps it and exits 0)
    assert "0 got USR1\n1 got USR1\nusr1 done\n" in out, out
    assert sorted(re.findall(r"\d got INT", out)) == ["0 got INT", "1 got INT"], out
    assert out.endswith("int rc=0\n"), out
    intr = (fleet.work / "int.err").read_text()
    assert intr.startswith(
        "srun: interrupt (one more within 1 sec to abort)\n"
        f"srun: StepId={job}.2 tasks 0-1: running\n"
        "srun: interrupt (one more within 1 sec to abort)\n"
        f"srun: StepId={job}.2 tasks 0-1: running\n"
        f"srun: sending Ctrl-C to StepId={job}.2\n"), intr
    assert [line.split("|")[2] for line in _sacct(fleet, job)[2:]] == \
        ["CANCELLED", "COMPLETED", "CANCELLED"]


def test_scancel_gives_step_tasks_their_sigterm_and_killwait(fleet):
    """Checked on SLURM 22.05: when the job is cancelled, a task that traps
    SIGTERM gets to finish (here it exits 3) before KillWait runs out."""
    script = fleet.work / "sc.sh"
    script.write_text("#!/bin/sh\n"
                      "trap 'echo batch got TERM' TERM\n"
                      "srun sh -c 'trap \"echo task got TERM; sleep 1; echo task done; exit 3\" "
                      "TERM; while :; do sleep 0.1; done'\n"
                      'echo "srun rc=$?"\n'
                      "sleep 30\n")
    job = fleet.sbatch(str(script))
    _wait_for_step(fleet, job)
    fleet.run("scancel", str(job), check=True)
    rec = fleet.wait(job, timeout=30)
    assert rec["state"] == "CANCELLED"
    out = (fleet.work / f"slurm-{job}.out").read_text()
    for line in ("task got TERM\n", "task done\n",
                 "srun: error: localhost: task 0: Exited with exit code 3\n",
                 "batch got TERM\n", "srun rc=3\n"):
        assert line in out, out
    assert out.index("task done") < out.index("srun rc=3")
    rows = _sacct(fleet, job, "jobid,state,exitcode")
    assert rows[0] == f"{job}|CANCELLED by {os.getuid()}|0:0"
    assert rows[2] == f"{job}.0|CANCELLED|3:0"


def test_kill_on_bad_exit(fleet):
    job, out = _run_script(fleet, """
srun -K -n 2 sh -c 'if [ $SLURM_PROCID = 1 ]; then exit 3; fi; sleep 20; echo survived'; echo rc=$?
""", "-n", "2")
    assert re.fullmatch(
        "srun: error: localhost: task 1: Exited with exit code 3\n"
        rf"srun: launch/slurm: _step_signal: Terminating StepId={job}\.0\n"
        rf"slurmstepd-localhost: error: \*\*\* STEP {job}\.0 ON localhost CANCELLED AT "
        r"[0-9T:-]+ \*\*\*\n"
        "srun: error: localhost: task 0: Terminated\n"
        rf"srun: Force Terminated StepId={job}\.0\n"
        "rc=143\n", out), out


def test_steps_of_a_requeued_job_start_again_at_zero(fleet):
    job = fleet.sbatch("--open-mode=append", "--wrap",
                       'srun sh -c "echo step=\\$SLURM_STEP_ID run=${SLURM_RESTART_COUNT:-0}"; '
                       'if [ -z "$SLURM_RESTART_COUNT" ]; then scontrol requeue $SLURM_JOB_ID; '
                       'sleep 60; fi')
    rec = fleet.wait(job, timeout=60)
    assert (rec["state"], rec["restart_count"]) == ("COMPLETED", 1)
    # slurmstepd's line for the requeue lands between the runs, as in SLURM 22.05
    assert re.fullmatch(
        rf"step=0 run=0\nslurmstepd-\S+: error: \*\*\* JOB {job} ON \S+ CANCELLED AT "
        r"\S+ DUE TO JOB REQUEUE \*\*\*\nstep=0 run=1\n",
        (fleet.work / f"slurm-{job}.out").read_text())
    # sacct shows the last run's steps
    assert _sacct(fleet, job, "jobid,state") == [
        f"{job}|COMPLETED", f"{job}.batch|COMPLETED", f"{job}.0|COMPLETED"]


def test_srun_without_a_job_to_step_into(fleet):
    """SLURM_JOB_ID of a job that is not running: SLURM's error, nothing run."""
    done = fleet.sbatch("--wrap", "true")
    fleet.wait(done)
    proc = fleet.run("srun", "sh", "-c", "echo ran", env={
        "SLURM_JOB_ID": str(done), "FLEETSLURM_STEPS_DIR": str(fleet.work / "steps"),
        "FLEETSLURM_CONTROLLER_HOST": "1"})
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (f"srun: error: Unable to create step for job {done}: "
                           "Job/step already completing or completed\n")


def _wait_for_step(fleet, job: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not fleet.record(job).get("job_steps"):
        assert time.monotonic() < deadline, f"job {job} never started a step"
        time.sleep(0.1)
    time.sleep(0.3)  # its tasks have their traps set


# -- the parts, without a controller ------------------------------------------------

def test_store_numbers_srun_steps_per_run_and_migrates(tmp_path):
    import json
    import sqlite3

    from fleetslurm.store import _MIGRATIONS

    path = tmp_path / "state.db"
    # a database written before srun steps were recorded (schema 1)
    db = sqlite3.connect(path)
    db.executescript(_MIGRATIONS[0])
    db.execute("INSERT INTO jobs VALUES (1, 0, 'root', 0, NULL, ?, '#!/bin/sh')",
               (json.dumps({"name": "x"}),))
    db.execute("INSERT INTO tasks(task_id, job_id, state, req, submit_time) "
               "VALUES (1, 1, 'RUNNING', '{}', 0)")
    db.execute("INSERT INTO steps(run_key, task_id, node, state) VALUES ('1.0', 1, 'n', 'RUNNING')")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    store = Store(path)
    assert [s["run_key"] for s in store.steps_of(1)] == ["1.0"]
    assert store.add_srun_step("1.0", 1, "n", 10.0, "sh", 2, 2) == 0
    assert store.add_srun_step("1.0", 1, "n", 11.0, "python", 1, 2) == 1
    # a requeued run counts from 0 again; keys never mix runs ("1.1" vs "1.10")
    assert store.add_srun_step("1.1", 1, "n", 12.0, "sh", 1, 2) == 0
    rows = {s["run_key"]: s for s in store.steps_of(1)}
    assert set(rows) == {"1.0", "1.0.0", "1.0.1", "1.1.0"}
    assert (rows["1.0.1"]["name"], rows["1.0.1"]["ntasks"], rows["1.0.1"]["step"]) == \
        ("python", 1, "1")
    store.close()


def _task(**kw) -> dict:
    task = {"task_id": 7, "job_id": 7, "array_index": None, "state": "COMPLETED",
            "reason": "None", "req": {"name": "j", "partition": "debug", "time_limit": None},
            "held": False, "submit_time": 100.0, "eligible_time": None, "start_time": 100.0,
            "end_time": 160.0, "node": "n1", "gpu_ids": [], "alloc_cpus": 2,
            "alloc_mem_mb": 0, "run_key": "7.1", "restart_count": 1, "exit_code": 0,
            "exit_signal": 0, "cancelled_by": None, "stdout": "", "stderr": "", "collected": 1}
    task.update(kw)
    return task


def _step(key: str, step: str, state: str, **kw) -> dict:
    row = {"run_key": key, "task_id": 7, "step": step, "node": "n1", "state": state,
           "start_time": 101.0, "end_time": 111.0, "exit_code": 0, "exit_signal": 0,
           "user_cpu": 1.5, "system_cpu": 0.5, "max_rss_kb": 2048, "pid": None, "error": None,
           "name": "sh" if step != "batch" else None, "ntasks": 2, "cpus": 2}
    row.update(kw)
    return row


def test_record_and_sacct_rows_for_steps():
    job = {"job_id": 7, "uid": 0, "user": "root", "spec": {"workdir": "/tmp"}}
    steps = [_step("7.0", "batch", "REQUEUED"), _step("7.0.0", "0", "COMPLETED"),
             _step("7.1", "batch", "COMPLETED"), _step("7.1.0", "0", "FAILED", exit_code=2),
             _step("7.1.1", "1", "RUNNING", end_time=None)]
    rec = job_record(_task(), job, steps)
    # the last run's steps only; one still RUNNING when the job ended was killed with it
    assert [(s["step_id"], s["state"], s["end_time"]) for s in rec["job_steps"]] == \
        [(0, "FAILED", 111.0), (1, "CANCELLED", 160.0)]
    assert rec["steps"][0]["run_key"] == "7.1"
    fields = parse_fields("jobid,jobname,state,exitcode,ntasks,alloccpus,elapsed,totalcpu,maxrss")
    text = render(fields, rows_for(rec, allocations_only=False), mode="parsable2")
    assert text.splitlines()[2:] == [
        "7.batch|batch|COMPLETED|0:0|1|2|00:01:00|00:00:02|2M",
        "7.0|sh|FAILED|2:0|2|2|00:00:10|00:00:02|2M",
        "7.1|sh|CANCELLED|0:0|2|2|00:00:59|00:00:02|2M",
    ]


def test_a_job_srun_made_has_no_batch_step_and_ends_as_its_step():
    job = {"job_id": 7, "uid": 0, "user": "root",
           "spec": {"workdir": "/tmp", "srun_job": True}}
    rec = job_record(_task(state="FAILED", exit_code=137), job,
                     [_step("7.1", "batch", "FAILED", exit_code=137),
                      _step("7.1.0", "0", "CANCELLED", exit_signal=9)])
    assert (rec["exit_code"], rec["exit_signal"], rec["batch_flag"]) == (0, 9, False)
    fields = parse_fields("jobid,state,exitcode")
    assert render(fields, rows_for(rec, allocations_only=False), mode="parsable2") == \
        "JobID|State|ExitCode\n7|FAILED|0:9\n7.0|CANCELLED|0:9\n"


def test_sacct_selects_steps(fleet):
    job = fleet.sbatch("--wrap", "srun true; srun false; true")
    assert fleet.wait(job)["state"] == "COMPLETED"
    out = lambda ids: fleet.run("sacct", "-P", "-n", "-j", ids, "-o", "jobid,state",
                                check=True).stdout
    assert out(f"{job}.1") == f"{job}.1|FAILED\n"
    assert out(f"{job}.batch,{job}.0") == f"{job}.batch|COMPLETED\n{job}.0|COMPLETED\n"
    assert out(str(job)).count("\n") == 4


def test_sbatch_open_mode_reaches_the_steps(fleet):
    """sbatch --open-mode sets SLURM_OPEN_MODE (a/t) in the job, and its sruns
    open their --output files so (checked on the oracle): append keeps what a
    file held, the default truncates."""
    for mode, expected in (("append", "OLD\nnew\n"), (None, "new\n")):
        args = [f"--open-mode={mode}"] if mode else []
        job = fleet.sbatch(*args, "--wrap", "echo ${SLURM_OPEN_MODE:-unset}; echo OLD > t.txt; "
                                            "srun -o t.txt echo new; cat t.txt")
        assert fleet.wait(job)["state"] == "COMPLETED"
        assert (fleet.work / f"slurm-{job}.out").read_text() == \
            ("a\n" if mode else "unset\n") + expected

"""End to end on this machine: real controller, agent, supervisors and jobs,
driven through the `fleetslurm` CLI as a user would."""

from __future__ import annotations

import os
import pwd
import re
import signal
import time


def test_completed_job_output_and_record(fleet):
    proc = fleet.run("sbatch", "--wrap", "echo hi")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Submitted batch job 1\n"
    assert proc.stderr == ""
    rec = fleet.wait(1)
    assert rec["state"] == "COMPLETED"
    assert (rec["exit_code"], rec["exit_signal"]) == (0, 0)
    assert (fleet.work / "slurm-1.out").read_text() == "hi\n"
    assert rec["nodes"] == ["localhost"]
    assert rec["name"] == "wrap"
    assert rec["steps"][0]["max_rss_kb"] > 0
    assert rec["start_time"] <= rec["end_time"]


def test_failed_job_keeps_its_exit_code(fleet):
    job = fleet.sbatch("--wrap", "echo oops >&2; exit 3")
    rec = fleet.wait(job)
    assert rec["state"] == "FAILED"
    assert (rec["exit_code"], rec["exit_signal"]) == (3, 0)
    # without --error, stderr goes to the output file
    assert (fleet.work / f"slurm-{job}.out").read_text() == "oops\n"


def test_job_killed_by_signal_records_the_signal(fleet):
    job = fleet.sbatch("--wrap", "kill -9 $$")
    rec = fleet.wait(job)
    assert rec["state"] == "FAILED"
    assert (rec["exit_code"], rec["exit_signal"]) == (0, 9)


def test_script_file_arguments_and_environment(fleet):
    script = fleet.work / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH -J envjob\n#SBATCH --cpus-per-task=2\n"
                      "#SBATCH -o out-%x-%j.txt\n"
                      'echo "args=$*"\n'
                      "env | grep -E '^(SLURM|SLURMD)_' | sort\n")
    job = fleet.sbatch(str(script), "a b", "c")
    script.unlink()  # sbatch read it before returning
    rec = fleet.wait(job)
    assert rec["state"] == "COMPLETED", rec
    out = (fleet.work / f"out-envjob-{job}.txt").read_text()
    lines = out.splitlines()
    assert lines[0] == "args=a b c"
    env = dict(line.split("=", 1) for line in lines[1:])
    assert env["SLURM_JOB_ID"] == env["SLURM_JOBID"] == str(job)
    assert env["SLURM_JOB_NAME"] == "envjob"
    assert env["SLURM_JOB_NODELIST"] == env["SLURM_NODELIST"] == "localhost"
    assert env["SLURM_JOB_NUM_NODES"] == env["SLURM_NNODES"] == "1"
    assert env["SLURM_JOB_PARTITION"] == "debug"
    assert env["SLURM_SUBMIT_DIR"] == str(fleet.work)
    assert env["SLURM_CPUS_ON_NODE"] == "2"
    assert env["SLURM_CPUS_PER_TASK"] == "2"
    assert env["SLURM_CLUSTER_NAME"] == "testfleet"
    assert env["SLURMD_NODENAME"] == "localhost"
    assert env["SLURM_PROCID"] == env["SLURM_LOCALID"] == env["SLURM_NODEID"] == "0"
    assert int(env["SLURM_TASK_PID"]) > 1
    assert "SLURM_RESTART_COUNT" not in env
    assert "SLURM_ARRAY_TASK_ID" not in env


def test_submitter_slurm_variables_do_not_leak(fleet):
    job = fleet.sbatch("--wrap", "echo ${SLURM_FOO:-unset} $MYVAR",
                       env={"SLURM_FOO": "leak", "MYVAR": "kept"})
    fleet.wait(job)
    assert (fleet.work / f"slurm-{job}.out").read_text() == "unset kept\n"


def test_script_from_stdin(fleet):
    proc = fleet.run("sbatch", input="#!/bin/sh\necho from-stdin\n")
    assert proc.returncode == 0, proc.stderr
    job = int(proc.stdout.split()[-1])
    rec = fleet.wait(job)
    assert rec["name"] == "sbatch"
    assert (fleet.work / f"slurm-{job}.out").read_text() == "from-stdin\n"
    proc = fleet.run("sbatch", "--parsable", "/dev/stdin", input="#!/bin/sh\necho dev\n")
    assert proc.returncode == 0, proc.stderr
    job = int(proc.stdout)
    fleet.wait(job)
    assert (fleet.work / f"slurm-{job}.out").read_text() == "dev\n"


def test_cancel_running_job(fleet):
    job = fleet.sbatch("--wrap", "sleep 300")
    fleet.wait(job, {"RUNNING"})
    proc = fleet.run("scancel", str(job))
    assert proc.returncode == 0 and proc.stderr == ""
    rec = fleet.wait(job, timeout=20)
    assert rec["state"] == "CANCELLED"
    assert rec["cancelled_by"] == os.getuid()
    # cancelling a finished job again is silent and succeeds
    again = fleet.run("scancel", str(job))
    assert (again.returncode, again.stderr) == (0, "")


def test_cancel_pending_job_and_unknown_id(fleet):
    job = fleet.sbatch("--hold", "--wrap", "true")
    # SLURM 22.05 skips an unknown id silently (the message only with -v), exit 0
    proc = fleet.run("scancel", str(job), "99999")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert fleet.record(job)["state"] == "CANCELLED"


def test_hold_and_release(fleet):
    job = fleet.sbatch("-H", "--wrap", "echo released")
    time.sleep(1)
    rec = fleet.record(job)
    assert (rec["state"], rec["reason"]) == ("PENDING", "JobHeldUser")
    assert fleet.run("scontrol", "release", str(job)).returncode == 0
    assert fleet.wait(job)["state"] == "COMPLETED"
    fleet.run("scontrol", "hold", str(job))
    assert fleet.record(job)["state"] == "COMPLETED"


def test_hold_pending_job_then_release(fleet):
    blocker = fleet.sbatch("--exclusive", "--wrap", "sleep 30")
    fleet.wait(blocker, {"RUNNING"})
    job = fleet.sbatch("--wrap", "true")
    assert fleet.run("scontrol", "hold", str(job)).returncode == 0
    fleet.run("scancel", str(blocker))
    fleet.wait(blocker)
    time.sleep(1)
    assert fleet.record(job)["state"] == "PENDING"
    # root's `scontrol hold` is an admin hold, as in SLURM 22.05 (`uhold` is the user's)
    assert fleet.record(job)["reason"] == ("JobHeldAdmin" if os.getuid() == 0 else "JobHeldUser")
    fleet.run("scontrol", "release", str(job), check=True)
    assert fleet.wait(job)["state"] == "COMPLETED"


def test_requeue_running_job_runs_again_with_restart_count(fleet):
    marker = fleet.work / "runs.txt"
    job = fleet.sbatch("--open-mode=append", "--wrap",
                       f"echo run${{SLURM_RESTART_COUNT:-0}} >> {marker}; "
                       'echo "restart=${SLURM_RESTART_COUNT:-0}"; '
                       'if [ -z "$SLURM_RESTART_COUNT" ]; then sleep 300; fi')
    fleet.wait(job, {"RUNNING"})
    time.sleep(0.5)
    assert fleet.run("scontrol", "requeue", str(job)).returncode == 0
    rec = fleet.wait(job, timeout=30)
    assert rec["state"] == "COMPLETED"
    assert rec["restart_count"] == 1
    assert marker.read_text() == "run0\nrun1\n"
    out = (fleet.work / f"slurm-{job}.out").read_text()
    # slurmstepd's line marks the requeue in the log, between the two runs
    assert re.fullmatch(rf"restart=0\nslurmstepd-localhost: error: \*\*\* JOB {job} ON localhost "
                        r"CANCELLED AT \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d DUE TO JOB REQUEUE \*\*\*\n"
                        r"restart=1\n", out), out


def test_requeue_from_inside_the_job_is_not_failed(fleet):
    job = fleet.sbatch("--wrap",
                       'if [ -z "$SLURM_RESTART_COUNT" ]; then '
                       f'{os.sys.executable} -m fleetslurm.cli.main scontrol requeue $SLURM_JOB_ID; '
                       'sleep 60; exit 7; fi; echo second')
    rec = fleet.wait(job, timeout=40)
    assert rec["state"] == "COMPLETED", rec
    assert rec["restart_count"] == 1


def test_out_of_memory(fleet):
    hog = ("python3 -c \"import time; b = bytearray(400*1024*1024); "
           "b[::4096] = b'x'*len(b[::4096]); time.sleep(30)\"")
    job = fleet.sbatch("--mem=100M", "--wrap", hog)
    rec = fleet.wait(job, timeout=40)
    assert rec["state"] == "OUT_OF_MEMORY", rec
    assert rec["steps"][0]["max_rss_kb"] >= 100 * 1024


def test_hostile_names_paths_and_arguments(fleet):
    weird_dir = fleet.work / "dir with 'quotes'; $(touch pwned) \"x\""
    weird_dir.mkdir()
    name = "a'; echo foo \"=0\" `x`"
    script = weird_dir / "my job;'.sh"
    script.write_text('#!/bin/sh\nprintf "%s|" "$@"; echo; echo "$SLURM_JOB_NAME"\n')
    arg = "it's a \"test\"; rm -rf /\nsecond line $(id)"
    proc = fleet.run("sbatch", "--parsable", "-J", name, "-o", "out %j 'q'.txt", str(script),
                     arg, "", cwd=weird_dir)
    assert proc.returncode == 0, proc.stderr
    job = int(proc.stdout)
    rec = fleet.wait(job)
    assert rec["state"] == "COMPLETED", rec
    assert rec["name"] == name
    out = (weird_dir / f"out {job} 'q'.txt").read_text()
    assert out == f"{arg}||\n{name}\n"
    assert not (fleet.work / "pwned").exists() and not (weird_dir / "pwned").exists()


def test_job_name_with_newline(fleet):
    name = "line1\nline2"
    job = fleet.sbatch("-J", name, "--wrap", 'printf "%s" "$SLURM_JOB_NAME"')
    assert fleet.wait(job)["name"] == name
    assert (fleet.work / f"slurm-{job}.out").read_text() == name


def test_array_job(fleet):
    job = fleet.sbatch("--array=1-3,7", "--wrap",
                       "echo $SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT "
                       "$SLURM_ARRAY_TASK_MIN $SLURM_ARRAY_TASK_MAX")
    res = fleet.wait(job)
    tasks = res["tasks"]
    assert sorted(t["array_task_id"] for t in tasks) == [1, 2, 3, 7]
    assert {t["state"] for t in tasks} == {"COMPLETED"}
    for i in (1, 2, 3, 7):
        assert (fleet.work / f"slurm-{job}_{i}.out").read_text() == f"{job} {i} 4 1 7\n"


def test_dependency_afterok_and_afternotok(fleet):
    first = fleet.sbatch("--wrap", "sleep 1; exit 1")
    ok = fleet.sbatch(f"--dependency=afterok:{first}", "--wrap", "echo never")
    notok = fleet.sbatch("-d", f"afternotok:{first}", "--wrap", "echo ran")
    time.sleep(0.5)
    assert fleet.record(ok)["reason"] == "Dependency"
    assert fleet.wait(notok)["state"] == "COMPLETED"
    time.sleep(1)
    rec = fleet.record(ok)
    assert (rec["state"], rec["reason"]) == ("PENDING", "DependencyNeverSatisfied")


def test_time_limit_timeout_even_when_sigterm_is_ignored(tmp_path):
    """--time=1 (a minute: SLURM's smallest limit); KillWait is 2 s in this config."""
    from conftest import Fleet, _teardown, local_config

    cfg = local_config()
    cfg["machines"]["localhost"]["cpus"] = 4  # three sleepers at once
    fleet = Fleet(tmp_path, cfg)
    try:
        _time_limits(fleet)
    finally:
        _teardown(fleet)


def _time_limits(fleet):
    polite = fleet.sbatch("-t", "1", "--wrap", "sleep 600")
    stubborn = fleet.sbatch("-t", "0:30", "--wrap", "trap '' TERM; sleep 600 & wait; sleep 600")
    shortened = fleet.sbatch("-t", "30", "--wrap", "sleep 600")
    start = time.monotonic()
    fleet.wait(shortened, {"RUNNING"})
    # a running job's limit lowered by its owner reaches its supervisor
    fleet.run("scontrol", "update", f"JobId={shortened}", "TimeLimit=1", check=True)
    assert fleet.record(shortened)["time_limit"] == 1
    for job in (polite, stubborn, shortened):
        rec = fleet.wait(job, timeout=120)
        assert rec["state"] == "TIMEOUT", rec
    assert 60 <= time.monotonic() - start < 100
    # the shell and its child get SIGTERM together (a process group, as SLURM's
    # cgroup plugin does): the shell dies of it rather than reaping the child
    # and exiting 143 with a "Terminated" line
    pol = fleet.record(polite)
    assert (pol["exit_code"], pol["exit_signal"]) == (0, signal.SIGTERM), pol
    assert "Terminated" not in (fleet.work / f"slurm-{polite}.out").read_text()
    stub = fleet.record(stubborn)
    assert stub["time_limit"] == 1  # 0:30 is rounded up to a whole minute
    assert stub["end_time"] - stub["start_time"] >= 60


def test_kill_dash_nine_controller_loses_nothing(fleet):
    """Jobs running and queued when the controller dies reach their true end
    once any command restarts it; none runs twice."""
    counter = fleet.work / "count"
    counter.mkdir()
    jobs = []
    for i in range(6):
        jobs.append(fleet.sbatch("--wrap", f"echo x >> {counter}/{i}; sleep 2; exit {i % 3}"))
    fleet.wait(jobs[0], {"RUNNING"})
    pid = fleet.controller_pid()
    os.kill(pid, 9)
    time.sleep(3)  # the running ones finish while no controller exists
    # any command restarts the controller
    proc = fleet.run("squeue")
    assert proc.returncode == 0, proc.stderr
    assert fleet.controller_pid() != pid
    for i, job in enumerate(jobs):
        rec = fleet.wait(job, timeout=60)
        want = "COMPLETED" if i % 3 == 0 else "FAILED"
        assert (rec["state"], rec["exit_code"]) == (want, i % 3), rec
        assert (counter / str(i)).read_text() == "x\n", f"job {job} ran more than once"
        assert rec["steps"][0]["max_rss_kb"] > 0


def test_no_config_embedded_default(default_fleet):
    proc = default_fleet.run("sbatch", "--wrap", "echo hi")
    assert proc.returncode == 0, proc.stderr
    rec = default_fleet.wait(1)
    assert rec["state"] == "COMPLETED"
    assert rec["partition"] == "debug"
    assert (default_fleet.work / "slurm-1.out").read_text() == "hi\n"


def test_commands_render_like_slurm(fleet):
    """The README's first scenario: sbatch, squeue, sacct, sinfo, scontrol."""
    running = fleet.sbatch("-J", "sleeper", "--wrap", "sleep 30")
    fleet.wait(running, {"RUNNING"})
    held = fleet.sbatch("-H", "-J", "held", "--wrap", "true")
    time.sleep(0.5)
    user = __import__("pwd").getpwuid(os.getuid()).pw_name[:8]
    out = fleet.run("squeue", check=True).stdout.splitlines()
    assert out[0] == ("             JOBID PARTITION     NAME     USER ST       TIME  NODES "
                      "NODELIST(REASON)")
    # SLURM sorts by state name as text: PD before R
    assert out[1].split() == [str(held), "debug", "held", user, "PD", "0:00", "1",
                              "(JobHeldUser)"]
    assert out[2].split() == [str(running), "debug", "sleeper", user, "R",
                              out[2].split()[5], "1", "localhost"]
    assert fleet.run("squeue", "-h", "-o", "%i|%T|%j", "-t", "PD", check=True).stdout == \
        f"{held}|PENDING|held\n"
    assert fleet.run("squeue", "-h", "-o", "%i", "-n", "sleeper", check=True).stdout == \
        f"{running}\n"
    fleet.run("scancel", str(running), check=True)
    fleet.wait(running)
    done = fleet.sbatch("--wrap", "echo hi")
    fleet.wait(done)
    sacct = fleet.run("sacct", "-j", str(done), check=True).stdout.splitlines()
    assert sacct[0].split() == ["JobID", "JobName", "Partition", "Account", "AllocCPUS",
                                "State", "ExitCode"]
    assert set(sacct[1]) == {"-", " "}
    # the account: the user's own, as SLURM fills in a user's default account
    me = pwd.getpwuid(os.getuid()).pw_name
    account = me[:9] + "+" if len(me) > 10 else me  # a 10-wide cell
    assert sacct[2].split() == [str(done), "wrap", "debug", account, "1", "COMPLETED", "0:0"]
    assert sacct[3].split() == [f"{done}.batch", "batch", account, "1", "COMPLETED", "0:0"]
    parsable = fleet.run("sacct", "-P", "-n", "-X", "-j", f"{running},{done}",
                         "-o", "jobid,state,exitcode", check=True).stdout
    assert parsable == f"{running}|CANCELLED by {os.getuid()}|0:0\n{done}|COMPLETED|0:0\n"
    bad = fleet.run("sacct", "-o", "JobID,Nonsense")
    assert bad.returncode == 1 and "Nonsense" in bad.stderr and "Traceback" not in bad.stderr
    sinfo = fleet.run("sinfo", check=True).stdout.splitlines()
    assert sinfo[0] == "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST"
    assert sinfo[1].split()[:2] == ["debug*", "up"]
    show = fleet.run("scontrol", "show", "job", str(done), check=True).stdout
    assert show.startswith(f"JobId={done} JobName=wrap\n")
    assert "JobState=COMPLETED" in show and "ExitCode=0:0" in show


def test_drain_and_resume_node(fleet):
    proc = fleet.run("scontrol", "update", "NodeName=localhost", "State=DRAIN", "Reason=maint")
    assert proc.returncode == 0, proc.stderr
    job = fleet.sbatch("--wrap", "true")
    time.sleep(1)
    assert fleet.record(job)["state"] == "PENDING"
    node = fleet.run("sinfo", "-h", "-o", "%t %E", check=True).stdout.split()
    assert node[0] == "drain" and "maint" in node
    fleet.run("scontrol", "update", "NodeName=localhost", "State=RESUME", check=True)
    assert fleet.wait(job)["state"] == "COMPLETED"


def test_srun_outside_allocation_streams_output_and_exit_code(fleet):
    proc = fleet.run("srun", "sh", "-c", "echo out; echo err >&2; exit 4")
    assert proc.returncode == 4
    assert proc.stdout == "out\n"
    assert "err\n" in proc.stderr
    proc = fleet.run("srun", "-J", "named", "echo", "a b", "c'd")
    assert (proc.returncode, proc.stdout) == (0, "a b c'd\n")
    assert not list(fleet.work.glob("slurm-*.out"))


def test_srun_steps_inside_a_batch_job(fleet):
    job = fleet.sbatch("-n", "2", "--wrap",
                       "srun sh -c 'echo task=$SLURM_PROCID/$SLURM_NTASKS step=$SLURM_STEP_ID' "
                       "| sort; srun -n 1 sh -c 'echo step=$SLURM_STEP_ID'")
    assert fleet.wait(job)["state"] == "COMPLETED"
    assert (fleet.work / f"slurm-{job}.out").read_text() == \
        "task=0/2 step=0\ntask=1/2 step=0\nstep=1\n"


def test_squeue_and_scancel_filters(wide_fleet):
    fleet = wide_fleet
    me = __import__("pwd").getpwuid(os.getuid()).pw_name
    a = fleet.sbatch("-H", "-J", "alpha", "--wrap", "true")
    b = fleet.sbatch("-H", "-J", "beta", "--wrap", "true")
    c = fleet.sbatch("-J", "gamma", "--wrap", "sleep 60")
    fleet.wait(c, {"RUNNING"})
    ids = lambda *args: fleet.run("squeue", "-h", "-o", "%i", *args, check=True).stdout.split()
    # SLURM's default order P,t,-p compares the short state names as text (PD
    # before R); held jobs tie at priority 0, the newest first (as on the oracle)
    assert ids("-n", "alpha,gamma") == [str(a), str(c)]
    assert ids("-u", me) == [str(b), str(a), str(c)]
    assert ids("--me", "-t", "PD") == [str(b), str(a)]
    assert ids("-j", f"{a},{b}") == [str(b), str(a)]
    assert ids("-j", str(b)) == [str(b)]
    assert ids("-u", "nosuchuser") == []
    env_fmt = fleet.run("squeue", "-h", "-t", "R", env={"SQUEUE_FORMAT": "%j:%T"}, check=True)
    assert env_fmt.stdout == "gamma:RUNNING\n"
    # -o wins over SQUEUE_FORMAT
    assert fleet.run("squeue", "-h", "-t", "R", "-o", "%i", env={"SQUEUE_FORMAT": "%j"},
                     check=True).stdout == f"{c}\n"
    missing = fleet.run("squeue", "-j", "99999")
    assert (missing.returncode, missing.stderr) == (
        1, "slurm_load_jobs error: Invalid job id specified\n")
    # scancel by name and state
    fleet.run("scancel", "-n", "alpha", check=True)
    assert fleet.wait(a)["state"] == "CANCELLED"
    assert fleet.record(b)["state"] == "PENDING"
    fleet.run("scancel", "--me", "-t", "PENDING", check=True)
    assert fleet.wait(b)["state"] == "CANCELLED"
    assert fleet.record(c)["state"] == "RUNNING"
    fleet.run("scancel", "-u", me, check=True)
    assert fleet.wait(c)["state"] == "CANCELLED"


def test_scancel_signal_targets_like_slurm(wide_fleet):
    """Checked on SLURM 22.05: without -b/-f only job steps get the signal (a
    job without srun steps gets nothing), -b the batch shell only, -f every
    process of the job (the shell then reports its killed child)."""
    fleet = wide_fleet
    trap = "trap 'echo got USR1; exit 0' USR1; while true; do sleep 0.1; done"
    jobs = {mode: fleet.sbatch("--wrap", trap) for mode in ("", "-b", "-f")}
    steps = fleet.sbatch("--wrap", "srun sh -c \"trap 'echo step got USR1; exit 0' USR1; "
                                   "while true; do sleep 0.1; done\"; echo after")
    for job in [*jobs.values(), steps]:
        fleet.wait(job, {"RUNNING"})
    time.sleep(1)
    for mode, job in jobs.items():
        fleet.run("scancel", "--signal=USR1", *([mode] if mode else []), str(job), check=True)
    fleet.run("scancel", "-s", "USR1", str(steps), check=True)
    assert fleet.wait(jobs["-b"], timeout=20)["state"] == "COMPLETED"
    assert (fleet.work / f"slurm-{jobs['-b']}.out").read_text() == "got USR1\n"
    # -f: the shell's running `sleep` is signalled too; when the signal lands
    # while it runs, the shell first reports "User defined signal 1"
    assert fleet.wait(jobs["-f"], timeout=20)["state"] == "COMPLETED"
    assert (fleet.work / f"slurm-{jobs['-f']}.out").read_text() in (
        "User defined signal 1\ngot USR1\n", "got USR1\n")
    assert fleet.wait(steps, timeout=20)["state"] == "COMPLETED"
    # every process of the step gets it, but not the batch shell (it says "after")
    assert (fleet.work / f"slurm-{steps}.out").read_text() in (
        "User defined signal 1\nstep got USR1\nafter\n", "step got USR1\nafter\n")
    assert fleet.record(jobs[""])["state"] == "RUNNING"  # nothing to signal: no steps
    fleet.run("scancel", str(jobs[""]), check=True)


def test_sacct_windows_states_and_names(fleet):
    ok = fleet.sbatch("-J", "good", "--wrap", "true")
    bad = fleet.sbatch("-J", "bad", "--wrap", "exit 2")
    fleet.wait(ok)
    fleet.wait(bad)
    out = lambda *a: fleet.run("sacct", "-n", "-X", "-P", "-o", "jobid", *a,
                               check=True).stdout.split()
    assert out() == [str(ok), str(bad)]                       # since midnight by default
    assert out("-s", "F") == [str(bad)]
    assert out("--state=COMPLETED") == [str(ok)]
    assert out("--name", "good") == [str(ok)]
    assert out("-S", "now+1hours") == []
    assert out("-S", "2020-01-01T00:00", "-E", "now") == [str(ok), str(bad)]
    assert out("-E", "2020-01-01") == []
    steps = fleet.run("sacct", "-n", "-P", "-j", str(bad), "-o", "jobid,state,exitcode",
                      check=True).stdout
    assert steps == f"{bad}|FAILED|2:0\n{bad}.batch|FAILED|2:0\n"
    stray = fleet.run("sacct", "stray")
    assert stray.returncode == 1 and "stray" in stray.stderr


def test_signal_before_time_limit(fleet):
    """--signal=B:USR1@55 with a one-minute limit: the batch shell hears at ~5 s;
    without B: the srun step gets it (as submitit's USR2@90 expects)."""
    batch = fleet.sbatch("-t", "1", "--signal=B:USR1@55", "--wrap",
                         "trap 'echo warned; exit 0' USR1; while true; do sleep 0.2; done")
    step = fleet.sbatch("-t", "1", "--signal=USR1@55", "--wrap",
                        "srun sh -c \"trap 'echo step warned; exit 0' USR1; "
                        "while true; do sleep 0.2; done\" 2>/dev/null")
    t0 = time.monotonic()
    for job, text in ((batch, "warned\n"), (step, "step warned\n")):
        rec = fleet.wait(job, timeout=30)
        assert rec["state"] == "COMPLETED", rec
        assert (fleet.work / f"slurm-{job}.out").read_text() == text
    assert time.monotonic() - t0 < 20


def test_requeue_of_a_finished_job_runs_it_again(fleet):
    job = fleet.sbatch("--open-mode=append", "--wrap", "echo run${SLURM_RESTART_COUNT:-0}")
    assert fleet.wait(job)["state"] == "COMPLETED"
    fleet.run("scontrol", "requeue", str(job), check=True)
    rec = fleet.wait(job, timeout=30)
    assert (rec["state"], rec["restart_count"]) == ("COMPLETED", 1)
    assert (fleet.work / f"slurm-{job}.out").read_text() == "run0\nrun1\n"
    assert fleet.run("squeue").returncode == 0  # the controller is still there


def test_dependencies_survive_a_controller_restart(fleet):
    first = fleet.sbatch("--wrap", "exit 1")
    fleet.wait(first)
    after = fleet.sbatch(f"--dependency=afterok:{first}", "--wrap", "echo never")
    time.sleep(1)
    assert fleet.record(after)["reason"] == "DependencyNeverSatisfied"
    os.kill(fleet.controller_pid(), 9)
    time.sleep(0.5)
    assert fleet.run("squeue").returncode == 0  # restarts it
    time.sleep(1.5)
    rec = fleet.record(after)
    assert (rec["state"], rec["reason"]) == ("PENDING", "DependencyNeverSatisfied")


def test_explain_says_why(fleet):
    held = fleet.sbatch("-H", "--wrap", "true")
    out = fleet.run("explain", str(held), check=True).stdout
    assert out.startswith(f"job {held} is pending (JobHeldUser)")
    assert f"scontrol release {held}" in out
    done = fleet.sbatch("--wrap", "exit 3")
    fleet.wait(done)
    assert fleet.run("explain", str(done), check=True).stdout.startswith(
        f"job {done} ended FAILED (3:0)")
    bad = fleet.run("explain", "99999")
    assert bad.returncode == 1 and "Invalid job id specified" in bad.stderr


def test_a_submission_sent_again_after_a_lost_answer_makes_one_job(fleet):
    """A controller killed after it stored a job but before it answered: sbatch
    sends the same submission again (to the controller the next command
    starts) and its token gives back the job already made, never a second."""
    import secrets

    token = secrets.token_hex(16)
    request = dict(options={"wrap": "true", "output": "/dev/null"}, script="#!/bin/sh\ntrue\n",
                   script_args=[], env={"PATH": "/usr/bin:/bin"}, cwd=str(fleet.work),
                   script_name="wrap", token=token)
    first = fleet.sbatch("-o", "/dev/null", "--wrap", "true")  # starts the controller
    with fleet.client() as c:
        made = c.call("submit", **request)["job_id"]
        again = c.call("submit", **request)["job_id"]
    assert made == again and made != first
    os.kill(fleet.controller_pid(), signal.SIGKILL)
    time.sleep(0.3)
    fleet.run("squeue", check=True)  # a new controller
    with fleet.client() as c:
        assert c.call("submit", **request)["job_id"] == made  # kept over the restart
        other = c.call("submit", **dict(request, token=secrets.token_hex(16)))["job_id"]
    assert other not in (made, first)
    with fleet.client() as c:
        ids = sorted(r["job_id"] for r in c.call("jobs", steps=False))
    assert ids == sorted({first, made, other})

"""Job mail: ``--mail-type``/``--mail-user`` stored and shown as SLURM 22.05's
scontrol shows them, and mail sent through the configured ``mail_prog`` as
slurmctld runs MailProg (``MailProg -s SUBJECT USER``, empty body, SLURM_JOB_*
in its environment), with slurmctld's subject lines. The mail program here is
a fake that records its argv, environment and standard input."""

from __future__ import annotations

import json
import re
import stat
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from fleetslurm.slurm.mail import (array_summary_subject, duration, format_mail_type,
                                   parse_mail_type, subject)
from tests.conftest import Fleet, _teardown, local_config

FAKE = """#!{py}
import json, os, sys
rec = {{"argv": sys.argv[1:], "stdin": sys.stdin.read(),
        "env": {{k: v for k, v in os.environ.items() if k.startswith("SLURM_")}}}}
with open({log!r}, "a") as f:
    f.write(json.dumps(rec) + "\\n")
sys.exit(int(os.environ.get("FAKE_MAIL_RC", "0")))
"""


def _fake(path: Path, log: Path) -> Path:
    path.write_text(FAKE.format(py=sys.executable, log=str(log)))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def mail_fleet(tmp_path: Path) -> Iterator[tuple[Fleet, Path]]:
    log = tmp_path / "mails.jsonl"
    prog = _fake(tmp_path / "fakemail", log)
    f = Fleet(tmp_path / "fleet", local_config(mail_prog=str(prog)))
    yield f, log
    _teardown(f)


def _mails(log: Path, count: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = log.read_text().splitlines() if log.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return [json.loads(x) for x in lines]
        time.sleep(0.1)


# ------------------------------------------------------------------ pure


def test_mail_type_words_as_scontrol_prints_them() -> None:
    # oracle: --mail-type=ALL -> MailType=INVALID_DEPEND,BEGIN,END,FAIL,REQUEUE,STAGE_OUT;
    # TIME_LIMIT_80,ARRAY_TASKS -> ARRAY_TASKS,TIME_LIMIT_80
    assert format_mail_type(parse_mail_type("ALL")) == \
        "INVALID_DEPEND,BEGIN,END,FAIL,REQUEUE,STAGE_OUT"
    assert format_mail_type(parse_mail_type("time_limit_80,ARRAY_TASKS")) == \
        "ARRAY_TASKS,TIME_LIMIT_80"
    assert format_mail_type(parse_mail_type(
        "FAIL,REQUEUE,TIME_LIMIT,STAGE_OUT,INVALID_DEPEND,TIME_LIMIT_50,TIME_LIMIT_90")) == \
        "INVALID_DEPEND,FAIL,REQUEUE,STAGE_OUT,TIME_LIMIT_50,TIME_LIMIT_90,TIME_LIMIT"
    assert parse_mail_type("BEGIN,NONE,END") == frozenset()  # NONE ends the list
    assert parse_mail_type("bogus") is None
    assert parse_mail_type("bogus,end") == {"END"}


def test_subject_lines() -> None:
    assert duration(3725) == "01:02:05" and duration(90061) == "1-01:01:01"
    assert subject("BEGIN", 7, "x", submit=100, start=101)[0] == \
        "Slurm Job_id=7 Name=x Began, Queued time 00:00:01"
    assert subject("END", 7, "x", state="COMPLETED", exit_code=0, start=100, end=165)[0] == \
        "Slurm Job_id=7 Name=x Ended, Run time 00:01:05, COMPLETED, ExitCode 0"
    # a signal ended it: no ExitCode (its wait status is not WIFEXITED)
    assert subject("FAIL", 7, "x", state="TIMEOUT", signaled=True, start=1, end=61)[0] == \
        "Slurm Job_id=7 Name=x Failed, Run time 00:01:00, TIMEOUT"
    assert subject("END", 9, "x", state="COMPLETED", start=1, end=2, array=(7, 3))[0] == \
        "Slurm Array Task Job_id=7_3 (9) Name=x Ended, Run time 00:00:01, COMPLETED, ExitCode 0"
    assert array_summary_subject("FAIL", 7, "x", state="FAILED", codes=[0, 2])[0] == \
        "Slurm Array Summary Job_id=7_* (7) Name=x Failed, Mixed, ExitCode [0-2]"
    assert subject("TIME_LIMIT_50", 7, "x", start=100, now=130)[0] == \
        "Slurm Job_id=7 Name=x Reached 50% of time limit, Run time 00:00:30"


# ------------------------------------------------------------------ real controller


def test_scontrol_shows_mail_user_and_type(mail_fleet) -> None:
    fleet, _ = mail_fleet
    import getpass

    # oracle: MailUser defaults to the submitter; shown only with a MailType
    cases = [([], None), (["--mail-user=bob@x"], None),
             (["--mail-type=END"], f"MailUser={getpass.getuser()} MailType=END"),
             (["--mail-type=begin,end", "--mail-user=bob"], "MailUser=bob MailType=BEGIN,END"),
             (["--mail-type=ALL"], f"MailUser={getpass.getuser()} "
                                   "MailType=INVALID_DEPEND,BEGIN,END,FAIL,REQUEUE,STAGE_OUT")]
    for args, want in cases:
        job = fleet.sbatch("-H", *args, "--wrap", "true")
        show = fleet.run("scontrol", "show", "job", str(job), check=True).stdout
        found = re.findall(r"^   (Mail\S+ \S+)$", show, re.M)
        assert found == ([want] if want else []), (args, show)


def test_begin_and_end_mail(mail_fleet) -> None:
    fleet, log = mail_fleet
    job = fleet.sbatch("--mail-type=BEGIN,END", "--mail-user=ann@lab", "-J", "mj",
                       "-o", "/dev/null", "--wrap", "sleep 1")
    fleet.wait(job)
    mails = _mails(log, 2)
    assert [(len(m["argv"]), m["argv"][0], m["argv"][2]) for m in mails] == \
        [(3, "-s", "ann@lab")] * 2
    assert all(m["stdin"] == "" for m in mails)  # the body is empty
    begin, end = (m["argv"][1] for m in mails)
    assert re.fullmatch(rf"Slurm Job_id={job} Name=mj Began, Queued time 00:00:0\d", begin)
    assert re.fullmatch(rf"Slurm Job_id={job} Name=mj Ended, Run time 00:00:0\d, COMPLETED, "
                        r"ExitCode 0", end), end
    env = mails[1]["env"]
    assert env["SLURM_JOB_ID"] == env["SLURM_JOBID"] == str(job)
    assert (env["SLURM_JOB_NAME"], env["SLURM_JOB_STATE"], env["SLURM_JOB_MAIL_TYPE"]) == \
        ("mj", "COMPLETED", "Ended")
    assert (env["SLURM_JOB_EXIT_CODE_MAX"], env["SLURM_JOB_EXIT_CODE2"]) == ("0", "0:0")
    assert env["SLURM_CLUSTER_NAME"] == "testfleet" and env["SLURM_JOB_PARTITION"] == "debug"
    assert "SLURM_JOB_RUN_TIME" in env and mails[0]["env"]["SLURM_JOB_QUEUED_TIME"]
    # the variables the oracle's MailProg got for such a job's END mail (SLURM
    # 22.05, "sbatch -o /dev/null --mail-type=BEGIN,END"), no more, no fewer
    assert sorted(env) == [
        "SLURM_CLUSTER_NAME", "SLURM_JOBID", "SLURM_JOB_ACCOUNT", "SLURM_JOB_CPUS_PER_NODE",
        "SLURM_JOB_DERIVED_EC", "SLURM_JOB_EXIT_CODE", "SLURM_JOB_EXIT_CODE2",
        "SLURM_JOB_EXIT_CODE_MAX", "SLURM_JOB_GID", "SLURM_JOB_GROUP", "SLURM_JOB_ID",
        "SLURM_JOB_MAIL_TYPE", "SLURM_JOB_NAME", "SLURM_JOB_NODELIST", "SLURM_JOB_NUM_NODES",
        "SLURM_JOB_PARTITION", "SLURM_JOB_RESTART_COUNT", "SLURM_JOB_RUN_TIME",
        "SLURM_JOB_STATE", "SLURM_JOB_STDIN", "SLURM_JOB_STDOUT", "SLURM_JOB_UID",
        "SLURM_JOB_USER", "SLURM_JOB_WORK_DIR"], sorted(env)
    assert (env["SLURM_JOB_ACCOUNT"], env["SLURM_JOB_STDIN"], env["SLURM_JOB_STDOUT"],
            env["SLURM_JOB_NUM_NODES"], env["SLURM_JOB_NODELIST"]) == \
        ("(null)", "/dev/null", "/dev/null", "1", "localhost")
    assert sorted(mails[0]["env"]) == sorted(
        set(env) - {"SLURM_JOB_DERIVED_EC", "SLURM_JOB_EXIT_CODE", "SLURM_JOB_EXIT_CODE2",
                    "SLURM_JOB_EXIT_CODE_MAX", "SLURM_JOB_RUN_TIME"} | {"SLURM_JOB_QUEUED_TIME"})
    assert mails[0]["env"]["SLURM_JOB_STATE"] == "RUNNING"


def test_end_mail_of_a_job_cancelled_while_pending(mail_fleet) -> None:
    fleet, log = mail_fleet
    job = fleet.sbatch("-H", "--mail-type=END", "-J", "held", "--wrap", "true")
    fleet.run("scancel", str(job), check=True)
    mails = _mails(log, 1)
    assert [m["argv"][1] for m in mails] == [
        f"Slurm Job_id={job} Name=held Ended, Run time 00:00:00, CANCELLED, ExitCode 0"], mails
    env = mails[0]["env"]  # never given a machine (oracle: no CPUS_PER_NODE either)
    assert env["SLURM_JOB_NODELIST"] == "(null)" and "SLURM_JOB_NUM_NODES" not in env


def test_invalid_dependency_mail(mail_fleet) -> None:
    fleet, log = mail_fleet
    bad = fleet.sbatch("--wrap", "exit 1")
    fleet.wait(bad)
    job = fleet.sbatch(f"--dependency=afterok:{bad}", "--mail-type=INVALID_DEPEND", "-J", "dep",
                       "--wrap", "true")
    mails = _mails(log, 1)
    assert [m["argv"][1] for m in mails] == [f"Slurm Job_id={job} Name=dep Invalid dependency"]
    assert mails[0]["env"]["SLURM_JOB_MAIL_TYPE"] == "Invalid dependency"
    time.sleep(1.5)
    assert len(_mails(log, 2, timeout=0)) == 1  # once
    fleet.run("scancel", str(job), check=True)


def test_fail_mail_and_no_end_mail_for_a_failure(mail_fleet) -> None:
    fleet, log = mail_fleet
    # END alone sends nothing for a FAILED job (job_mgr.c: END is for
    # COMPLETED and CANCELLED); FAIL does
    quiet = fleet.sbatch("--mail-type=END", "--wrap", "exit 3")
    loud = fleet.sbatch("--mail-type=FAIL", "-J", "bad", "--wrap", "exit 3")
    fleet.wait(quiet)
    fleet.wait(loud)
    mails = _mails(log, 1)
    time.sleep(1.5)
    mails = _mails(log, 1)
    assert len(mails) == 1, mails
    assert re.fullmatch(rf"Slurm Job_id={loud} Name=bad Failed, Run time 00:00:0\d, FAILED, "
                        r"ExitCode 3", mails[0]["argv"][1]), mails


def test_array_summary_and_array_tasks(mail_fleet) -> None:
    fleet, log = mail_fleet
    arr = fleet.sbatch("-a", "0-2", "--mail-type=END", "-J", "arr", "--wrap",
                       'exit $SLURM_ARRAY_TASK_ID')
    fleet.wait(arr)
    mails = _mails(log, 1)
    time.sleep(1.5)
    mails = _mails(log, 1)
    # END only: the tasks exited 0..2, the summary says Mixed [0-2]
    assert [m["argv"][1] for m in mails] == [
        f"Slurm Array Summary Job_id={arr}_* ({arr}) Name=arr Ended, Mixed, ExitCode [0-2]"], mails
    env = mails[0]["env"]
    # as the oracle's summary: the array's own record (its id, its state), the
    # exit codes' range, the array's variables, a run time
    assert (env["SLURM_JOB_EXIT_CODE_MIN"], env["SLURM_JOB_EXIT_CODE_MAX"]) == ("0", "2")
    assert (env["SLURM_JOB_ID"], env["SLURM_ARRAY_JOB_ID"], env["SLURM_ARRAY_TASK_COUNT"],
            env["SLURM_ARRAY_TASK_MIN"], env["SLURM_ARRAY_TASK_MAX"],
            env["SLURM_ARRAY_TASK_STEP"]) == (str(arr), str(arr), "3", "0", "2", "1")
    assert "SLURM_JOB_RUN_TIME" in env and env["SLURM_JOB_MAIL_TYPE"] == "Ended"
    log.unlink()
    arr2 = fleet.sbatch("-a", "0-1", "--mail-type=END,ARRAY_TASKS", "-J", "each", "--wrap", "true")
    fleet.wait(arr2)
    mails = _mails(log, 2)
    subjects = sorted(m["argv"][1] for m in mails)
    assert len(subjects) == 2
    for index, text in enumerate(subjects):
        assert re.fullmatch(rf"Slurm Array Task Job_id={arr2}_{index} \(\d+\) Name=each Ended, "
                            r"Run time 00:00:0\d, COMPLETED, ExitCode 0", text), subjects
    assert sorted(m["env"]["SLURM_ARRAY_TASK_ID"] for m in mails) == ["0", "1"]


def test_a_failing_mail_program_is_logged_and_changes_nothing(tmp_path: Path) -> None:
    f = Fleet(tmp_path / "fleet", local_config(mail_prog=str(tmp_path / "missing-mail")))
    try:
        job = f.sbatch("--mail-type=ALL", "--wrap", "true")
        rec = f.wait(job)
        assert rec["state"] == "COMPLETED"
        assert f.sbatch("--wrap", "true")  # the controller still answers
        deadline = time.monotonic() + 30
        log = f.home / "controller.log"
        while "MailProg" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "the mail program's failure was not logged"
            time.sleep(0.1)
        assert f"error: MailProg {tmp_path / 'missing-mail'} could not run" in log.read_text()
    finally:
        _teardown(f)


def test_no_mail_program_warns_at_submit(tmp_path: Path) -> None:
    f = Fleet(tmp_path / "fleet", local_config(mail_prog=""))
    try:
        proc = f.run("sbatch", "--mail-type=END", "--wrap", "true", check=True)
        assert re.fullmatch(r"Submitted batch job \d+\n", proc.stdout)
        assert proc.stderr == ("sbatch: warning: no mail program: this job's mail (--mail-type) "
                               "is not sent; set mail_prog in the config (SLURM's MailProg)\n")
        quiet = f.run("sbatch", "--wrap", "true", check=True)
        assert quiet.stderr == ""
    finally:
        _teardown(f)


def test_requeue_update_and_time_limit_mail(mail_fleet) -> None:
    fleet, log = mail_fleet
    job = fleet.sbatch("-t", "1", "-J", "tl", "--mail-type=REQUEUE", "--wrap", "sleep 50")
    fleet.wait(job, states={"RUNNING"})
    fleet.run("scontrol", "requeue", str(job), check=True)
    mails = _mails(log, 1)
    assert re.fullmatch(rf"Slurm Job_id={job} Name=tl Requeued, Run time 00:00:0\d",
                        mails[0]["argv"][1]), mails
    # scontrol update MailType: shown as SLURM prints it, and it takes effect
    bad = fleet.run("scontrol", "update", f"JobId={job}", "MailType=bogus")
    assert bad.returncode == 1 and "Invalid MailType value: bogus" in bad.stderr
    fleet.run("scontrol", "update", f"JobId={job}", "MailType=time_limit_50", check=True)
    show = fleet.run("scontrol", "show", "job", str(job), check=True).stdout
    assert "MailType=TIME_LIMIT_50" in show, show
    fleet.wait(job, states={"RUNNING"})
    mails = _mails(log, 2, timeout=60)
    assert len(mails) == 2, mails
    assert re.fullmatch(rf"Slurm Job_id={job} Name=tl Reached 50% of time limit, Run time "
                        r"00:00:3\d", mails[1]["argv"][1]), mails
    assert mails[1]["env"]["SLURM_JOB_MAIL_TYPE"] == "Reached 50% of time limit"
    fleet.run("scancel", str(job), check=True)


def test_a_mail_user_that_would_be_an_option_or_a_header_is_refused(mail_fleet) -> None:
    """--mail-user reaches the mail program's argv (and sendmail's headers):
    ``-X'!cmd'`` would be mailx's option to run a command as the
    controller's account, a newline would add a header. Refused at submit
    and at update, with nothing stored; a plain address goes through."""
    fleet, log = mail_fleet
    before = fleet.run("squeue", "-h", "-t", "all", "-o", "%i", check=True).stdout
    for bad in ("-X!sh /tmp/x", "bob\nBcc: eve@x", "a b"):
        p = fleet.run("sbatch", "--mail-type=END", f"--mail-user={bad}", "--wrap", "true")
        assert p.returncode != 0 and p.stdout == "", p
        assert p.stderr.startswith("sbatch: error: Invalid --mail-user ") and \
            "Traceback" not in p.stderr, p.stderr
    assert fleet.run("squeue", "-h", "-t", "all", "-o", "%i", check=True).stdout == before
    job = fleet.sbatch("-H", "--mail-type=END", "--mail-user=bob@example.org", "--wrap", "true")
    p = fleet.run("scontrol", "update", f"JobId={job}", "MailUser=-Xfoo")
    assert p.returncode == 1 and "Invalid MailUser value: '-Xfoo'" in p.stderr, p
    show = fleet.run("scontrol", "show", "job", str(job), check=True).stdout
    assert "MailUser=bob@example.org MailType=END" in show, show
    fleet.run("scancel", str(job), check=True)

"""Issue 12 items 4 and 5: in a lab, a job runs as its user (looked up by
name on its machine) and what is written for it is written as that user.

A lab controller run by root (SlurmUser=root, the embedded default's agent
as root), real Unix users (``useradd``; needs root), every file under a
temporary FLEETSLURM_LAB_ROOT and a /tmp directory every user can enter.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from second_user import fork_as, other_user, run_as, shared_tmp  # noqa: E402,F401  (fixtures)

from fleetslurm.node.agent.spec import validate_spec  # noqa: E402

REPO = str(Path(__file__).resolve().parents[1])
PY = sys.executable


class RootLab:
    def __init__(self, root: Path, work: Path) -> None:
        self.root, self.work = root, work
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": REPO,
                    "FLEETSLURM_LAB_ROOT": str(root), "LANG": "C.UTF-8"}

    def fs(self, *args: str, user: "pwd.struct_passwd | None" = None,
           timeout: float = 60) -> subprocess.CompletedProcess:
        argv = [PY, "-m", "fleetslurm", *args]
        if user is None:
            return subprocess.run(argv, capture_output=True, text=True, env=self.env,
                                  cwd=self.work, timeout=timeout)
        return run_as(user, argv, dict(self.env, HOME=user.pw_dir), str(self.work),
                      timeout=timeout)

    def wait(self, job: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self.fs("sacct", "-X", "-n", "-P", "-a", "-j", job, "-o", "State,ExitCode,Reason")
            fields = p.stdout.strip().split("|")
            if len(fields) == 3 and fields[0] not in ("PENDING", "RUNNING", "COMPLETING"):
                return dict(zip(("state", "exit", "reason"), fields))
            time.sleep(0.3)
        raise AssertionError(f"job {job} did not end: {p.stdout} {p.stderr}")


@pytest.fixture
def root_lab(shared_tmp: Path) -> Iterator[RootLab]:
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("setpriv"):
        pytest.skip("needs root, useradd and setpriv")
    root = Path(tempfile.mkdtemp(prefix="fsl-lab-", dir="/tmp"))
    os.chmod(root, 0o755)
    cfg = root / "cfg.json"
    cfg.write_text(json.dumps({"kill_wait": 2, "heartbeat_interval": 1.0, "machines": {
        "localhost": {"transport": "local", "cpus": 2, "memory_gb": 2}}}))
    os.chmod(shared_tmp, 0o1777)  # the users' jobs write here (as /tmp)
    lab = RootLab(root, shared_tmp)
    try:
        init = lab.fs("lab", "init", "--config", str(cfg), "--service-user", "root")
        assert init.returncode == 0, init.stderr
        start = lab.fs("lab", "start")
        assert start.returncode == 0, start.stderr
        yield lab
    finally:
        lab.fs("lab", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _errors(lab: RootLab) -> list:
    """The steps' recorded errors (what a failed launch or setup said)."""
    import sqlite3

    db = sqlite3.connect(lab.root / "var/lib/fleetslurm/state.db")
    try:
        return db.execute("SELECT error FROM steps").fetchall()
    finally:
        db.close()


def _submit(lab: RootLab, user: pwd.struct_passwd, *args: str) -> str:
    p = lab.fs("sbatch", "--parsable", *args, user=user)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_a_lab_job_runs_as_its_user_and_its_files_are_the_users(root_lab: RootLab,
                                                                 other_user) -> None:
    lab, user = root_lab, other_user
    groups = subprocess.run(["id", "-G", user.pw_name], capture_output=True, text=True,
                            check=True).stdout.split()
    job = _submit(lab, user, "-o", "ids-%j.out", "--wrap",
                  "id -u; id -g; id -G; echo $HOME $USER $LOGNAME; touch made-by-job")
    rec = lab.wait(job)
    out = lab.work / f"ids-{job}.out"
    assert rec["state"] == "COMPLETED", (rec, out.exists() and out.read_text(), _errors(lab))
    lines = out.read_text().splitlines()
    assert lines[0] == str(user.pw_uid) and lines[1] == str(user.pw_gid), lines
    assert sorted(lines[2].split()) == sorted(groups), lines
    assert lines[3] == f"{user.pw_dir} {user.pw_name} {user.pw_name}", lines
    for path in (out, lab.work / "made-by-job"):
        assert os.stat(path).st_uid == user.pw_uid, path


def test_output_to_a_path_the_user_cannot_write_fails_and_leaves_it_alone(
        root_lab: RootLab, other_user) -> None:
    lab = root_lab
    secret = lab.work / "root-only"
    secret.write_text("root's\n")
    os.chmod(secret, 0o600)
    job = _submit(lab, other_user, "-o", str(secret), "--wrap", "echo overwritten")
    rec = lab.wait(job)
    assert rec["state"] == "FAILED", rec
    assert secret.read_text() == "root's\n"
    assert os.stat(secret).st_uid == 0
    assert (f"cannot open stdout file {secret}: Permission denied",) in _errors(lab)


def test_a_user_unknown_on_the_machine_fails_the_job_naming_user_and_machine(
        root_lab: RootLab, other_user) -> None:
    lab, user = root_lab, other_user
    job = _submit(lab, user, "--hold", "-o", "/dev/null", "--wrap", "true")
    # the user leaves this machine's user database before the job starts
    subprocess.run(["userdel", user.pw_name], check=True, capture_output=True)
    try:
        rel = lab.fs("scontrol", "release", job)
        assert rel.returncode == 0, rel.stderr
        rec = lab.wait(job)
        assert rec["state"] == "FAILED", rec
        assert rec["reason"] == "JobLaunchFailure", rec
        errors = [e for (e,) in _errors(lab)]
        assert any(f"user {user.pw_name} is unknown on machine localhost" in e
                   for e in errors), errors
        # the job's fault, not the machine's: it stays in service
        node = lab.fs("sinfo", "-h", "-o", "%t").stdout.strip()
        assert node in ("idle", "mix", "alloc"), node
    finally:
        # (the fixture's userdel -r then removes the home)
        subprocess.run(["useradd", "-u", str(user.pw_uid), "-M", user.pw_name],
                       capture_output=True)


def test_the_agent_resolves_the_user_by_name_on_its_machine() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (a privileged agent)")
    base = {"script": "#!/bin/sh\n", "node": "m7"}
    with pytest.raises(ValueError, match="user nosuchfsluser is unknown on machine m7"):
        validate_spec(dict(base, user="nosuchfsluser"))
    nobody = pwd.getpwnam("nobody")
    spec = validate_spec(dict(base, user="nobody", uid=12345, gid=0))
    assert (spec["uid"], spec["gid"], spec["user"], spec["home"]) == (
        nobody.pw_uid, nobody.pw_gid, "nobody", nobody.pw_dir)
    # root on the machine: nothing to drop
    spec = validate_spec(dict(base, user="root"))
    assert spec["uid"] is None and spec["user"] is None


def test_the_privileged_supervisor_still_ends_a_users_job(root_lab: RootLab,
                                                          other_user) -> None:
    """scancel of a job run as its user: the (root) supervisor stops every
    process of it, records the result, and slurmstepd's line lands in the
    user's own output file."""
    lab, user = root_lab, other_user
    job = _submit(lab, user, "-o", "long-%j.out", "--wrap", "echo started; sleep 600")
    out = lab.work / f"long-{job}.out"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (out.exists() and out.read_text()):
        time.sleep(0.2)
    assert out.read_text() == "started\n"
    cancel = lab.fs("scancel", job, user=user)
    assert cancel.returncode == 0, cancel.stderr
    rec = lab.wait(job)
    assert rec["state"] == f"CANCELLED by {user.pw_uid}", rec
    text = out.read_text()
    assert f"*** JOB {job} ON localhost CANCELLED AT" in text, text
    assert os.stat(out).st_uid == user.pw_uid
    left = subprocess.run(["pgrep", "-u", str(user.pw_uid)], capture_output=True, text=True)
    assert left.stdout.strip() == "", left.stdout


def test_root_never_writes_or_reads_through_what_a_jobs_user_left(tmp_path: Path) -> None:
    """The job's directory is its user's while it runs: slurmstepd's lines go
    only into a regular file of that user's, and once the job has ended the
    directory is the agent's again with the user's symlinks (where output
    and results are read as root) gone."""
    if os.geteuid() != 0:
        pytest.skip("needs root (a privileged agent)")
    from fleetslurm.node.agent.fsio import append_line, inline_output, take_back

    nobody = pwd.getpwnam("nobody")
    secret = tmp_path / "secret"
    secret.write_text("root only\n")
    jobdir = tmp_path / "jobs" / "1.0.x"
    (jobdir / "stage").mkdir(parents=True)
    for d in (jobdir, jobdir / "stage"):
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
    (jobdir / "stdout.txt").symlink_to(secret)
    (jobdir / "stage" / "result.pkl").symlink_to(secret)
    mine = jobdir / "stderr.txt"
    mine.write_text("")
    os.chown(mine, nobody.pw_uid, nobody.pw_gid)

    append_line(str(jobdir / "stdout.txt"), "note\n", nobody.pw_uid)  # a link: no
    append_line(str(secret), "note\n", nobody.pw_uid)                 # root's file: no
    append_line(str(mine), "note\n", nobody.pw_uid)                   # theirs: yes
    assert secret.read_text() == "root only\n" and mine.read_text() == "note\n"
    # inline output never follows the link
    out = inline_output(str(jobdir / "stdout.txt"), str(mine), 1 << 20)
    assert out is not None and out["stdout"] == ""

    take_back(str(jobdir), str(tmp_path))
    assert os.stat(jobdir).st_uid == 0 and os.stat(jobdir / "stage").st_uid == 0
    assert not os.path.lexists(jobdir / "stdout.txt")
    assert not os.path.lexists(jobdir / "stage" / "result.pkl")
    assert mine.read_text() == "note\n" and secret.read_text() == "root only\n"


def test_an_agent_that_is_not_root_runs_the_job_as_itself(other_user) -> None:
    """Personal mode (or a non-root ssh_user): the user name changes nothing."""
    base = {"script": "#!/bin/sh\n", "node": "m7"}
    r, w = os.pipe()

    def body() -> None:
        spec = validate_spec(dict(base, user="nosuchfsluser"))
        os.write(w, repr((spec["uid"], spec["gid"], spec["user"])).encode())

    pid = fork_as(other_user, body)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        assert f.read() == "(None, None, None)"

"""Commands inside a lab user's job on an SSH machine act as that user, and
only as that user (issue 14 item 3): the controller takes the job's owner
from the run it launched there, never from the request, so a job cannot
cancel another user's job through its socket; what it submits is its
owner's."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from second_user import other_user, run_as  # noqa: E402,F401  (fixture)

REPO = str(Path(__file__).resolve().parents[1])
PY = sys.executable


def test_a_lab_users_job_acts_as_its_user_and_no_one_else(
        sshd_fleet, make_config, other_user) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv")
    (m1,) = sshd_fleet(1)
    files = make_config([m1], heartbeat_interval=0.5, kill_wait=2)
    root = Path(tempfile.mkdtemp(prefix="fsl-lab-", dir="/tmp"))
    os.chmod(root, 0o755)
    work = Path(tempfile.mkdtemp(prefix="fsl-shared-", dir="/tmp"))
    os.chmod(work, 0o1777)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": REPO,
           "FLEETSLURM_LAB_ROOT": str(root), "LANG": "C.UTF-8"}
    state = root / "var/lib/fleetslurm"

    def fs(*args: str, user=None) -> subprocess.CompletedProcess:
        argv = [PY, "-m", "fleetslurm", *args]
        if user is None:
            return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=work,
                                  timeout=90)
        return run_as(user, argv, dict(env, HOME=user.pw_dir), str(work), timeout=90)

    def sacct(job: str, field: str) -> str:
        return fs("sacct", "-a", "-X", "-n", "-P", "-j", job, "-o", field).stdout.strip()

    def wait(job: str) -> str:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            st = sacct(job, "State")
            if st and st not in ("PENDING", "RUNNING", "COMPLETING"):
                return st
            time.sleep(0.3)
        raise AssertionError(f"job {job} did not end")

    root_job = None
    try:
        init = fs("lab", "init", "--config", str(files.path), "--service-user", "root")
        assert init.returncode == 0, init.stderr
        shutil.copy(files.known_hosts, state / "known_hosts")
        start = fs("lab", "start")
        assert start.returncode == 0, start.stderr
        user = other_user
        roots = fs("sbatch", "--parsable", "-o", "/dev/null", "--wrap", "sleep 300")
        assert roots.returncode == 0, roots.stderr
        root_job = roots.stdout.strip()
        script = work / "inside.sh"
        script.write_text(f"""#!/bin/sh
scontrol show job $SLURM_JOB_ID | grep -o 'UserId=[^ ]*'
child=$(sbatch --parsable -o /dev/null --wrap true); echo "child rc=$? id=$child"
scancel {root_job}; echo "scancel rc=$?"
scontrol hold {root_job}; echo "hold rc=$?"
echo "$FLEETSLURM_CONTROLLER" > {work}/socket-$SLURM_JOB_ID
i=0; while [ ! -e {work}/go-$SLURM_JOB_ID ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
""")
        os.chmod(script, 0o755)
        mine = fs("sbatch", "--parsable", "-o", "inside-%j.out", str(script), user=user)
        assert mine.returncode == 0, mine.stderr
        job = mine.stdout.strip()
        # another local user (root here: only SO_PEERCRED stops it) gets the
        # job's socket refused, and nothing reaches the controller
        sock_file = work / f"socket-{job}"
        deadline = time.monotonic() + 60
        while not (sock_file.exists() and sock_file.read_text().endswith("\n")):
            assert time.monotonic() < deadline, "the job did not say where its socket is"
            time.sleep(0.1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(sock_file.read_text().strip())
            s.sendall(json.dumps({"op": "cancel", "args": {"ids": [root_job]}}).encode()
                      + b"\n")
            refused = json.loads(s.makefile("rb").readline())
        assert refused["ok"] is False and refused["error"] == "AccessDenied", refused
        (work / f"go-{job}").touch()
        assert wait(job) == "COMPLETED"
        out = (work / f"inside-{job}.out").read_text()
        lines = out.splitlines()
        assert lines[0] == f"UserId={user.pw_name}({user.pw_uid})", out
        child = lines[1].removeprefix("child rc=0 id=")
        assert child.isdigit(), out
        assert wait(child) == "COMPLETED" and sacct(child, "User") == user.pw_name
        # what the user is told on the head, word for word, and nothing done
        on_head = fs("scancel", root_job, user=user)
        hold_on_head = fs("scontrol", "hold", root_job, user=user)
        assert on_head.returncode == 1 and hold_on_head.returncode == 1
        assert lines[2:] == [*on_head.stderr.splitlines(), "scancel rc=1",
                             *hold_on_head.stderr.splitlines(), "hold rc=1"], out
        assert sacct(root_job, "State") == "RUNNING"
        show = fs("scontrol", "show", "job", root_job).stdout
        assert "JobState=RUNNING" in show and "Priority=0" not in show
    finally:
        if root_job is not None:
            fs("scancel", root_job)
        fs("lab", "stop")
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

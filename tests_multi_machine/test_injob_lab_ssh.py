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
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from second_user import other_user  # noqa: E402,F401  (fixture)

from .ssh_lab import SshLab  # noqa: E402


def test_a_lab_users_job_acts_as_its_user_and_no_one_else(
        sshd_fleet, make_config, other_user) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv")
    (m1,) = sshd_fleet(1)
    files = make_config([m1], heartbeat_interval=0.5, kill_wait=2)
    lab = SshLab(files, "/usr/bin:/bin")
    fs, wait, sacct, work = lab.fs, lab.wait, lab.sacct, lab.work
    root_job = None
    try:
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
        lab.close()

"""Issue 12 items 4 and 5 over SSH: a lab controller (run by root) reaches a
machine as root; a user's job runs there as that user, and its output comes
home written as that user; an ``--output`` the user may not write is not
written, and the controller's log says why."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from second_user import other_user  # noqa: E402,F401  (fixture)

from .ssh_lab import SshLab  # noqa: E402


def test_a_lab_job_on_an_ssh_machine_runs_and_writes_home_as_its_user(
        sshd_fleet, make_config, other_user) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv")
    (m1,) = sshd_fleet(1)
    files = make_config([m1], heartbeat_interval=0.5, kill_wait=2)
    lab = SshLab(files, os.environ.get("PATH", "/usr/bin:/bin"))
    fs, wait, work, state = lab.fs, lab.wait, lab.work, lab.state
    try:
        user = other_user
        groups = subprocess.run(["id", "-G", user.pw_name], capture_output=True, text=True,
                                check=True).stdout.split()
        # small output (home with the `ended` event) and large (copied over SFTP)
        small = fs("sbatch", "--parsable", "-o", "small-%j.out", "--wrap",
                   "id -u; id -g; id -G; echo $HOME $USER", user=user)
        big = fs("sbatch", "--parsable", "-o", "big-%j.out", "--wrap",
                 "id -u; head -c 400000 /dev/zero | tr '\\0' x", user=user)
        secret = work / "root-only"
        secret.write_text("root's\n")
        os.chmod(secret, 0o600)
        denied = fs("sbatch", "--parsable", "-o", str(secret), "--wrap", "echo overwritten",
                    user=user)
        for p in (small, big, denied):
            assert p.returncode == 0, p.stderr
        small_id, big_id, denied_id = (p.stdout.strip() for p in (small, big, denied))
        assert wait(small_id) == "COMPLETED"
        assert wait(big_id) == "COMPLETED"
        wait(denied_id)
        out = work / f"small-{small_id}.out"
        lines = out.read_text().splitlines()
        assert lines[0] == str(user.pw_uid) and lines[1] == str(user.pw_gid), lines
        assert sorted(lines[2].split()) == sorted(groups), lines
        assert lines[3] == f"{user.pw_dir} {user.pw_name}", lines
        big_out = work / f"big-{big_id}.out"
        assert big_out.read_text().splitlines()[0] == str(user.pw_uid)
        for path in (out, big_out):
            assert os.stat(path).st_uid == user.pw_uid, path
        # the root-only file: untouched, and the log names it
        assert secret.read_text() == "root's\n" and os.stat(secret).st_uid == 0
        log = (state / "controller.log").read_text()
        assert f"job {denied_id}: its output could not be written on this host" in log, log
        assert f"Permission denied: '{secret}'" in log, log
        # the spool of another user's jobs: their own, private
        spool = state / "output" / f"u{user.pw_uid}"
        assert spool.is_dir() and (os.stat(spool).st_mode & 0o777) == 0o700
    finally:
        lab.close()

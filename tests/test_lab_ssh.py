"""``FLEETSLURM_CONTROLLER=ssh://head`` (issue 12): a user on another
"workstation" reaches the lab's controller through their own ssh (key,
``~/.ssh/config``) and ``fleetslurm lab bridge`` on the head; the controller
knows them as their ssh login (SO_PEERCRED of the bridge).

A real sshd on a loopback address plays the head (tests_multi_machine's
Machine), a real second Unix user the workstation's user, the lab's
controller runs under a service account created by ``fleetslurm lab init``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from second_user import other_user, run_as  # noqa: E402,F401  (fixture)
from test_lab import REPO, Lab, lab, second_user  # noqa: E402,F401  (fixtures)

from tests_multi_machine.sshd_machines import Machine, keygen  # noqa: E402


@pytest.fixture
def head(lab: Lab):
    if not os.path.exists("/usr/sbin/sshd") or not shutil.which("ssh"):
        pytest.skip("needs OpenSSH's sshd and ssh")
    key = lab.root / "ws_key"
    keygen(key, "workstation")
    m = Machine("head", 9, lab.root / "head", key)
    m.start()
    try:
        yield m
    finally:
        m.kill(jobs=True)


def _workstation_ssh(user: pwd.struct_passwd, head: Machine, key: Path) -> None:
    """The user's own ssh setup: a key and a Host entry in ~/.ssh/config."""
    # useradd leaves the account locked ("!"), which sshd refuses even for keys
    subprocess.run(["usermod", "-p", "*", user.pw_name], check=True, capture_output=True)
    ssh = Path(user.pw_dir) / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    shutil.copyfile(key, ssh / "id_lab")
    (ssh / "known_hosts").write_text(head.known_hosts_line + "\n")
    (ssh / "config").write_text(
        f"Host head\n  HostName {head.address}\n  Port {head.port}\n"
        f"  IdentityFile {ssh / 'id_lab'}\n  StrictHostKeyChecking yes\n"
        f"  UserKnownHostsFile {ssh / 'known_hosts'}\n")
    for p in (ssh, ssh / "id_lab", ssh / "known_hosts", ssh / "config"):
        os.chown(p, user.pw_uid, user.pw_gid)
        os.chmod(p, 0o700 if p == ssh else 0o600)


def test_a_workstation_user_submits_queries_tails_and_cancels_over_ssh(
        lab: Lab, head: Machine, other_user, second_user) -> None:
    lab.start()
    _workstation_ssh(other_user, head, lab.root / "ws_key")
    # on the head fleetslurm is this checkout, run by the system's python3
    # (the bridge is standard library only)
    bridge = (f"env PYTHONPATH={REPO} FLEETSLURM_LAB_ROOT={lab.root} "
              "/usr/bin/python3 -m fleetslurm lab bridge")
    # the workstation has no lab of its own: the empty root
    ws = lab.root / "ws-root"
    ws.mkdir()
    env = dict(lab.env, FLEETSLURM_LAB_ROOT=str(ws), FLEETSLURM_CONTROLLER="ssh://head",
               FLEETSLURM_REMOTE_COMMAND=bridge)

    (lab.work / "remote.sh").write_text("#!/bin/sh\necho hello from $SLURM_JOB_ID "
                                        "$GREETING\nsleep 1\necho bye\n")
    os.chmod(lab.work / "remote.sh", 0o644)
    sub = lab.fs("sbatch", "--parsable", "--export=ALL", "-o", "remote-%j.out", "remote.sh",
                 user=other_user, env=dict(env, GREETING="howdy"))
    assert sub.returncode == 0, sub.stderr
    job = sub.stdout.strip()

    # squeue through ssh: the job is the ssh login's
    q = lab.fs("squeue", "-h", "-o", "%i %u", "--states=all", user=other_user, env=env)
    assert q.returncode == 0, q.stderr
    assert f"{job} {other_user.pw_name}" in q.stdout.splitlines()
    # and a local user on the head sees it too
    local = lab.fs("squeue", "-h", "-o", "%i %u", "--states=all", user=second_user)
    assert f"{job} {other_user.pw_name}" in local.stdout.splitlines(), local.stderr

    # tail -f streams it to the end, through one ssh connection
    t = lab.fs("tail", "-f", job, user=other_user, env=env, timeout=90)
    assert t.returncode == 0, t.stderr
    assert t.stdout == f"hello from {job} howdy\nbye\n"

    # a held job cancelled from the workstation
    held = lab.fs("sbatch", "--parsable", "--hold", "-o", "/dev/null", "remote.sh",
                  user=other_user, env=env)
    assert held.returncode == 0, held.stderr
    hid = held.stdout.strip()
    # another user on the head may not cancel it
    no = lab.fs("scancel", hid, user=second_user)
    assert no.returncode == 1 and "Access/permission denied" in no.stderr
    c = lab.fs("scancel", hid, user=other_user, env=env)
    assert c.returncode == 0, c.stderr
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        st = lab.fs("sacct", "-n", "-X", "-P", "-j", hid, "-o", "State", user=other_user,
                    env=env)
        if st.stdout.strip().startswith("CANCELLED"):
            break
        time.sleep(0.3)
    assert st.stdout.strip().startswith("CANCELLED"), st.stdout + st.stderr


def test_ssh_failure_is_an_error_with_ssh_s_words(lab: Lab, head: Machine, other_user) -> None:
    # no key set up for this user: ssh must not prompt, and says why it failed
    env = dict(lab.env, FLEETSLURM_LAB_ROOT=str(lab.root / "nowhere"),
               FLEETSLURM_CONTROLLER=f"ssh://{head.address}:{head.port}")
    proc = lab.fs("squeue", user=other_user, env=env, timeout=60)
    assert proc.returncode == 1
    assert "the connection through `" in proc.stderr and "BatchMode=yes" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_bridge_with_the_lab_down_says_so(lab: Lab, head: Machine, other_user) -> None:
    _workstation_ssh(other_user, head, lab.root / "ws_key")
    bridge = (f"env PYTHONPATH={REPO} FLEETSLURM_LAB_ROOT={lab.root} "
              "/usr/bin/python3 -m fleetslurm lab bridge")
    env = dict(lab.env, FLEETSLURM_LAB_ROOT=str(lab.root / "nowhere"),
               FLEETSLURM_CONTROLLER="ssh://head", FLEETSLURM_REMOTE_COMMAND=bridge)
    proc = lab.fs("squeue", user=other_user, env=env, timeout=60)
    assert proc.returncode == 1
    assert "fleetslurm lab bridge on" in proc.stderr
    assert "the lab's controller does not answer" in proc.stderr

"""A real second Unix user for tests of what one user must not do to another.

``other_user`` (a pytest fixture, registered by the test modules that import
it) creates the user with ``useradd`` and removes it with ``userdel -r``;
needs root. :func:`run_as` runs a command as that user (:func:`prefix_as`
gives the words that do it, for a process left running); :func:`fork_as` runs
a stdlib-only function as that user in a forked child of the test process.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

__all__ = ["other_user", "run_as", "prefix_as", "fork_as", "shared_tmp"]


@pytest.fixture
def other_user() -> Iterator[pwd.struct_passwd]:
    """A fresh user with a home directory; removed after the test."""
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("setpriv"):
        pytest.skip("needs root, useradd and setpriv")
    name = f"fsl{uuid.uuid4().hex[:10]}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True,
                   capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", "-r", name], capture_output=True)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory under /tmp that every user can enter (pytest's tmp_path is
    in root's private /tmp/pytest-of-root)."""
    path = Path(tempfile.mkdtemp(prefix="fsl-shared-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# This Python may live where other users cannot go (/root is 0700 here): in a
# private mount namespace, /root becomes a 0755 tmpfs with each of its entries
# bound back, each with its own mode; nothing changes outside the namespace.
_OPEN_ROOT = r'''
set -e
orig=$1; user=$2; shift 2
mount --bind /root "$orig"
mount -t tmpfs -o mode=755 tmpfs /root
for e in "$orig"/.[!.]* "$orig"/*; do
    [ -e "$e" ] || continue
    n=/root/$(basename "$e")
    if [ -d "$e" ]; then mkdir "$n"; else touch "$n"; fi
    mount --bind "$e" "$n"
done
exec setpriv --reuid="$user" --regid="$user" --init-groups "$@"
'''


@contextlib.contextmanager
def prefix_as(user: pwd.struct_passwd, env: dict[str, str], cwd: str) -> Iterator[list[str]]:
    """The words to put before a command line to run it as ``user`` (a real
    process with the user's uid, gid and groups), with this Python reachable;
    for a process that outlives one call (:func:`run_as` waits for its own).
    Whatever they run must have ended when the block is left."""
    direct = ["setpriv", f"--reuid={user.pw_name}", f"--regid={user.pw_name}",
              "--init-groups"]
    probe = subprocess.run([*direct, sys.executable, "-c", "import fleetslurm, pydantic"],
                           capture_output=True, env=env, cwd=cwd)
    if probe.returncode == 0:
        yield direct
        return
    orig = tempfile.mkdtemp(prefix="fsl-root-")
    try:
        # unshare execs (no fork): the command's pid is the one started
        yield ["unshare", "-m", "bash", "-c", _OPEN_ROOT, "_", orig, user.pw_name]
    finally:
        os.rmdir(orig)


def run_as(user: pwd.struct_passwd, argv: list[str], env: dict[str, str], cwd: str,
           timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``argv`` as ``user`` (a real process with the user's uid, gid and
    groups), with this Python reachable."""
    with prefix_as(user, env, cwd) as prefix:
        proc = subprocess.run([*prefix, *argv], capture_output=True, text=True, env=env,
                              cwd=cwd, timeout=timeout)
        if (prefix[0] == "unshare" and proc.returncode != 0 and "unshare" in proc.stderr
                and "mount" not in argv):
            pytest.skip(f"cannot run this Python as another user here: {proc.stderr.strip()}")
        return proc


def fork_as(user: pwd.struct_passwd, body: Callable[[], None]) -> int:
    """Fork; the child becomes ``user`` and runs ``body`` (stdlib only: the
    child may not read this Python's files), then exits. Returns the pid."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            body()
        finally:
            os._exit(0)
    return pid

"""The control socket answers only for its owner (issue 10, case 4).

With a FLEETSLURM_HOME too long for sun_path the socket lives in the
predictable /tmp/fleetslurm-<uid>-<hash>/. A real second user pre-creates
that directory with a listener ready to answer "Submitted batch job 31337":
root's sbatch must refuse, naming the path, the owner and the way out, and
send it nothing (not one byte: the request carries the whole environment)."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fleetslurm.errors import StoreError
from fleetslurm.paths import StatePaths
from second_user import fork_as, other_user, shared_tmp  # noqa: F401  (fixtures)


class FakeController:
    """A listener run by another user at ``sock``: it answers any request as
    a controller would ("job 31337") and counts the bytes it received."""

    def __init__(self, user, sock: Path, dir_mode: int = 0o777,
                 make_dir: bool = True) -> None:
        self.sock = sock
        ready_r, ready_w = os.pipe()
        self._stop_r, self._stop_w = os.pipe()
        self._count_r, count_w = os.pipe()

        def body() -> None:
            os.close(self._stop_w)  # the parent's closing it is the stop signal
            if make_dir:
                os.mkdir(sock.parent)
                os.chmod(sock.parent, dir_mode)
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            srv.bind(str(sock))
            os.chmod(sock, 0o777)
            srv.listen(8)
            os.write(ready_w, b"r")
            got = 0
            conns = []
            while True:
                ready, _, _ = select.select([srv, self._stop_r, *conns], [], [], 30)
                if not ready or self._stop_r in ready:
                    break
                for r in ready:
                    if r is srv:
                        conns.append(srv.accept()[0])
                        continue
                    data = r.recv(1 << 20)
                    got += len(data)
                    if data:
                        r.sendall(json.dumps({"ok": True, "result": {
                            "job_id": 31337, "cluster": "evil"}}).encode() + b"\n")
                    else:
                        conns.remove(r)
            os.write(count_w, str(got).encode())

        self.pid = fork_as(user, body)
        os.close(ready_w)
        os.close(count_w)
        assert os.read(ready_r, 1) == b"r", "the fake controller did not start"
        os.close(ready_r)

    def received(self) -> int:
        """Stop the listener; the bytes it was sent."""
        os.close(self._stop_w)
        with os.fdopen(self._count_r, "rb") as f:
            count = int(f.read() or b"-1")
        os.waitpid(self.pid, 0)
        os.close(self._stop_r)
        return count


def _long_home(base: Path) -> Path:
    home = base / ("h" * 100)
    paths = StatePaths(home)
    assert paths.socket.parent.parent == Path("/tmp"), "the fallback is what is tested"
    shutil.rmtree(paths.socket.parent, ignore_errors=True)
    return home


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    env.update(FLEETSLURM_HOME=str(home), SECRET_TOKEN="s3cr3t-token-of-root")
    env.pop("FLEETSLURM_CONFIG", None)
    return env


def _cli(home: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", *args],
                          capture_output=True, text=True, env=_env(home), cwd=str(cwd),
                          timeout=60)


@pytest.mark.parametrize("dir_mode", [0o777, 0o700])
def test_sbatch_refuses_another_users_socket_and_sends_nothing(other_user, tmp_path, dir_mode):
    home = _long_home(tmp_path)
    sock = StatePaths(home).socket
    fake = FakeController(other_user, sock, dir_mode)
    try:
        proc = _cli(home, tmp_path, "sbatch", "--wrap", "true")
    finally:
        got = fake.received()
        shutil.rmtree(sock.parent, ignore_errors=True)
    assert got == 0, "the request reached another user's listener"
    assert proc.returncode == 1 and proc.stdout == "", proc
    assert "31337" not in proc.stdout + proc.stderr
    assert proc.stderr == (
        f"sbatch: error: {sock.parent} belongs to another user ({other_user.pw_name}, uid "
        f"{other_user.pw_uid}), not to you (root, uid 0): fleetslurm keeps its state and its "
        f"control socket only in a directory of your own; remove it (`rm -rf {sock.parent}` "
        "as root) or use a FLEETSLURM_HOME of at most 91 bytes, so that the socket lives "
        "inside it\n")
    # nothing was started: no controller of root's took the foreign directory
    assert not (home / "controller.pid").exists() or not (home / "controller.pid").read_text()


def test_other_commands_refuse_it_too(other_user, tmp_path):
    """Not "no controller running" either: controller status/stop say why."""
    home = _long_home(tmp_path)
    sock = StatePaths(home).socket
    fake = FakeController(other_user, sock)
    try:
        results = [_cli(home, tmp_path, *cmd) for cmd in (
            ["squeue"], ["scancel", "5"], ["controller", "status"], ["controller", "stop"])]
    finally:
        got = fake.received()
        shutil.rmtree(sock.parent, ignore_errors=True)
    assert got == 0
    for proc in results:
        assert proc.returncode == 1 and proc.stdout == "", proc
        assert f"{sock.parent} belongs to another user ({other_user.pw_name}" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_the_controller_refuses_a_foreign_socket_directory(other_user, tmp_path):
    """The controller does not bind into (or unlink from) a directory another
    user made; the other user's listener stays untouched and unused."""
    home = _long_home(tmp_path)
    sock = StatePaths(home).socket
    fake = FakeController(other_user, sock, 0o777)
    try:
        proc = subprocess.run([sys.executable, "-m", "fleetslurm.daemon"],
                              capture_output=True, text=True, env=_env(home), timeout=60)
        still_there = sock.exists()
    finally:
        got = fake.received()
        shutil.rmtree(sock.parent, ignore_errors=True)
        pid = (home / "controller.pid").read_text().strip() if (
            home / "controller.pid").exists() else ""
        if pid:  # wrongly started: do not leave it running
            os.kill(int(pid), signal.SIGKILL)
    assert proc.returncode == 1, proc
    assert proc.stderr.startswith(f"error: {sock.parent} belongs to another user "
                                  f"({other_user.pw_name}"), proc.stderr
    assert still_there and got == 0


def test_the_fallback_directory_is_made_private(tmp_path):
    """Without anyone in the way, the controller makes the fallback directory
    itself, 0700 and root's, and the commands work through it."""
    home = _long_home(tmp_path)
    sock = StatePaths(home).socket
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"machines": {"m1": {"transport": "local", "cpus": 1,
                                                    "memory_gb": 1}}}))
    env = _env(home)
    env["FLEETSLURM_CONFIG"] = str(cfg)
    try:
        proc = subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", "squeue", "-h"],
                              capture_output=True, text=True, env=env, cwd=str(tmp_path),
                              timeout=60)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
        st = os.lstat(sock.parent)
        assert (st.st_uid, st.st_mode & 0o777) == (0, 0o700)
    finally:
        subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", "controller", "stop"],
                       capture_output=True, env=env, timeout=60)
        shutil.rmtree(sock.parent, ignore_errors=True)


def test_a_listener_swapped_in_after_the_check_is_refused(other_user, shared_tmp):
    """The directory and the socket file look right (root's), but the process
    listening is another user's (the socket was moved in and chowned, as a
    race between the check and the connect could give): SO_PEERCRED says
    who listens, and the client refuses before sending anything."""
    from fleetslurm.rpc import connect

    home = shared_tmp / "home"
    home.mkdir(mode=0o700)
    staging = shared_tmp / "staging"
    staging.mkdir()
    os.chmod(staging, 0o777)
    fake = FakeController(other_user, staging / "s.sock", make_dir=False)
    try:
        os.rename(staging / "s.sock", home / "ctl.sock")
        os.chown(home / "ctl.sock", 0, 0)
        with pytest.raises(StoreError) as err:
            connect(StatePaths(home))
    finally:
        got = fake.received()
    assert got == 0
    assert str(err.value).startswith(f"{home / 'ctl.sock'}: the process listening there "
                                     f"(pid {fake.pid}) runs as uid {other_user.pw_uid}")

"""SSHTransport against real sshd "machines" on loopback.

The transport contract (tests/test_transport_contract.py) runs here too, then
what only SSH has: host keys, authentication, unreachable machines, a missing
python, agent refresh, hostile workdirs, dropped links, ~/.ssh/config.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

import fleetslurm.transport.ssh as ssh_mod
from fleetslurm.errors import (AuthenticationFailed, HostKeyError, NodeUnreachable,
                               TransportError)
from fleetslurm.transport.ssh import SSHTransport
from .sshd_machines import free_port, keygen

_spec = importlib.util.spec_from_file_location(
    "fleetslurm_transport_contract",
    Path(__file__).resolve().parent.parent / "tests" / "test_transport_contract.py")
contract = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(contract)  # type: ignore[union-attr]
hello, Reader = contract.hello, contract.Reader

pytestmark = pytest.mark.usefixtures("ssh_home")


def ssh(fleet, name: str, **update) -> SSHTransport:
    cfg = fleet.config
    if update:
        cfg = cfg.model_copy(update=update)
    return SSHTransport(name, cfg.machines[name], cfg, fleet.paths)


@pytest.fixture
def m1_fleet(sshd_fleet, make_config):
    (m1,) = sshd_fleet(1)
    return m1, make_config([m1])


class TestSSHContract(contract.TransportContract):
    @pytest.fixture
    def transport(self, m1_fleet) -> Iterator[SSHTransport]:
        t = ssh(m1_fleet[1], "m1")
        yield t
        t.close()


# -- host keys ---------------------------------------------------------------------
def test_unknown_host_key_is_refused_with_the_trust_hint(sshd_fleet, make_config):
    (m1,) = sshd_fleet(1)
    fleet = make_config([m1], known_hosts=False)
    with pytest.raises(HostKeyError) as err:
        ssh(fleet, "m1").start_agent()
    msg = str(err.value)
    assert f"node m1 ({m1.address}:{m1.port}): unknown host key ssh-ed25519 SHA256:" in msg
    assert 'run "fleetslurm nodes trust m1" to check and record it' in msg
    assert err.value.node == "m1"
    assert not fleet.known_hosts.exists()


def test_accept_new_records_the_key(sshd_fleet, make_config):
    (m1,) = sshd_fleet(1)
    fleet = make_config([m1], known_hosts=False, host_key_policy="accept-new")
    t = ssh(fleet, "m1")
    t.start_agent().close()
    t.close()
    assert fleet.known_hosts.read_text() == m1.known_hosts_line + "\n"
    # recorded once: from now on even "reject" knows it
    t = ssh(fleet, "m1", host_key_policy="reject")
    t.start_agent().close()
    t.close()
    assert fleet.known_hosts.read_text().count("\n") == 1


@pytest.mark.parametrize("policy", ["reject", "accept-new"])
def test_changed_host_key_is_always_refused(sshd_fleet, make_config, policy):
    (m1,) = sshd_fleet(1)
    fleet = make_config([m1], host_key_policy=policy)
    before = fleet.known_hosts.read_text()
    m1.rekey()
    with pytest.raises(HostKeyError) as err:
        ssh(fleet, "m1").start_agent()
    msg = str(err.value)
    assert f"host key for node m1 ({m1.address}:{m1.port}) has CHANGED" in msg
    assert "possible man-in-the-middle" in msg
    assert f"remove the old key from {fleet.known_hosts}" in msg
    assert "fleetslurm nodes trust m1" in msg
    assert fleet.known_hosts.read_text() == before


# -- authentication and reachability -------------------------------------------------
def test_wrong_user_fails_authentication_with_the_fix(sshd_fleet, make_config):
    (m1,) = sshd_fleet(1)
    fleet = make_config([m1], overrides={"m1": {"ssh_user": "nosuchuser"}})
    with pytest.raises(AuthenticationFailed) as err:
        ssh(fleet, "m1").start_agent()
    msg = str(err.value)
    assert "authentication failed for user nosuchuser" in msg
    assert "check ssh_user and ssh_key_path" in msg and "authorized_keys" in msg


def test_wrong_or_missing_key_fails_authentication(sshd_fleet, make_config, tmp_path):
    (m1,) = sshd_fleet(1)
    other = tmp_path / "other_key"
    keygen(other, "not-authorized")
    fleet = make_config([m1], overrides={"m1": {"ssh_key_path": str(other)}})
    with pytest.raises(AuthenticationFailed, match=f"user root with key {other}"):
        ssh(fleet, "m1").start_agent()
    fleet = make_config([m1], overrides={"m1": {"ssh_key_path": str(tmp_path / "nokey")}})
    with pytest.raises(AuthenticationFailed, match="ssh_key_path .*nokey does not exist"):
        ssh(fleet, "m1").start_agent()
    garbage = tmp_path / "garbage_key"
    garbage.write_text("this is not a key\n")
    fleet = make_config([m1], overrides={"m1": {"ssh_key_path": str(garbage)}})
    with pytest.raises(AuthenticationFailed, match=f"user root with key {garbage}"):
        ssh(fleet, "m1").start_agent()


def test_closed_port_is_unreachable(sshd_fleet, make_config):
    (m1,) = sshd_fleet(1)
    port = free_port(m1.address, 0)
    fleet = make_config([m1], overrides={"m1": {"port": port}})
    started = time.monotonic()
    with pytest.raises(NodeUnreachable) as err:
        ssh(fleet, "m1").start_agent()
    assert str(err.value) == (f"node m1 ({m1.address}:{port}): connection refused; "
                              "is sshd running there and the address/port right?")
    assert time.monotonic() - started < 2


def test_a_port_without_sshd_is_unreachable(sshd_fleet, make_config):
    (m1,) = sshd_fleet(1)
    server = socket.create_server((m1.address, 0))
    port = server.getsockname()[1]

    def serve() -> None:  # accepts and hangs up: not an SSH server
        conn, _ = server.accept()
        conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    fleet = make_config([m1], overrides={"m1": {"port": port}})
    try:
        with pytest.raises(NodeUnreachable, match="SSH handshake failed.*is an SSH server"):
            ssh(fleet, "m1").start_agent()
    finally:
        server.close()


def test_missing_python_is_a_clear_error(sshd_fleet, make_config):
    (m1,) = sshd_fleet(1)
    fleet = make_config([m1], overrides={"m1": {"python": "/nonexistent/python3"}})
    with pytest.raises(TransportError) as err:
        ssh(fleet, "m1").start_agent()
    assert not isinstance(err.value, NodeUnreachable)
    msg = str(err.value)
    assert "python '/nonexistent/python3' was not found" in msg
    assert 'set "python" for machine m1' in msg


# -- the agent file and the workdir --------------------------------------------------
def test_agent_is_uploaded_once_and_refreshed_when_it_changes(sshd_fleet, make_config,
                                                             monkeypatch):
    (m1,) = sshd_fleet(1)
    workdir = m1.workdir / "fresh" / "wd"
    fleet = make_config([m1], overrides={"m1": {"workdir": str(workdir)}})
    t = ssh(fleet, "m1")
    t.start_agent().close()
    assert t.agent_uploads == 1
    first = sorted(p.name for p in workdir.glob("agent-*.pyz"))
    assert len(first) == 1 and (workdir / first[0]).stat().st_mode & 0o777 == 0o600
    assert workdir.stat().st_mode & 0o777 == 0o700  # created private, parents too
    assert workdir.parent.stat().st_mode & 0o777 == 0o700
    t.close()
    t = ssh(fleet, "m1")
    t.start_agent().close()
    assert t.agent_uploads == 0  # content-addressed: already there
    original = ssh_mod.agent_source()
    monkeypatch.setattr(ssh_mod, "agent_source", lambda: original + b"\n# changed\n")
    t.close()
    channel = t.start_agent()
    assert t.agent_uploads == 1
    now = sorted(p.name for p in workdir.glob("agent-*.pyz"))
    assert len(now) == 1 and now != first  # the stale copy is removed
    assert hello(channel)[1]["facts"]["workdir"] == str(workdir)
    channel.close()
    t.close()


def test_hostile_workdir_path(sshd_fleet, make_config):
    (m1,) = sshd_fleet(1)
    workdir = m1.root / "we ird 'q' \"d\"\n0; echo foo $(id)" / "work"
    fleet = make_config([m1], overrides={"m1": {"workdir": str(workdir)}})
    t = ssh(fleet, "m1")
    channel = t.start_agent()
    try:
        assert t.workdir == str(workdir)
        reader, msg = hello(channel)
        assert msg["facts"]["workdir"] == str(workdir)
        channel.send({"op": "launch", "id": 1, "key": "j1",
                      "spec": {"script": "#!/bin/sh\necho hi\n", "stdout": f"{workdir}/o.txt"}})
        ended = reader.wait(lambda m: m.get("ev") == "ended")
        assert ended["result"]["state"] == "COMPLETED"
        assert t.get_bytes(f"{workdir}/o.txt") == b"hi\n"
    finally:
        channel.close()
        t.close()
    assert not (m1.root / "foo").exists()


def test_tilde_workdir_is_the_remote_home(sshd_fleet, make_config):
    (m1,) = sshd_fleet(1)
    name = f".fleetslurm-test-{uuid.uuid4().hex[:8]}"
    fleet = make_config([m1], overrides={"m1": {"workdir": f"~/{name}"}})
    t = ssh(fleet, "m1")
    assert t.workdir == f"~/{name}"  # the best guess before connecting
    remote = os.path.join(pwd.getpwuid(os.getuid()).pw_dir, name)
    try:
        channel = t.start_agent()
        assert t.workdir == remote
        channel.close()
    finally:
        t.close()
        time.sleep(0.2)  # let the agent exit before its directory goes
        shutil.rmtree(remote, ignore_errors=True)


def test_full_disk_names_the_fix(sshd_fleet, make_config):
    (m1,) = sshd_fleet(1)
    small = m1.root / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        fleet = make_config([m1])
        t = ssh(fleet, "m1")
        with pytest.raises(TransportError) as err:
            t.put_bytes(b"x" * (1 << 20), f"{small}/big.bin")
        msg = str(err.value)
        assert f"node m1: cannot write {small}/big.bin" in msg
        assert "free disk space on the machine" in msg
        assert list(small.iterdir()) == []  # the temp file is gone
        t.close()
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_files_from_many_threads(m1_fleet):
    _, fleet = m1_fleet
    t = ssh(fleet, "m1")
    t.start_agent().close()
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(5):
                data = os.urandom(5000 + i * 100 + j)
                path = f"{t.workdir}/threads/{i}/{j}"
                t.put_bytes(data, path)
                assert t.get_bytes(path) == data
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    t.close()
    assert errors == []


# -- dropped links -------------------------------------------------------------------
def _launch_sleep(channel, reader, key: str) -> int:
    channel.send({"op": "launch", "id": key, "key": key,
                  "spec": {"script": "#!/bin/sh\nexec sleep 60\n"}})
    return reader.wait(lambda m: m.get("ev") == "started" and m["key"] == key)["pid"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_killed_machine_ends_the_channel_promptly_and_reconnects(m1_fleet):
    m1, fleet = m1_fleet
    t = ssh(fleet, "m1")
    channel = t.start_agent()
    reader, _ = hello(channel)
    pid = _launch_sleep(channel, reader, "s1")
    started = time.monotonic()
    m1.kill()
    end = reader.end(timeout=5)
    assert end is None or isinstance(end, NodeUnreachable)
    assert time.monotonic() - started < 5
    assert not _alive(pid)  # the machine "died": its jobs too
    with pytest.raises(NodeUnreachable):
        channel.send({"op": "status"})
    with pytest.raises(NodeUnreachable, match="connection refused"):
        t.start_agent()
    m1.start()
    channel = t.start_agent()  # a fresh connection; same host key
    _, msg = hello(channel)
    assert msg["facts"]["workdir"] == str(m1.workdir)
    channel.close()
    t.close()


def test_jobs_survive_a_dropped_link(m1_fleet):
    m1, fleet = m1_fleet
    t = ssh(fleet, "m1")
    channel = t.start_agent()
    reader, _ = hello(channel)
    pid = _launch_sleep(channel, reader, "s2")
    m1.kill(jobs=False)  # sshd and the agent die, the network "drops"
    end = reader.end(timeout=5)
    assert end is None or isinstance(end, NodeUnreachable)
    assert _alive(pid)
    m1.start()
    channel = t.start_agent()
    _, msg = hello(channel)
    jobs = {j["key"]: j for j in msg["jobs"]}
    assert jobs["s2"]["status"] == "running" and jobs["s2"]["pid"] == pid
    channel.close()
    t.close()


# -- ~/.ssh/config -----------------------------------------------------------------
def test_ssh_config_alias_and_proxyjump(sshd_fleet, make_config, ssh_home, client_key):
    m1, m2 = sshd_fleet(2)
    (ssh_home / ".ssh").mkdir(mode=0o700)
    (ssh_home / ".ssh" / "config").write_text(
        f"Host direct\n  HostName {m2.address}\n  Port {m2.port}\n  User root\n"
        f"  IdentityFile {client_key}\n\n"
        f"Host viajump\n  HostName {m2.address}\n  Port {m2.port}\n  User root\n"
        f"  IdentityFile {client_key}\n  ProxyJump root@{m1.address}:{m1.port}\n")
    for alias in ("direct", "viajump"):
        fleet = make_config([m2], overrides={"m2": {"hostname": alias, "ip": None,
                                                    "ssh_user": None, "ssh_key_path": None}})
        entry = fleet.data["machines"]["m2"]
        del entry["port"]  # the port comes from ~/.ssh/config
        fleet.path.write_text(json.dumps(fleet.data))
        kh = fleet.known_hosts
        kh.write_text(m1.known_hosts_line + "\n" + m2.known_hosts_line + "\n")
        t = ssh(fleet, "m2")
        channel = t.start_agent()
        assert hello(channel)[1]["facts"]["workdir"] == str(m2.workdir)
        assert len(t._clients) == (2 if alias == "viajump" else 1)
        channel.close()
        t.close()
    kh.write_text(m2.known_hosts_line + "\n")  # the jump host's key is unknown now
    with pytest.raises(HostKeyError, match=f"jump host {m1.address}:{m1.port} of node m2"):
        ssh(fleet, "m2").start_agent()


# -- the fixture itself ----------------------------------------------------------------
def test_each_sshd_listens_only_on_its_own_address(sshd_fleet):
    machines = sshd_fleet(4)
    assert len({m.address for m in machines}) == 4 and len({m.port for m in machines}) == 4
    for m in machines:
        with socket.create_connection((m.address, m.port), timeout=2) as conn:
            assert conn.recv(64).startswith(b"SSH-2.0-")
        for other in ["127.0.0.1"] + [o.address for o in machines if o is not m]:
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((other, m.port), timeout=2)

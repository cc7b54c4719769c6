"""``fleetslurm nodes check`` / ``nodes trust`` against the sshd machines."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time

import pytest

from fleetslurm.cli.nodes_cmd import check, trust, trust_many
from fleetslurm.transport.ssh import SSHTransport
from .sshd_machines import keygen

pytestmark = pytest.mark.usefixtures("ssh_home")


def run_check(fleet, **kw) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = check(fleet.config, fleet.paths, out=out, **kw)
    return code, out.getvalue().splitlines()


def block(lines: list[str], name: str) -> str:
    """The machine's line and its indented notes."""
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{name} "))
    end = start + 1
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    return "\n".join(lines[start:end])


def test_check_all_machines_ok(sshd_fleet, make_config):
    machines = sshd_fleet(4)
    fleet = make_config(machines)
    code, lines = run_check(fleet)
    assert code == 0, "\n".join(lines)
    assert lines[-1] == "4 of 4 machines OK"
    for m in machines:
        text = block(lines, m.name)
        assert text.startswith(f"{m.name}  OK    root@{m.address}:{m.port}  reachable yes, "
                               "authenticated yes, python 3."), text
        assert f"workdir {m.workdir} writable" in text and "GB free" in text
    m3 = block(lines, "m3")
    assert "cpus 8 (detected " in m3 and "gpus 2 (detected 0)" in m3
    assert "note: declares gpus 2 but 0 detected; the scheduler uses the declared value" in m3
    assert "memory 16.0 GB (detected " in m3


def test_check_reports_each_failure_with_its_fix(sshd_fleet, make_config, tmp_path):
    m1, m2, m3, m4 = sshd_fleet(4)
    wrong = tmp_path / "wrong_key"
    keygen(wrong, "wrong")
    # m4 accepts TCP but never speaks SSH: it must not stall the others
    silent = socket.create_server((m4.address, 0))
    fleet = make_config([m1, m2, m3, m4], known_hosts=[m1, m2, m4], overrides={
        "m2": {"python": "/nonexistent/python3"},
        "m4": {"port": silent.getsockname()[1]},
    })
    fleet2 = make_config([m1, m2, m3, m4],
                         overrides={"m3": {"ssh_key_path": str(wrong)},
                                    "m2": {"python": "/nonexistent/python3"},
                                    "m4": {"port": silent.getsockname()[1]}})
    m1.kill()
    try:
        started = time.monotonic()
        code, lines = run_check(fleet, timeout=2)
        elapsed = time.monotonic() - started
        code2, lines2 = run_check(fleet2, timeout=2)
    finally:
        silent.close()
    assert code == 1 and code2 == 1
    assert elapsed < 5
    assert lines[-1] == "0 of 4 machines OK"
    assert "reachable NO" in block(lines, "m1")
    assert "connection refused; is sshd running there" in block(lines, "m1")
    assert "python '/nonexistent/python3' was not found" in block(lines, "m2")
    assert 'set "python" for machine m2' in block(lines, "m2")
    assert 'host key NOT trusted' in block(lines, "m3")
    assert 'run "fleetslurm nodes trust m3"' in block(lines, "m3")
    assert "no answer within 2 s" in block(lines, "m4")
    m3_auth = block(lines2, "m3")
    assert "authenticated NO" in m3_auth and "check ssh_user and ssh_key_path" in m3_auth


def test_trust_shows_the_fingerprint_asks_and_records(sshd_fleet, make_config):
    m1, m2 = sshd_fleet(2)
    fleet = make_config([m1, m2], known_hosts=False)
    out, err = io.StringIO(), io.StringIO()
    prompts: list[str] = []
    code = trust(fleet.config, fleet.paths, "m1", False, out=out, err=err,
                 ask=lambda p: prompts.append(p) or "y")
    assert code == 0, err.getvalue()
    shown = out.getvalue()
    fp = subprocess.run(["ssh-keygen", "-lf", f"{m1.host_key}.pub"], capture_output=True,
                        text=True, check=True).stdout.split()[1]  # OpenSSH's own fingerprint
    assert f"m1 ([{m1.address}]:{m1.port}) offers the host key ssh-ed25519 {fp}\n" in shown
    assert prompts == [f"Trust it and record it in {fleet.known_hosts}? [y/N] "]
    assert fleet.known_hosts.read_text() == m1.known_hosts_line + "\n"
    assert fleet.known_hosts.stat().st_mode & 0o777 == 0o600
    # now the transport accepts it (policy reject)
    cfg = fleet.config
    t = SSHTransport("m1", cfg.machines["m1"], cfg, fleet.paths)
    t.start_agent().close()
    t.close()
    # again: already trusted, nothing asked
    out = io.StringIO()
    assert trust(fleet.config, fleet.paths, "m1", False, out=out, ask=pytest.fail) == 0
    assert "already trusted" in out.getvalue()
    # declining records nothing
    out = io.StringIO()
    assert trust(fleet.config, fleet.paths, "m2", False, out=out, ask=lambda p: "n") == 1
    assert "not recorded" in out.getvalue()
    assert fleet.known_hosts.read_text() == m1.known_hosts_line + "\n"
    # --yes does not ask
    assert trust(fleet.config, fleet.paths, "m2", True, out=io.StringIO(), ask=pytest.fail) == 0
    assert m2.known_hosts_line in fleet.known_hosts.read_text()


def test_trust_refuses_a_changed_key_and_unknown_nodes(sshd_fleet, make_config):
    (m1,) = sshd_fleet(1)
    fleet = make_config([m1])
    m1.rekey()
    err = io.StringIO()
    assert trust(fleet.config, fleet.paths, "m1", True, out=io.StringIO(), err=err) == 1
    assert "has CHANGED" in err.getvalue() and "man-in-the-middle" in err.getvalue()
    assert f"ssh-keygen -R '[{m1.address}]:{m1.port}' -f {fleet.known_hosts}" in err.getvalue()
    err = io.StringIO()
    assert trust(fleet.config, fleet.paths, "nope", True, err=err) == 1
    assert err.getvalue() == "error: no machine 'nope' in the config; valid nodes: m1\n"
    m1.kill()
    err = io.StringIO()
    assert trust(fleet.config, fleet.paths, "m1", True, out=io.StringIO(), err=err) == 1
    assert "connection refused" in err.getvalue()


def test_trust_several_machines_and_all(sshd_fleet, make_config):
    m1, m2, m3 = sshd_fleet(3)
    fleet = make_config([m1, m2, m3], known_hosts=[m2])
    # names not in the config: refused before any machine is contacted
    err = io.StringIO()
    assert trust_many(fleet.config, fleet.paths, ["m1", "x", "y"], False, True,
                      out=io.StringIO(), err=err, ask=pytest.fail) == 1
    assert err.getvalue() == "error: no machine 'x', 'y' in the config; valid nodes: m1, m2, m3\n"
    assert fleet.known_hosts.read_text() == m2.known_hosts_line + "\n"
    # neither names nor --all, or both
    err = io.StringIO()
    assert trust_many(fleet.config, fleet.paths, [], False, True, err=err) == 2
    assert "name the machines to trust, or give --all; valid nodes: m1, m2, m3" in err.getvalue()
    assert trust_many(fleet.config, fleet.paths, ["m1"], True, True, err=io.StringIO()) == 2
    # two named (one twice): each asked on its own; declining one fails the whole
    out, prompts = io.StringIO(), []
    answers = iter(["y", "n"])
    code = trust_many(fleet.config, fleet.paths, ["m1", "m3", "m1"], False, False, out=out,
                      err=io.StringIO(), ask=lambda p: prompts.append(p) or next(answers))
    assert code == 1 and len(prompts) == 2
    assert out.getvalue().endswith("1 of 2 machines trusted; not trusted: m3\n")
    assert m1.known_hosts_line in fleet.known_hosts.read_text()
    assert m3.known_hosts_line not in fleet.known_hosts.read_text()
    # --all --yes: m1 and m2 already trusted, m3 recorded; a dead machine is reported
    out = io.StringIO()
    assert trust_many(fleet.config, fleet.paths, [], True, True, out=out, err=io.StringIO(),
                      ask=pytest.fail) == 0
    text = out.getvalue()
    assert text.count("already trusted") == 2 and f"recorded m3 ([{m3.address}]:" in text
    assert text.endswith("3 of 3 machines trusted\n")
    m3.kill()
    out, err = io.StringIO(), io.StringIO()
    assert trust_many(fleet.config, fleet.paths, [], True, True, out=out, err=err) == 1
    assert out.getvalue().endswith("2 of 3 machines trusted; not trusted: m3\n")
    assert "connection refused" in err.getvalue()


def test_trust_all_from_the_command_line(sshd_fleet, make_config, tmp_path):
    m1, m2 = sshd_fleet(2)
    fleet = make_config([m1, m2], known_hosts=False)
    proc = subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", "nodes", "trust",
                           "--all", "--yes", "--config", str(fleet.path)],
                          env={**os.environ, **fleet.env}, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("2 of 2 machines trusted\n")
    assert fleet.known_hosts.read_text() == m1.known_hosts_line + "\n" + m2.known_hosts_line + "\n"

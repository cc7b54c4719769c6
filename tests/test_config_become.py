"""The machine fields of ``"become": "sudo"`` (see transport/ssh_become.py):
accepted where they mean something, and a bad value is one line naming the
field and what is allowed; what a refused sudo says (one line: the machine,
sudo's words, the fix)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetslurm.config import load_config
from fleetslurm.errors import ConfigError


def _load(tmp_path: Path, machine: dict):
    path = tmp_path / "fleet_config.json"
    path.write_text(json.dumps({"machines": {"m1": {"hostname": "h1", **machine}}}))
    return load_config(path)


def test_omitted_the_ssh_account_runs_the_agent(tmp_path: Path) -> None:
    m = _load(tmp_path, {}).machines["m1"]
    assert m.become is None and m.sftp_server is None


def test_sudo_with_an_sftp_server_path(tmp_path: Path) -> None:
    m = _load(tmp_path, {"ssh_user": "fleetslurm", "become": "sudo",
                         "sftp_server": "/usr/libexec/openssh/sftp-server"}).machines["m1"]
    assert (m.become, m.sftp_server) == ("sudo", "/usr/libexec/openssh/sftp-server")


@pytest.mark.parametrize("machine, message", [
    ({"become": "su"},
     'machines.m1.become: must be "sudo" (or null: the ssh account itself runs the agent), '
     'got "su"'),
    ({"become": True},
     'machines.m1.become: must be "sudo" (or null: the ssh account itself runs the agent), '
     'got true'),
    ({"sftp_server": "sftp-server"},
     "machines.m1.sftp_server: must be the absolute path of the machine's sftp-server "
     '("/usr/lib/openssh/sftp-server"), got "sftp-server"'),
    ({"become": "sudo", "transport": "local"},
     "machines.m1.become: applies to a machine reached over SSH; a local machine's agent "
     "runs as the controller does (run the lab as root for jobs run as their users): "
     'remove "become" or "transport": "local"'),
])
def test_a_bad_value_is_one_line_naming_it(tmp_path: Path, machine: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, machine)
    assert str(err.value).endswith(message), str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("stderr, start", [
    ("sudo: a password is required\n",
     'node m1: "become": "sudo" but sudo would not run /usr/lib/openssh/sftp-server as root '
     "for svc without a password (sudo: a password is required); add to "
     "/etc/sudoers.d/fleetslurm there (visudo -f /etc/sudoers.d/fleetslurm): "
     "Defaults:svc !requiretty / svc ALL=(root) NOPASSWD: /usr/lib/openssh/sftp-server \"\", "
     "/usr/bin/python3 /var/lib/fleetslurm-node/sudo-entry.py"),
    ("bash: line 1: sudo: command not found\n",
     'node m1: "become": "sudo" but sudo is not installed there (bash: line 1: sudo: command '
     "not found); install it (apt-get install sudo), then add to /etc/sudoers.d/fleetslurm: "
     "Defaults:svc !requiretty / svc ALL"),
    ("sudo: /usr/lib/openssh/sftp-server: command not found\n",
     'node m1: "become": "sudo" but /usr/lib/openssh/sftp-server is not there (sudo: '
     '/usr/lib/openssh/sftp-server: command not found); set "sftp_server" or "python" for '
     "machine m1 in the config to its absolute path there"),
])
def test_what_a_refused_sudo_says(stderr: str, start: str) -> None:
    from fleetslurm.errors import AuthenticationFailed
    from fleetslurm.transport.ssh_become import refused

    exc = refused("m1", "svc", "/usr/bin/python3", "/usr/lib/openssh/sftp-server",
                  "/usr/lib/openssh/sftp-server", stderr)
    assert isinstance(exc, AuthenticationFailed) and exc.node == "m1"
    assert str(exc).startswith(start), str(exc)
    assert "\n" not in str(exc)

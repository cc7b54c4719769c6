"""Fixtures for the multi-machine tests: real sshd "machines" on loopback.

API (see sshd_machines.py for the details)::

    def test_x(sshd_fleet, make_config):
        m1, m2 = sshd_fleet(2)              # Machine objects, sshd listening
        fleet = make_config([m1, m2])        # fleet_config.json + known_hosts
        fleet.config, fleet.paths, fleet.env  # FleetConfig, StatePaths, env vars
        m2.kill()                            # sshd, sessions, agents and jobs die
        m2.start()                           # back, with the same host key
        m2.rekey()                           # a new host key (a "reinstall")

Machines live for the whole session (start-up is paid once, ~0.1 s for four);
after each test every machine it used is reset: sessions and jobs killed,
original host key back, sshd listening, workdir emptied. At the end of the
session everything is killed and a leak is reported as an error.

``ssh_home`` points ``$HOME`` at an empty directory and unsets
``SSH_AUTH_SOCK``, so the developer's own ~/.ssh (config, known_hosts, keys,
agent) cannot make a test pass or fail.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

import pytest

from .sshd_machines import Machine, SshdPool

__all__ = ["Machine", "FleetFiles"]


@dataclass
class FleetFiles:
    """What ``make_config`` wrote."""

    home: Path               #: FLEETSLURM_HOME
    path: Path               #: fleet_config.json
    data: dict               #: its contents
    env: dict[str, str]      #: FLEETSLURM_HOME and FLEETSLURM_CONFIG, for subprocesses

    @property
    def config(self):
        """The validated FleetConfig."""
        from fleetslurm.config import load_config

        return load_config(self.path)

    @property
    def paths(self):
        from fleetslurm.paths import StatePaths

        return StatePaths(self.home)

    @property
    def known_hosts(self) -> Path:
        return self.home / "known_hosts"


@pytest.fixture(scope="session")
def sshd_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdPool]:
    if not Path("/usr/sbin/sshd").exists():
        pytest.skip("openssh-server is not installed (/usr/sbin/sshd)")
    pool = SshdPool(tmp_path_factory.mktemp("sshd"))
    yield pool
    leaked = pool.shutdown()
    if leaked:
        warnings.warn(f"processes survived the sshd fleet's teardown: {leaked}")


@pytest.fixture
def sshd_fleet(sshd_pool: SshdPool) -> Iterator[Callable[[int], list[Machine]]]:
    """``sshd_fleet(n)`` -> the first n machines (m1 127.0.0.2, m2 127.0.0.3, ...)."""
    used: list[Machine] = []

    def get(n: int) -> list[Machine]:
        machines = sshd_pool.get(n)
        used.extend(m for m in machines if m not in used)
        return machines

    yield get
    for m in used:
        m.reset()


@pytest.fixture
def client_key(sshd_pool: SshdPool) -> Path:
    """The private key every machine's authorized_keys accepts."""
    return sshd_pool.client_key


@pytest.fixture
def ssh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty $HOME (no ~/.ssh) and no ssh-agent for this test."""
    home = tmp_path / "userhome"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., FleetFiles]:
    """``make_config(machines, *, home=None, known_hosts=True, overrides=None, **top)``.

    Writes ``fleet_config.json`` (ssh_user root, the pool's client key, each
    machine's declared size) and ``$FLEETSLURM_HOME/known_hosts`` with the
    machines' host keys under ``[127.0.0.N]:PORT`` patterns -- what
    ``fleetslurm nodes trust`` records. ``known_hosts`` may be False (no file)
    or a list of machines to include. ``overrides`` maps a node name to extra
    fields of its entry; ``top`` sets top-level fields (``host_key_policy``...).
    """
    counter = [0]

    def make(machines: Sequence[Machine], *, home: Optional[Path] = None,
             known_hosts: Union[bool, Sequence[Machine]] = True,
             overrides: Optional[dict[str, dict]] = None, **top: object) -> FleetFiles:
        counter[0] += 1
        base = tmp_path / f"fleet{counter[0]}"
        base.mkdir(parents=True)
        home = home or base / "home"
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)
        overrides = overrides or {}
        data = {"cluster_name": "loopback", **top,
                "machines": {m.name: m.config_entry(**overrides.get(m.name, {}))
                             for m in machines}}
        path = base / "fleet_config.json"
        path.write_text(json.dumps(data, indent=2))
        trusted = list(machines) if known_hosts is True else list(known_hosts or [])
        if trusted:
            kh = home / "known_hosts"
            kh.write_text("".join(m.known_hosts_line + "\n" for m in trusted))
            kh.chmod(0o600)
        return FleetFiles(home=home, path=path, data=data,
                          env={"FLEETSLURM_HOME": str(home), "FLEETSLURM_CONFIG": str(path)})

    return make

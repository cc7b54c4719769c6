"""Host keys for SSHTransport: known_hosts files, the policy, fingerprints.

Keys are checked against ``~/.ssh/known_hosts`` and
``$FLEETSLURM_HOME/known_hosts`` (``[host]:port`` names for ports other than
22, as OpenSSH writes them). An unknown key is refused with a HostKeyError
that says how to trust it (``fleetslurm nodes trust NODE``) unless
``host_key_policy`` is ``accept-new``, which records it; a changed key is
always refused. paramiko is imported inside functions only.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..errors import HostKeyError
from ..paths import private_dir
from .ssh_hop import host_pattern

if TYPE_CHECKING:
    import paramiko

    from ..paths import StatePaths
    from .ssh_hop import Hop

__all__ = ["HostKeyPolicy", "changed_host_key_error", "fingerprint", "host_pattern",
           "known_files", "load_known_hosts", "record_host_key", "recorded_host_key"]

log = logging.getLogger(__name__)


def fingerprint(key: "paramiko.PKey") -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def record_host_key(path: Path, pattern: str, key: "paramiko.PKey") -> None:
    """Append ``pattern keytype base64`` to a known_hosts file (0600)."""
    if not path.parent.is_dir():
        private_dir(path.parent)
    line = f"{pattern} {key.get_name()} {key.get_base64()}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)  # one O_APPEND write: concurrent recorders never interleave
    finally:
        os.close(fd)


def known_files(paths: "StatePaths") -> list[Path]:
    """User's file first: paramiko consults its "system" keys before its own."""
    return [Path(os.path.expanduser("~/.ssh/known_hosts")), paths.known_hosts]


def load_known_hosts(client: Any, node: str, paths: "StatePaths") -> None:
    """Load both known_hosts files into a paramiko SSHClient."""
    user, ours = known_files(paths)
    for path, load in ((user, client.load_system_host_keys), (ours, client.load_host_keys)):
        if path.is_file():
            try:
                load(str(path))
            except Exception as exc:
                raise HostKeyError(f"node {node}: cannot read {path}: {exc}; fix or "
                                   "remove the bad line", node) from exc


def recorded_host_key(node: str, paths: "StatePaths",
                      pattern: str) -> Optional[tuple[Path, list[Any]]]:
    """The first known_hosts file listing ``pattern``, and its keys there."""
    import paramiko

    for path in known_files(paths):
        if path.is_file():
            try:
                entry = paramiko.HostKeys(str(path)).lookup(pattern)
            except Exception as exc:
                raise HostKeyError(f"node {node}: cannot read {path}: {exc}; fix or "
                                   "remove the bad line", node) from exc
            if entry:
                return path, list(entry.values())
    return None


class HostKeyPolicy:
    """Called by paramiko for a host key that no known_hosts file lists."""

    def __init__(self, node: str, policy: str, known_hosts: Path, hop: "Hop") -> None:
        self.node, self.policy, self.known_hosts, self.hop = node, policy, known_hosts, hop

    def missing_host_key(self, client: Any, hostname: str, key: "paramiko.PKey") -> None:
        if self.policy == "accept-new":
            record_host_key(self.known_hosts, hostname, key)
            log.warning("%s: accepted new host key %s %s (host_key_policy accept-new), "
                        "recorded in %s", self.hop.desc, key.get_name(), fingerprint(key),
                        self.known_hosts)
            return
        if self.hop.jump:  # `nodes trust` records the machine's key, not its jump host's
            fix = (f"check it and record it with: ssh-keyscan -p {self.hop.port} {self.hop.host}"
                   f" >> {self.known_hosts}")
        else:
            fix = f'run "fleetslurm nodes trust {self.node}" to check and record it'
        raise HostKeyError(f"{self.hop.desc}: unknown host key {key.get_name()} "
                           f"{fingerprint(key)}; {fix}", self.node)


def changed_host_key_error(exc: "paramiko.BadHostKeyException", hop: "Hop", node: str,
                           paths: "StatePaths") -> HostKeyError:
    """The error for a host key that differs from the recorded one."""
    found = recorded_host_key(node, paths, hop.pattern)
    where = found[0] if found else paths.known_hosts
    return HostKeyError(
        f"host key for {hop.desc} has CHANGED: it now offers {exc.key.get_name()} "
        f"{fingerprint(exc.key)}, {where} records {fingerprint(exc.expected_key)}. "
        f"This is a possible man-in-the-middle attack; if the machine was reinstalled, "
        f"remove the old key from {where} (ssh-keygen -R '{hop.pattern}' -f {where}) "
        f"and run fleetslurm nodes trust {node}", node)

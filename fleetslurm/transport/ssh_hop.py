"""One SSH connection on the way to a machine (jump hosts first), and the
name its host key has in known_hosts. Used by ``ssh_route`` (which works the
hops out), ``ssh_hostkeys`` (which checks their keys) and ``ssh``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Hop", "host_pattern"]


def host_pattern(host: str, port: int) -> str:
    """The known_hosts name of ``host:port``, as OpenSSH writes it."""
    return host if port == 22 else f"[{host}]:{port}"


@dataclass(frozen=True)
class Hop:
    """One SSH connection on the way to the machine (jump hosts first)."""

    host: str
    port: int
    user: str
    keys: tuple[str, ...]
    desc: str  # "node m2 (127.0.0.3:2203)" or "jump host 10.0.0.1:22 of node m2"
    jump: bool = False

    @property
    def pattern(self) -> str:
        return host_pattern(self.host, self.port)

"""Where and as whom to connect for one machine: our config first, then
``~/.ssh/config`` (HostName, Port, User, IdentityFile, ProxyJump)."""

from __future__ import annotations

import getpass
import os
from typing import TYPE_CHECKING, Any

from ..errors import AuthenticationFailed, TransportError
from .ssh_hop import Hop

if TYPE_CHECKING:
    from ..config import MachineConfig

__all__ = ["route"]


def _ssh_config(node: str) -> Any:
    import paramiko

    path = os.path.expanduser("~/.ssh/config")
    if not os.path.isfile(path):
        return None
    try:
        return paramiko.SSHConfig.from_path(path)
    except Exception as exc:
        raise TransportError(f"node {node}: cannot read {path}: {exc}; fix that "
                             "file or move it away", node) from exc

def route(node: str, m: "MachineConfig") -> list[Hop]:
    """The jump hosts (ProxyJump) then the machine, from our config and ~/.ssh/config."""
    cfg = _ssh_config(node)
    opts = cfg.lookup(m.hostname) if cfg else {}
    host = m.ip or opts.get("hostname") or m.hostname
    port = m.port if "port" in m.model_fields_set or "port" not in opts else int(opts["port"])
    keys: list[str] = []
    if m.ssh_key_path:
        key = os.path.expanduser(m.ssh_key_path)
        if not os.path.isfile(key):
            raise AuthenticationFailed(f"node {node}: ssh_key_path {key} does not exist; "
                                       f"fix ssh_key_path for machine {node} in the "
                                       "config", node)
        keys.append(key)
    keys += _identities(opts, keys)
    user = m.ssh_user or opts.get("user") or getpass.getuser()
    target = Hop(host, port, user, tuple(keys), f"node {node} ({host}:{port})")
    jumps = []
    proxy = opts.get("proxyjump", "none")
    if proxy.lower() != "none":
        for spec in proxy.split(","):
            jumps.append(_jump(node, spec.strip(), cfg, keys))
    return jumps + [target]

def _identities(opts: dict, have: list[str]) -> list[str]:
    found = (os.path.expanduser(k) for k in opts.get("identityfile", []))
    return [k for k in found if os.path.isfile(k) and k not in have]

def _jump(node: str, spec: str, cfg: Any, keys: list[str]) -> Hop:
    """``[user@]host[:port]`` (or ``ssh://...``) of ProxyJump, resolved via ~/.ssh/config."""
    user, _, hostport = spec.removeprefix("ssh://").rpartition("@")
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, _, port = hostport.partition(":")
    opts = cfg.lookup(host) if cfg else {}
    real = opts.get("hostname") or host
    num = int(port or opts.get("port") or 22)
    return Hop(real, num, user or opts.get("user") or getpass.getuser(),
                tuple(_identities(opts, []) + keys),
                f"jump host {real}:{num} of node {node}", jump=True)

"""``fleetslurm nodes check`` and ``fleetslurm nodes trust NODE... | --all``.

Plain functions the typer app wires in; they print and return the exit
status. ``check`` talks to every machine at once (one thread each, one overall
deadline), so a dead machine costs its timeout, not the sum of all of them.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional, TextIO

from ..node.agent import protocol

if TYPE_CHECKING:
    from ..config import FleetConfig, MachineConfig
    from ..paths import StatePaths
    from ..transport.base import Transport

__all__ = ["check", "trust", "trust_many"]

#: below this much free space in the workdir a machine fails the check
MIN_DISK_MB = 100
#: below this much, a warning
LOW_DISK_MB = 1024


@dataclass
class _Report:
    ok: bool
    summary: str
    notes: list[str] = field(default_factory=list)


def _transport(name: str, machine: "MachineConfig", config: "FleetConfig",
               paths: "StatePaths") -> "Transport":
    """The transport the controller would use (see Controller.transport_for)."""
    if machine.transport == "local":
        from ..transport.local import LocalTransport

        return LocalTransport(name, paths.node_workdir(name))
    from ..paths import fleet_workdir, workdir_owner
    from ..transport.ssh import SSHTransport

    if not paths.db.exists():
        return SSHTransport(name, machine, config, paths)
    from ..store import Store

    store = Store(paths.db)
    try:
        cluster_id, own = store.identity()
    finally:
        store.close()
    transport = SSHTransport(name, machine.model_copy(update={"workdir": fleet_workdir(
        machine.workdir, cluster_id, own, name)}), config, paths)
    transport.owner = workdir_owner(cluster_id, config.cluster_name, paths, config.source)
    return transport


def _where(machine: "MachineConfig") -> str:
    if machine.transport == "local":
        return "local"
    return f"{machine.ssh_user or '(default user)'}@{machine.address}:{machine.port}"


def _check_one(name: str, config: "FleetConfig", paths: "StatePaths",
               holder: list) -> _Report:
    from ..errors import (AuthenticationFailed, FleetError, HostKeyError, NodeUnreachable,
                          TransportError)

    machine = config.machines[name]
    transport = _transport(name, machine, config, paths)
    holder.append(transport)  # so the caller can close it when we run out of time
    try:
        channel = transport.start_agent()
    except HostKeyError as exc:
        return _Report(False, "reachable yes, host key NOT trusted", [f"error: {exc}"])
    except AuthenticationFailed as exc:
        return _Report(False, "reachable yes, authenticated NO", [f"error: {exc}"])
    except NodeUnreachable as exc:
        return _Report(False, "reachable NO", [f"error: {exc}"])
    except TransportError as exc:
        return _Report(False, "reachable yes, authenticated yes, agent NOT started",
                       [f"error: {exc}"])
    try:
        channel.send(protocol.hello([], rid="check"))
        while True:
            msg = channel.recv()
            if msg is None:
                return _Report(False, "reachable yes, authenticated yes, agent ended at once",
                               [f"error: node {name}: the agent closed its channel without "
                                f"answering; see {transport.workdir}/agent.log there"])
            if msg.get("ev") == "hello":
                return _judge(name, machine, msg.get("facts") or {})
    except FleetError as exc:
        return _Report(False, "reachable yes, authenticated yes, agent failed", [f"error: {exc}"])
    finally:
        channel.close()
        transport.close()


def _gb(mb: float) -> str:
    return f"{mb / 1024:.1f} GB"


def _judge(name: str, machine: "MachineConfig", facts: dict) -> _Report:
    """Turn the agent's facts into a verdict: failures, warnings, declared vs detected."""
    ok, notes = True, []
    disk = int(facts.get("disk_free_mb") or 0)
    workdir = facts.get("workdir", machine.workdir)
    writable = bool(facts.get("workdir_writable"))
    if not writable:
        ok = False
        # with become=sudo the agent writes as root, not as the ssh login
        writer = "root" if machine.become else (machine.ssh_user or "the ssh user")
        notes.append(f"error: workdir {workdir} is not writable; make it writable for "
                     f"{writer} there, or set \"workdir\" for "
                     f"machine {name} in the config")
    if disk < MIN_DISK_MB:
        ok = False
        notes.append(f"error: only {disk} MB free in {workdir}; free disk space on the machine")
    elif disk < LOW_DISK_MB:
        notes.append(f"warning: only {disk} MB free in {workdir}; free disk space on the machine")
    cpus, mem, gpus = facts.get("cpus"), facts.get("mem_mb"), len(facts.get("gpus") or [])
    parts = []
    for what, declared, detected, show in (
            ("cpus", machine.cpus, cpus, str),
            ("memory", machine.mem_mb, mem, _gb),
            ("gpus", machine.gpu_count, gpus, str)):
        if declared is None:
            parts.append(f"{what} {show(detected)} (detected; none declared)")
            continue
        parts.append(f"{what} {show(declared)} (detected {show(detected)})")
        if detected is not None and declared != detected:
            notes.append(f"note: declares {what} {show(declared)} but {show(detected)} "
                         "detected; the scheduler uses the declared value")
    summary = (f"reachable yes, authenticated yes, python {facts.get('python', '?')}, "
               f"workdir {workdir} {'writable' if writable else 'NOT writable'}, "
               f"disk {_gb(disk)} free, " + ", ".join(parts))
    return _Report(ok, summary, notes)


def check(config: "FleetConfig", paths: "StatePaths", *, timeout: float = 30.0,
          out: Optional[TextIO] = None) -> int:
    """Check every machine in parallel; one line each (then its notes and
    fixes). Returns 1 when any machine fails, else 0."""
    out = out or sys.stdout
    names = list(config.machines)
    reports: dict[str, _Report] = {}
    held: dict[str, list] = {n: [] for n in names}

    def run(name: str) -> None:
        try:
            reports[name] = _check_one(name, config, paths, held[name])
        except Exception as exc:  # a bug in one check must not hide the others
            reports[name] = _Report(False, "check crashed", [f"error: {type(exc).__name__}: {exc}"])

    threads = {n: threading.Thread(target=run, args=(n,), daemon=True, name=f"check-{n}")
               for n in names}
    for t in threads.values():
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads.values():
        t.join(max(0.0, deadline - time.monotonic()))
    width = max(len(n) for n in names)
    failed = 0
    for name in names:
        report = reports.get(name)
        if report is None:
            for transport in held[name]:  # unblocks the thread; it is a daemon anyway
                threading.Thread(target=transport.close, daemon=True).start()
            report = _Report(False, "no answer", [
                f"error: node {name}: no answer within {timeout:.0f} s; is the machine "
                "overloaded or its network dropping packets?"])
        failed += not report.ok
        status = "OK  " if report.ok else "FAIL"
        out.write(f"{name:<{width}}  {status}  {_where(config.machines[name])}  "
                  f"{report.summary}\n")
        for note in report.notes:
            out.write(f"{'':<{width}}    {note}\n")
    out.write(f"{len(names) - failed} of {len(names)} machines OK\n")
    out.flush()
    return 1 if failed else 0


_KEYFILE = {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa"}


def trust(config: "FleetConfig", paths: "StatePaths", node: str, yes: bool, *,
          out: Optional[TextIO] = None, err: Optional[TextIO] = None,
          ask: Optional[Callable[[str], str]] = None) -> int:
    """Show NODE's host key, ask (unless ``yes``) and record it in
    ``$FLEETSLURM_HOME/known_hosts``. 0 when recorded or already trusted."""
    from ..errors import FleetError
    from ..paths import private_dir
    from ..transport.ssh import SSHTransport, fingerprint, record_host_key

    out, err = out or sys.stdout, err or sys.stderr
    machine = config.machines.get(node)
    if machine is None:
        err.write(f"error: no machine {node!r} in the config; valid nodes: "
                  f"{', '.join(config.machines)}\n")
        return 1
    if machine.transport == "local":
        out.write(f"{node} uses the local transport: there is no host key to trust\n")
        return 0
    transport = SSHTransport(node, machine, config, paths)
    try:
        pattern, key = transport.scan_host_key()
        known = transport.recorded_host_key(pattern)
    except FleetError as exc:
        err.write(f"error: {exc}\n")
        return 1
    finally:
        transport.close()
    fp = f"{key.get_name()} {fingerprint(key)}"
    out.write(f"{node} ({pattern}) offers the host key {fp}\n")
    if known is not None:
        where, keys = known
        if any(k == key for k in keys):
            out.write(f"already trusted: {where} records this key\n")
            return 0
        old = ", ".join(f"{k.get_name()} {fingerprint(k)}" for k in keys)
        err.write(f"error: host key for node {node} ({pattern}) has CHANGED: {where} records "
                  f"{old}. This is a possible man-in-the-middle attack; if the machine was "
                  f"reinstalled, remove the old key (ssh-keygen -R '{pattern}' -f {where}) "
                  f"and run fleetslurm nodes trust {node} again\n")
        return 1
    if not yes:
        kind = _KEYFILE.get(key.get_name(), "ecdsa")
        out.write(f"Compare it with the machine's own: ssh-keygen -lf "
                  f"/etc/ssh/ssh_host_{kind}_key.pub (run there)\n")
        out.flush()
        try:
            answer = (ask or input)(f"Trust it and record it in {paths.known_hosts}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            out.write("not recorded\n")
            return 1
    private_dir(paths.home)
    record_host_key(paths.known_hosts, pattern, key)
    out.write(f"recorded {node} ({pattern}) {fp} in {paths.known_hosts}\n")
    return 0


def trust_many(config: "FleetConfig", paths: "StatePaths", nodes: "list[str]", all_nodes: bool,
               yes: bool, *, out: Optional[TextIO] = None, err: Optional[TextIO] = None,
               ask: Optional[Callable[[str], str]] = None) -> int:
    """``nodes trust NODE...`` or ``--all``: ``trust`` for each machine in
    turn (each asked on its own unless ``yes``). Names not in the config are
    refused before any machine is contacted. 0 when every machine ends
    trusted; with several, a last line counts them."""
    out, err = out or sys.stdout, err or sys.stderr
    valid = ", ".join(config.machines)
    if all_nodes and nodes:
        err.write("error: give machine names or --all, not both\n")
        return 2
    if not all_nodes and not nodes:
        err.write(f"error: name the machines to trust, or give --all; valid nodes: {valid}\n")
        return 2
    names = list(config.machines) if all_nodes else list(dict.fromkeys(nodes))
    unknown = [n for n in names if n not in config.machines]
    if unknown:
        which = ", ".join(repr(n) for n in unknown)
        err.write(f"error: no machine {which} in the config; valid nodes: {valid}\n")
        return 1
    if len(names) == 1:
        return trust(config, paths, names[0], yes, out=out, err=err, ask=ask)
    failed = []
    for name in names:
        if trust(config, paths, name, yes, out=out, err=err, ask=ask) != 0:
            failed.append(name)
        out.flush()
    ok = len(names) - len(failed)
    tail = f"; not trusted: {', '.join(failed)}" if failed else ""
    out.write(f"{ok} of {len(names)} machines trusted{tail}\n")
    return 1 if failed else 0

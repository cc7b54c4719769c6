"""The lab: one controller for every user of a machine (``fleetslurm lab ...``).

``init`` (root) installs the config, the service account, the state and
socket directories and a systemd unit; ``run`` is the controller in the
foreground (what the unit runs), ``start``/``stop``/``status`` the same
without systemd; ``bridge`` joins its stdin/stdout to the lab's socket, for
``FLEETSLURM_CONTROLLER=ssh://head`` from another workstation (the caller
is whoever ssh logged in: the kernel tells the controller, SO_PEERCRED).

Standard library only (``bridge`` runs at every remote command's start).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional

from .errors import ConfigError, ControllerError, FleetError
from .paths import LabPaths, lab_paths

__all__ = ["init", "start", "stop", "status", "bridge", "run"]

Say = Callable[[str], None]


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise FleetError(f"`fleetslurm lab {what}` changes the machine (a service account, "
                         "/etc, /var/lib, /run): run it as root (sudo)")


def _unit(where: LabPaths, user: str) -> str:
    """The systemd unit running ``fleetslurm lab run`` as ``user``."""
    exe = shutil.which("fleetslurm")
    command = exe if exe else f"{sys.executable} -m fleetslurm"
    lines = ["[Unit]", "Description=fleetslurm lab controller (one queue for every user)",
             "After=network-online.target", "Wants=network-online.target", "",
             "[Service]", "Type=simple", f"User={user}", f"ExecStart={command} lab run"]
    if where.root != Path("/"):
        lines.append(f"Environment=FLEETSLURM_LAB_ROOT={where.root}")
    else:  # /run is emptied at boot: systemd makes run/fleetslurm for the service
        lines += ["RuntimeDirectory=fleetslurm", "RuntimeDirectoryMode=0755",
                  "RuntimeDirectoryPreserve=yes"]
    lines += ["Restart=on-failure",
              "# jobs on this machine (local transport) outlive a restart of the controller",
              "KillMode=process", "", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _account(name: str, home: Path, say: Say) -> "tuple[int, int]":
    """The service account ``name`` (created as a system account when missing)."""
    import pwd

    try:
        pw = pwd.getpwnam(name)
        say(f"service account {name} (uid {pw.pw_uid}) exists already")
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise FleetError(f"the service account {name} does not exist and `useradd` is not "
                         f"on PATH: create the account, then run `fleetslurm lab init` again")
    shell = "/usr/sbin/nologin" if os.path.exists("/usr/sbin/nologin") else "/bin/false"
    proc = subprocess.run([useradd, "--system", "--user-group", "--home-dir", str(home),
                           "--no-create-home", "--shell", shell, name],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise FleetError(f"cannot create the service account {name}: "
                         f"{proc.stderr.strip() or f'useradd exited {proc.returncode}'}")
    pw = pwd.getpwnam(name)
    say(f"created the service account {name} (uid {pw.pw_uid}, a system account "
        "without a login shell)")
    return pw.pw_uid, pw.pw_gid


def init(config: str, service_user: str = "fleetslurm", say: Say = print,
         where: Optional[LabPaths] = None) -> LabPaths:
    """Set up the lab on this machine (see the module's doc); idempotent."""
    from .config import load_config

    _need_root("init")
    where = where or lab_paths()
    source = Path(config).expanduser().absolute()
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--config {config}: cannot read it: {exc.strerror}") from None
    fleet = load_config(source)  # ConfigError naming what is wrong: nothing installed yet
    if not service_user or service_user.startswith("-") or "/" in service_user:
        raise ConfigError(f"--service-user {service_user!r} is not an account name")
    uid, gid = _account(service_user, where.state_home, say) if service_user != "root" \
        else (0, 0)
    if service_user == "root":
        say("service account: root (as SLURM's SlurmUser=root)")

    where.etc.mkdir(parents=True, exist_ok=True)
    os.chmod(where.etc, 0o755)
    had = where.config.exists()
    _write(where.config, data, 0o644)
    say(f"{'replaced' if had else 'installed'} the config {where.config} (from {source})")
    _write(where.lab_file, (json.dumps({"service_user": service_user}, indent=1)
                            + "\n").encode(), 0o644)
    say(f"wrote {where.lab_file} (the service account's name)")

    for path, mode in ((where.state_home, 0o700), (where.run_dir, 0o755)):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            pass
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        say(f"{path}: owned by {service_user}, mode {mode:o}")
    state = where.state_home
    for entry in state.iterdir() if state.is_dir() else ():
        # a state directory used before (another service account): its files too
        if entry.is_symlink():
            continue
        os.chown(entry, uid, gid)

    where.unit_file.parent.mkdir(parents=True, exist_ok=True)
    _write(where.unit_file, _unit(where, service_user).encode(), 0o644)
    say(f"wrote the systemd unit {where.unit_file} (`fleetslurm lab run` as {service_user})")
    home = f"FLEETSLURM_HOME={where.state_home} "
    as_svc = f"sudo -u {service_user} " if service_user != "root" else ""
    say("")
    say("next:")
    say(f"  1. the machines: the SSH keys named in {where.config} must be readable by "
        f"{service_user}; trust their host keys as it:")
    say(f"       {as_svc}env {home}fleetslurm nodes trust --all --config {where.config}")
    sudo = [name for name, m in fleet.machines.items() if m.become]
    if sudo:
        say(f"     {', '.join(sudo)} (\"become\": \"sudo\"): each needs the sudoers lines of "
            "README's \"Reaching the machines through sudo\";")
        say(f"       {as_svc}env {home}fleetslurm nodes check --config {where.config}"
            "   prints them, exact, for a machine that lacks them")
    say("  2. start the controller:  systemctl daemon-reload && systemctl enable --now "
        "fleetslurm")
    say("     (without systemd: fleetslurm lab start)")
    say("  3. check it:  fleetslurm lab status   -- then every user's sbatch/squeue/... on "
        "this machine use it;")
    say("     from another workstation: FLEETSLURM_CONTROLLER=ssh://THIS-HOST sbatch ...")
    return where


def _lab() -> LabPaths:
    where = lab_paths()
    if not where.configured():
        raise ConfigError(f"no lab on this machine: {where.config} does not exist; set one up "
                          "with `fleetslurm lab init --config FILE` (as root)")
    return where


def start(say: Say = print) -> int:
    """Start the lab's controller in the background (as its service account);
    0 when it runs (started now or before)."""
    import pwd

    where = _lab()
    name = where.service_user()
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(f"the lab's service account {name!r} does not exist; run "
                          "`fleetslurm lab init` again (as root)") from None
    cmd = [sys.executable, "-m", "fleetslurm.daemon", "--lab"]
    env = dict(os.environ)
    if os.geteuid() == 0 and pw.pw_uid != 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise FleetError("`setpriv` (util-linux) is needed to start the controller as "
                             f"{name}; or use systemd: systemctl start fleetslurm")
        cmd = [setpriv, f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", *cmd]
        env.update(HOME=pw.pw_dir, USER=name, LOGNAME=name)
    elif os.geteuid() != pw.pw_uid:
        raise FleetError(f"the lab's controller runs as {name}: run `fleetslurm lab start` "
                         f"as root or as {name}")
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env, cwd="/")
    text = proc.stderr.decode(errors="replace").strip()
    if proc.returncode == 3:
        say("the lab's controller runs already")
        return 0
    if proc.returncode != 0:
        raise ControllerError(text or f"the lab's controller failed to start; see "
                              f"{where.state().log_file}")
    say(f"lab controller started as {name}; socket {where.socket}, "
        f"log {where.state().log_file}")
    return 0


def _connect(where: LabPaths):
    from .rpc import _connect_socket

    return _connect_socket(where.socket, where.listener_uids())


def stop(say: Say = print) -> int:
    where = _lab()
    try:
        with _connect(where) as c:
            pid = c.call("ping")["pid"]
            c.call("shutdown")
    except ControllerError:
        say("the lab's controller is not running")
        return 0
    from .cli.common import wait_gone

    wait_gone(pid)
    say(f"lab controller {pid} stopped")
    return 0


def status(say: Say = print) -> int:
    """0 when the lab's controller answers, 1 (with what to do) when not."""
    import time

    where = _lab()
    try:
        with _connect(where) as c:
            info = c.call("ping")
            nodes = c.call("nodes")["nodes"]
    except ControllerError as exc:
        say(f"the lab's controller is not running: {exc}")
        say("start it: systemctl start fleetslurm (or `fleetslurm lab start` as root)")
        return 1
    say(f"lab controller running: pid {info['pid']}, up {time.time() - info['started']:.0f} s, "
        f"as {where.service_user()}, config {info['config']}, state {info['home']}, "
        f"socket {where.socket}")
    for n in nodes:
        extra = f" ({n['reason']})" if n.get("reason") else ""
        say(f"  {n['name']}: {n['state']}{extra}")
    return 0


def run() -> int:
    """The controller in the foreground (systemd's ExecStart)."""
    from .daemon import main

    return main(["--lab", "--foreground"])


def bridge() -> int:
    """Join stdin/stdout to the lab's socket until either side ends: what
    ``ssh head fleetslurm lab bridge`` runs for a remote client."""
    import select
    import socket

    from .rpc import Target, _connect_shared

    try:
        where = _lab()
        client = _connect_shared(Target("lab", where.state(), where.listener_uids()))
    except FleetError as exc:
        host = socket.gethostname()
        sys.stderr.write(f"fleetslurm lab bridge on {host}: {exc}\n")
        return 1
    sock = client._sock
    sock.setblocking(True)
    fds = [0, sock.fileno()]
    try:
        while fds:
            ready, _, _ = select.select(fds, [], [])
            for fd in ready:
                if fd == 0:
                    data = os.read(0, 1 << 16)
                    if not data:
                        sock.shutdown(socket.SHUT_WR)
                        fds.remove(0)
                    else:
                        sock.sendall(data)
                else:
                    data = sock.recv(1 << 16)
                    if not data:
                        return 0
                    view = memoryview(data)
                    while view:
                        view = view[os.write(1, view):]
    except (BrokenPipeError, ConnectionResetError):
        return 0
    finally:
        client.close()
    return 0

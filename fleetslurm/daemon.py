"""Start the controller: ``python -m fleetslurm.daemon [--config PATH] [--foreground]``.

Without ``--foreground`` the process forks; the parent waits until the child
has validated the config, opened the store, taken the pid-file lock and bound
the socket, then exits 0 (ready), 1 (an error, printed on stderr) or 3 (a
controller already runs). The lock on the pid file is held for the
controller's lifetime, so two controllers can never share one state directory.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import sys
import time
from typing import Optional

__all__ = ["main", "run"]


def _prepare(config_arg: Optional[str], lab: bool = False):
    from .config import find_config, load_config, default_config
    from .config_in_force import identity, record
    from .ctld.loop import Controller
    from .paths import lab_paths, private_dir, state_paths
    from .cli.thin_serve import handler as thin_handler
    from .rpc import Server

    if lab:  # the lab's controller: its state, its config, a socket for everyone
        where = lab_paths()
        _check_lab_user(where)
        # its state, logs and spool: the service account's only (a job's own
        # files follow the submitter's umask, which travels with the job)
        os.umask(0o077)
        paths = where.state()
        config_arg = str(where.config)
    else:
        paths = state_paths()
    private_dir(paths.home)
    lock = open(paths.pid_file, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        return None
    path = find_config(config_arg)
    ident = identity(path)  # before reading it: a later edit is then a change
    config = default_config() if path is None else load_config(path)
    ctl = Controller(config, paths)
    server = Server(paths.socket, thin_handler(ctl.submit_request, not lab), public=lab,
                    identity=True)
    record(paths, ident)  # what commands compare their own lookup with
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return ctl, server, lock


def _check_lab_user(where) -> None:
    """The lab's controller runs as the lab's service account (lab.json)."""
    import pwd

    from .errors import ConfigError

    if not where.configured():
        raise ConfigError(f"no lab here: {where.config} does not exist; set one up with "
                          "`fleetslurm lab init --config FILE` (as root)")
    name = where.service_user()
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        raise ConfigError(f"the lab's service account {name!r} ({where.lab_file}) does not "
                          "exist; run `fleetslurm lab init` again as root") from None
    if os.geteuid() != uid:
        raise ConfigError(f"the lab's controller runs as {name} (uid {uid}), not as uid "
                          f"{os.geteuid()}: start it with `fleetslurm lab start` as root, or "
                          "`systemctl start fleetslurm`")


def run(ctl, server, started: bool = False) -> None:
    stop = lambda *_: ctl.stop()  # noqa: E731
    # a mask inherited from whoever started us (a command holding SIGTERM)
    # must not make the controller unstoppable
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # a big output's copy keeps paramiko's reader thread busy in Python, and
    # a request thread waiting for the interpreter waits up to the switch
    # interval at each turn: with the default 5 ms a query that takes 0.7 ms
    # idle took 1.45 ms during a 512 MiB copy, with 1 ms 0.8 ms
    sys.setswitchinterval(0.001)
    ctl.log(f"controller {os.getpid()} starting; config "
            f"{ctl.config.source or '(embedded default)'}; state {ctl.paths.home}")
    if not started:
        ctl.start(time.time())
    server.start()
    try:
        ctl.serve()
    finally:
        server.close()
        ctl.close()
        ctl.log("controller stopped")


def main(argv: Optional[list[str]] = None) -> int:
    from .errors import FleetError

    parser = argparse.ArgumentParser(prog="fleetslurm-controller")
    parser.add_argument("--config")
    parser.add_argument("--foreground", action="store_true")
    parser.add_argument("--lab", action="store_true",
                        help="the lab's controller (fleetslurm lab run|start)")
    opts = parser.parse_args(argv)
    if opts.foreground:
        try:
            prepared = _prepare(opts.config, opts.lab)
        except FleetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if prepared is None:
            print("error: a controller is already running for "
                  + ("this lab" if opts.lab else "this FLEETSLURM_HOME"), file=sys.stderr)
            return 3
        run(prepared[0], prepared[1])
        return 0

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(wfd)
        with os.fdopen(rfd, "rb") as r:
            status = r.read().decode(errors="replace")
        os.waitpid(pid, os.WNOHANG)
        if status.startswith("ok"):
            return 0
        if status.startswith("busy"):
            return 3
        print(status.removeprefix("err:") or "error: the controller died while starting",
              file=sys.stderr)
        return 1
    # child: become the daemon
    os.close(rfd)
    os.setsid()
    if os.fork():
        os._exit(0)
    try:
        prepared = _prepare(opts.config, opts.lab)
    except FleetError as exc:
        os.write(wfd, f"err:error: {exc}".encode())
        os._exit(1)
    except Exception as exc:  # a bug: say it, with the log for the details
        os.write(wfd, f"err:error: the controller failed to start: {type(exc).__name__}: {exc}"
                 .encode())
        os._exit(1)
    if prepared is None:
        os.write(wfd, b"busy")
        os._exit(3)
    ctl, server, lock = prepared
    log = os.open(ctl.paths.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    os.chdir("/")
    try:
        ctl.start(time.time())
    except Exception as exc:
        os.write(wfd, f"err:error: the controller failed to start: {exc}".encode())
        os._exit(1)
    os.write(wfd, b"ok")
    os.close(wfd)
    try:
        profile = os.environ.get("FLEETSLURM_PROFILE")
        if profile:  # a developer's tool: cProfile the controller's life into this file
            import cProfile

            cProfile.runctx("run(ctl, server, True)", globals(),
                            {"run": run, "ctl": ctl, "server": server}, profile)
        else:
            run(ctl, server, started=True)
    finally:
        try:
            os.unlink(ctl.paths.pid_file)
        except OSError:
            pass
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())

"""Administrative commands (typer): ``fleetslurm controller|nodes|tail|explain|dashboard|top``."""

from __future__ import annotations

import os
import sys
import time
from typing import Optional

import typer

from ..errors import FleetError, StoreError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="fleetslurm: a SLURM-shaped workload manager for a few machines over SSH.\n\n"
                       "SLURM's commands: fleetslurm sbatch|squeue|sinfo|scancel|sacct|"
                       "scontrol|srun|sacctmgr|sshare ...")
controller_app = typer.Typer(no_args_is_help=True, help="Start, stop or inspect the controller.")
app.add_typer(controller_app, name="controller")


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


@controller_app.command("start")
def controller_start(config: Optional[str] = typer.Option(None, help="fleet_config.json to use")) -> None:
    """Start the controller (if none runs) and print its pid."""
    from ..paths import find_config
    from ..rpc import ensure_controller

    try:
        path = find_config(config)
        with ensure_controller(str(path) if path else None) as c:
            info = c.call("ping")
    except FleetError as exc:
        _fail(exc)
    typer.echo(f"controller running (pid {info['pid']}, config "
               f"{info['config'] or '(embedded default)'}, state {info['home']})")


@controller_app.command("stop")
def controller_stop() -> None:
    """Stop the controller. Running jobs keep running and are reconciled at the next start."""
    from ..paths import state_paths
    from ..rpc import connect

    paths = state_paths()
    try:
        with connect(paths) as c:
            pid = c.call("ping")["pid"]
            c.call("shutdown")
    except StoreError as exc:  # a socket that is not ours: say so, not "none runs"
        _fail(exc)
    except FleetError:
        typer.echo("no controller running")
        return
    from .common import wait_gone

    wait_gone(pid)
    typer.echo(f"controller {pid} stopped")


@controller_app.command("status")
def controller_status() -> None:
    """Say whether a controller runs, with its pid, config and machines."""
    from ..paths import state_paths
    from ..rpc import connect

    paths = state_paths()
    try:
        with connect(paths) as c:
            info = c.call("ping")
            nodes = c.call("nodes")["nodes"]
    except StoreError as exc:
        _fail(exc)
    except FleetError:
        typer.echo(f"no controller running (state {paths.home})")
        raise typer.Exit(1)
    up = time.time() - info["started"]
    typer.echo(f"controller running: pid {info['pid']}, up {up:.0f} s, config "
               f"{info['config'] or '(embedded default)'}, state {info['home']}, "
               f"log {paths.log_file}")
    for n in nodes:
        extra = f" ({n['reason']})" if n.get("reason") else ""
        typer.echo(f"  {n['name']}: {n['state']}{extra}")


config_app = typer.Typer(no_args_is_help=True, help="Write and inspect fleet_config.json.")
app.add_typer(config_app, name="config")


@config_app.command("init")
def config_init(path: Optional[str] = typer.Argument(
        None, help="where to write it (default: $FLEETSLURM_CONFIG, else "
                   "$FLEETSLURM_HOME/fleet_config.json, which every command finds)")) -> None:
    """Write the config template (two example machines to edit) where the
    config lookup finds it, and print its path. Never overwrites a file."""
    from ..config_in_force import TEMPLATE
    from ..paths import private_dir, state_paths

    if path:
        target = os.path.abspath(os.path.expanduser(path))
    elif os.environ.get("FLEETSLURM_CONFIG"):
        target = os.path.abspath(os.path.expanduser(os.environ["FLEETSLURM_CONFIG"]))
    else:
        home = state_paths().home
        private_dir(home)
        target = str(home / "fleet_config.json")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        _fail(FleetError(f"{target} exists already: edit it, or name another path "
                         "(fleetslurm config init PATH)"))
    except OSError as exc:
        _fail(FleetError(f"{target}: cannot write it: {exc.strerror}"))
    with os.fdopen(fd, "wb") as f:
        f.write(TEMPLATE.read_bytes())
    typer.echo(target)


@config_app.command("show")
def config_show() -> None:
    """Say which config the running controller uses and which one this
    directory's lookup finds."""
    from ..config_in_force import describe, in_force, mismatch
    from ..paths import find_config, state_paths

    paths = state_paths()
    try:
        found = find_config()
    except FleetError as exc:
        _fail(exc)
    from ..rpc import connect

    typer.echo(f"lookup finds: {describe(str(found) if found else None)}")
    try:
        connect(paths).close()
    except StoreError as exc:
        _fail(exc)
    except FleetError:
        typer.echo(f"no controller running (state {paths.home})")
        return
    running = in_force(paths) or {}
    typer.echo(f"controller runs with: {describe(running.get('path'))}")
    line = mismatch(paths, found)
    if line:
        typer.echo(line)


nodes_app = typer.Typer(no_args_is_help=True, help="Check and trust the fleet's machines.")
app.add_typer(nodes_app, name="nodes")


def _config_and_paths(config: Optional[str]):
    from ..config import resolve_config
    from ..paths import private_dir, state_paths

    paths = state_paths()
    private_dir(paths.home)
    return resolve_config(config), paths


@nodes_app.command("check")
def nodes_check(config: Optional[str] = typer.Option(None, help="fleet_config.json to use"),
                timeout: float = typer.Option(30.0, help="seconds per machine")) -> None:
    """One line per machine: reachable, authenticated, python3, workdir, disk; and the fix."""
    from .nodes_cmd import check

    try:
        cfg, paths = _config_and_paths(config)
        code = check(cfg, paths, timeout=timeout)
    except FleetError as exc:
        _fail(exc)
    raise typer.Exit(code)


@nodes_app.command("trust")
def nodes_trust(nodes: Optional[list[str]] = typer.Argument(None, help="machines to trust"),
                all_nodes: bool = typer.Option(False, "--all", help="every machine in the config"),
                yes: bool = typer.Option(False, "--yes", "-y", help="record without asking"),
                config: Optional[str] = typer.Option(None, help="fleet_config.json to use")) -> None:
    """Show machines' SSH host key fingerprints and record them in known_hosts."""
    from .nodes_cmd import trust_many

    try:
        cfg, paths = _config_and_paths(config)
        code = trust_many(cfg, paths, list(nodes or []), all_nodes, yes)
    except FleetError as exc:
        _fail(exc)
    raise typer.Exit(code)


@app.command("explain")
def explain(job: str) -> None:
    """Why a job is pending, or where it runs."""
    from .common import client

    try:
        with client() as c:
            typer.echo(c.call("explain", id=job))
    except FleetError as exc:
        _fail(exc)


@app.command("tail")
def tail(job: str, follow: bool = typer.Option(False, "--follow", "-f"),
         stderr: bool = typer.Option(False, "--stderr", help="show stderr instead")) -> None:
    """Print a job's output, also while it runs on another machine."""
    from ..errors import ControllerLost
    from .common import client

    offset = 0
    c = None  # one connection while it lasts (over ssh:// a new one is a new login)
    try:
        while True:
            if c is None:
                c = client()
            try:
                reply = c.call("read_output", id=job, offset=offset,
                               which="stderr" if stderr else "stdout")
            except ControllerLost:
                c.close()
                c = client()  # closed while idle, say: once more on a new one
                reply = c.call("read_output", id=job, offset=offset,
                               which="stderr" if stderr else "stdout")
            data = reply["data"]
            if data:
                sys.stdout.write(data)
                sys.stdout.flush()
                offset = reply["offset"]
            if not follow or reply["finished"]:
                if reply["finished"] and follow and data:
                    continue
                break
            time.sleep(0.5)
    except FleetError as exc:
        _fail(exc)
    finally:
        if c is not None:
            c.close()


@app.command("dashboard")
def dashboard(port: int = typer.Option(8787, min=0, max=65535,
                                       help="port to listen on (0: any free one)"),
              bind: str = typer.Option("127.0.0.1", help="address to listen on"),
              open_: bool = typer.Option(False, "--open", help="open it in a browser"),
              read_only: bool = typer.Option(False, "--read-only",
                                             help="no buttons: look, do not touch")) -> None:
    """A web page of the fleet, the queue, each job and the history (live)."""
    try:
        from ..dashboard.server import serve
    except ImportError as exc:  # a partial install: say what is missing
        _fail(RuntimeError(f"the dashboard needs {exc.name}; pip install 'fleetslurm'"))
    try:
        serve(port=port, bind=bind, open_browser=open_, read_only=read_only)
    except FleetError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        pass


@app.command("top")
def top(interval: float = typer.Option(1.0, "--interval", "-i", help="seconds between refreshes")
        ) -> None:
    """A live terminal view of the machines and the queue; q or Ctrl-C quits."""
    from ..dashboard.top import run_top

    try:
        run_top(interval)
    except FleetError as exc:
        _fail(exc)


shims_app = typer.Typer(no_args_is_help=True, help=(
    "Install or remove SLURM-named commands (sbatch, squeue, ..., sacctmgr, sshare) that "
    "run fleetslurm's. Put the directory first on PATH: scripts and client libraries "
    "(submitit, dask-jobqueue, ...) then drive fleetslurm unchanged."))
app.add_typer(shims_app, name="shims")


@shims_app.command("install")
def shims_install(directory: str = typer.Argument(..., help="a directory to put first on PATH")
                  ) -> None:
    """Write the commands into DIRECTORY (never over a file fleetslurm did not write)."""
    from ..shims import install_shims, shadowing_commands

    try:
        written = install_shims(directory)
    except FleetError as exc:
        _fail(exc)
    for path in written:
        typer.echo(str(path))
    d = written[0].parent
    on_path, earlier = shadowing_commands(d)
    fix = f"put it first: export PATH={d}:$PATH"
    for where, names in earlier.items():
        typer.echo(f"warning: SLURM's own {', '.join(names)} in {where} come"
                   f"{'s' if len(names) == 1 else ''} before {d} on PATH and would run "
                   f"instead; {fix}", err=True)
    if not on_path and not earlier:
        typer.echo(f"note: {d} is not on PATH; {fix}", err=True)


@shims_app.command("uninstall")
def shims_uninstall(directory: str = typer.Argument(..., help="where `shims install` wrote them")
                    ) -> None:
    """Remove the commands fleetslurm wrote into DIRECTORY, and nothing else."""
    from ..shims import uninstall_shims

    try:
        removed, left = uninstall_shims(directory)
    except FleetError as exc:
        _fail(exc)
    for path in removed:
        typer.echo(f"removed {path}")
    for path in left:
        typer.echo(f"left {path}: not written by fleetslurm", err=True)


from .databench_cmd import app as _databench_app  # noqa: E402
app.add_typer(_databench_app, name="databench")
from .lab_cmd import app as _lab_app  # noqa: E402
app.add_typer(_lab_app, name="lab")


def app_main(args: list[str]) -> int:
    try:
        app(args=args, prog_name="fleetslurm", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0

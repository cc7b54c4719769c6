"""``fleetslurm lab init|run|start|stop|status|bridge``: one controller for a lab."""

from __future__ import annotations

import typer

from ..errors import FleetError

app = typer.Typer(no_args_is_help=True, help=(
    "One queue for every user of this machine: a controller run by a service account, "
    "reached by every local user (and over ssh:// from other workstations)."))


def _do(body) -> None:
    """Run ``body(say=...)``; a FleetError is one line on stderr and exit 1."""
    try:
        code = body(say=typer.echo)
    except FleetError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    if isinstance(code, int) and code:
        raise typer.Exit(code)


@app.command("init")
def lab_init(config: str = typer.Option(..., help="the lab's fleet_config.json to install"),
             service_user: str = typer.Option("fleetslurm", help=(
                 "the account the controller runs as (created when missing; root is "
                 "allowed)"))) -> None:
    """(root) Install the config as /etc/fleetslurm/fleet_config.json, the service
    account, /var/lib/fleetslurm (0700), /run/fleetslurm and a systemd unit."""
    from ..lab import init

    _do(lambda say: init(config, service_user, say=say) and 0)


@app.command("run")
def lab_run() -> None:
    """The lab's controller in the foreground (what the systemd unit runs)."""
    from ..lab import run

    raise typer.Exit(run())


@app.command("start")
def lab_start() -> None:
    """Start the lab's controller in the background, as its service account."""
    from ..lab import start

    _do(start)


@app.command("stop")
def lab_stop() -> None:
    """Stop the lab's controller (root or the service account). Jobs keep running."""
    from ..lab import stop

    _do(stop)


@app.command("status")
def lab_status() -> None:
    """Whether the lab's controller runs, with its machines; exit 1 when not."""
    from ..lab import status

    _do(status)


@app.command("bridge")
def lab_bridge() -> None:
    """Join stdin/stdout to the lab's socket (what ssh:// runs on the head)."""
    from ..lab import bridge

    raise typer.Exit(bridge())

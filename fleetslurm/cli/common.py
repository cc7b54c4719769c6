"""What every SLURM-named command shares: the controller connection and the
one place that turns fleetslurm errors into SLURM-shaped messages."""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # (annotations only: typing is some 4 ms of a command's start)
    from typing import Callable, NoReturn, Optional

__all__ = ["client", "run", "die", "warn", "iterate_seconds", "wait_gone", "VERSION_LINE",
           "help_or_version"]

#: what every command's --version prints (SLURM's version, then ours)
VERSION_LINE = "slurm 22.05.8 (fleetslurm)\n"


def help_or_version(opts: dict, usage: str, help_text: Optional[str] = None) -> bool:
    """Print what ``--help``/``--usage`` (first) or ``--version`` ask for, as
    SLURM's commands do; True when one did (the command then exits 0)."""
    if opts.get("help") or opts.get("usage"):
        sys.stdout.write(help_text if help_text is not None and opts.get("help") else usage)
        return True
    if opts.get("version"):
        sys.stdout.write(VERSION_LINE)
        return True
    return False


def client():
    """A connection to the controller, started first when none runs (but not
    from inside a job on another machine: there FLEETSLURM_CONTROLLER names
    the job's socket at the machine's agent, node/agent/injob.py)."""
    from ..paths import find_config
    from ..rpc import connect, ensure_controller

    if os.environ.get("FLEETSLURM_STEPS_DIR") and not os.environ.get(
            "FLEETSLURM_CONTROLLER_HOST"):
        from ..errors import ControllerError

        try:
            return connect()
        except ControllerError as exc:
            raise ControllerError(
                f"{exc}: this job cannot reach the controller that started it; inside "
                "a job its commands talk to the machine's agent, which passes them on "
                "(is the machine's link to the controller up? `sinfo` on the submit "
                "host; the agent's log is agent.log in the machine's workdir)") from None
    from ..rpc import target

    tgt = target()
    if tgt.kind != "personal":  # the lab's (or a named) controller: never started here
        return ensure_controller()
    path = find_config()
    c = ensure_controller(str(path) if path else None, tgt.paths)
    _say_config(c, path)
    return c


def _say_config(c, found) -> None:
    """Say which config the controller uses when this command started it (to
    a person at a terminal: scripts read SLURM's own lines), or when the
    running one uses another file than this command's lookup finds."""
    from ..config_in_force import describe, mismatch
    from ..paths import state_paths

    if c.started:
        if sys.stderr.isatty():
            sys.stderr.write(f"fleetslurm: started a controller with {describe(found and str(found))}"
                             f" (state in {state_paths().home})\n")
        return
    line = mismatch(state_paths(), found)
    if line:
        sys.stderr.write(f"fleetslurm: {line}\n")


#: messages SLURM prints without the command's name: the API's errors and
#: parse_time's complaint
_BARE = ("slurm_load_jobs error:", "Invalid time specification")


def warn(prog: str, message: str) -> None:
    """Write ``message`` to stderr as SLURM's commands do, line by line; a
    message that ends with a newline ends with an empty line (squeue's
    "Valid job states include: ...\n")."""
    blank = message.endswith("\n")
    for line in (message[:-1] if blank else message).split("\n"):
        if line.startswith(_BARE):
            sys.stderr.write(line + "\n")  # SLURM prints these bare
        elif line.startswith(f"{prog}: "):
            sys.stderr.write(line + "\n")
        elif line.startswith(("error: ", "fatal: ")):
            sys.stderr.write(f"{prog}: {line}\n")
        else:
            sys.stderr.write(f"{prog}: error: {line}\n")
    if blank:
        sys.stderr.write("\n")


def die(prog: str, message: str, code: int = 1) -> NoReturn:
    warn(prog, message)
    sys.exit(code)


def run(prog: str, body: Callable[[list[str]], Optional[int]], argv: list[str]) -> int:
    """Run a command body; FleetErrors become ``prog: error: ...`` and exit 1.
    Tracebacks only with FLEETSLURM_DEBUG=1."""
    from ..errors import FleetError, UsageError

    try:
        return int(body(argv) or 0)
    except UsageError as exc:
        # sbatch and srun exit 255 on getopt's complaints, the others 1
        code = exc.code if exc.code is not None else (
            255 if exc.hint and prog in ("sbatch", "srun") else 1)
        if exc.hint:
            # getopt's own wording: "sbatch: unrecognized option '--foo'"
            sys.stderr.write(f"{prog}: {exc}\n")
            sys.stderr.write(f'Try "{prog} --help" for more information\n')
        else:
            warn(prog, str(exc))
        return code
    except FleetError as exc:
        if os.environ.get("FLEETSLURM_DEBUG"):
            raise
        warn(prog, str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def iterate_seconds(value: object, complaint: str, prog: str) -> "int | None":
    """``-i SECONDS`` of squeue and sinfo: a whole number above 0, else
    ``complaint`` (with ``{}`` for the value) as the command's error."""
    if value is None:
        return None
    text = str(value)
    if not text.isdigit() or int(text) <= 0:
        from ..errors import UsageError

        raise UsageError(complaint.format(text), prog=prog)
    return int(text)


def wait_gone(pid: int, timeout: float = 30.0) -> bool:
    """Wait until process ``pid`` has exited; False when it still runs."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False

"""What every SLURM-named command shares: the controller connection and the
one place that turns fleetslurm errors into SLURM-shaped messages."""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # (annotations only: typing is some 4 ms of a command's start)
    from typing import Callable, NoReturn, Optional

__all__ = ["Here", "client", "run", "report", "die", "warn", "iterate_seconds", "wait_gone", "VERSION_LINE",
           "help_or_version", "read_command"]

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


class Here:
    """What a command body reads and writes, for this process: its
    environment, directory, umask, files and standard streams, and
    :func:`client`. The controller runs the same bodies for a thin client
    (``cli/thin_serve.py``) with the client's own, sent in its request, so
    both paths print the same."""

    def __init__(self) -> None:
        self.environ = os.environ
        self.out = sys.stdout.write
        self.err = sys.stderr.write
        self.client = client

    def cwd(self) -> str:
        return os.getcwd()

    def umask(self) -> int:
        from ..umask import current_umask

        return current_umask()

    def nice(self) -> int:
        return os.getpriority(os.PRIO_PROCESS, 0)

    def uid(self) -> int:
        return os.getuid()

    def read(self, path: "str | None") -> bytes:
        """The bytes of the file ``path`` (None: standard input); OSError
        when it cannot be read."""
        if path is None:
            return sys.stdin.buffer.read()
        with open(path, "rb") as f:
            return f.read()

    def here_only(self, what: str) -> None:
        """Where a thin client's command reaches something only a command
        running in the client's own process does (a wait, the local time):
        here, nothing to do."""


#: messages SLURM prints without the command's name: the API's errors and
#: parse_time's complaint
_BARE = ("slurm_load_jobs error:", "Invalid time specification")


def read_command(prog: str, argv: list[str], here: "Optional[Here]" = None
                 ) -> "tuple[Here, dict, list[str]]":
    """``here`` (this process's when None), and ``prog``'s options and
    positional words from ``argv`` and here's environment (SLURM's input
    variables), options SLURM has but fleetslurm does not refused."""
    from ..slurm.option_env import command_options
    from ..slurm.option_support import refuse_unsupported

    here = Here() if here is None else here
    opts, positionals = command_options(prog, argv, here.environ)
    refuse_unsupported(prog, opts, argv=argv, environ=here.environ)
    return here, opts, positionals


def warn(prog: str, message: str, write: "Optional[Callable[[str], object]]" = None) -> None:
    """Write ``message`` to stderr (or to ``write``: a thin client's, see
    cli/thin_serve.py) as SLURM's commands do, line by line; a message that
    ends with a newline ends with an empty line (squeue's "Valid job states
    include: ...\n")."""
    write = write or sys.stderr.write
    blank = message.endswith("\n")
    for line in (message[:-1] if blank else message).split("\n"):
        if line.startswith(_BARE):
            write(line + "\n")  # SLURM prints these bare
        elif line.startswith(f"{prog}: "):
            write(line + "\n")
        elif line.startswith(("error: ", "fatal: ")):
            write(f"{prog}: {line}\n")
        else:
            write(f"{prog}: error: {line}\n")
    if blank:
        write("\n")


def die(prog: str, message: str, code: int = 1) -> NoReturn:
    warn(prog, message)
    sys.exit(code)


def run(prog: str, body: Callable[[list[str]], Optional[int]], argv: list[str]) -> int:
    """Run a command body; FleetErrors become ``prog: error: ...`` and exit 1.
    Tracebacks only with FLEETSLURM_DEBUG=1."""
    from ..errors import FleetError, UsageError

    try:
        return int(body(argv) or 0)
    except FleetError as exc:
        if os.environ.get("FLEETSLURM_DEBUG") and not isinstance(exc, UsageError):
            raise
        return report(prog, exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def report(prog: str, exc: Exception, write: "Optional[Callable[[str], object]]" = None) -> int:
    """Say what a FleetError says on stderr (or ``write``), as SLURM's
    command ``prog`` would; the exit status to end with."""
    from ..errors import UsageError

    write = write or sys.stderr.write
    if isinstance(exc, UsageError):
        # sbatch and srun exit 255 on getopt's complaints, the others 1
        code = exc.code if exc.code is not None else (
            255 if exc.hint and prog in ("sbatch", "srun") else 1)
        if exc.hint:
            # getopt's own wording: "sbatch: unrecognized option '--foo'"
            write(f"{prog}: {exc}\n")
            write(f'Try "{prog} --help" for more information\n')
        else:
            warn(prog, str(exc), write)
        return code
    warn(prog, str(exc), write)
    return 1


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

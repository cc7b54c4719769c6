"""fleetslurm's exceptions: one root, a short tree.

::

    FleetError
    ├── InvalidValue          a malformed time, memory size, hostlist, pattern ... (also a ValueError)
    ├── UsageError            a bad command line (unknown option, missing argument)
    ├── ConfigError           fleet_config.json is unreadable or invalid
    ├── SubmitError           a job that can never run (no node fits, unknown partition)
    ├── JobError              a request about an existing job failed
    │   ├── InvalidJobId      no such job
    │   ├── AccessDenied      the caller does not own the job
    │   ├── RemoteJobError    a Python job failed remotely or ended without a result
    │   └── JobTimeout        waiting for a job took longer than the caller allowed
    ├── StoreError            the state store or the state directory cannot be used
    ├── ControllerError       the controller cannot be reached or answered badly
    │   └── ControllerLost    the connection ended before the answer came
    ├── TransportError        a machine cannot be reached or used
    │   ├── NodeUnreachable   network/connection failure
    │   ├── FileMissing       a file asked for is not on the machine
    │   ├── FileUnreadable    a file on the machine that cannot be read there
    │   ├── TransferCorrupt   a copied file does not match the machine's (size or sha256)
    │   ├── AuthenticationFailed
    │   └── HostKeyError      unknown or changed host key
    └── SerializationError    a payload has the wrong magic/version or cannot be read

Every message says what happened, to which job or machine, and what to do next.
"""

from __future__ import annotations

__all__ = [
    "FleetError",
    "InvalidValue",
    "UsageError",
    "ConfigError",
    "SubmitError",
    "JobError",
    "InvalidJobId",
    "AccessDenied",
    "RemoteJobError",
    "JobTimeout",
    "StoreError",
    "ControllerError",
    "ControllerLost",
    "TransportError",
    "NodeUnreachable",
    "FileMissing",
    "FileUnreadable",
    "TransferCorrupt",
    "AuthenticationFailed",
    "HostKeyError",
    "WorkdirTaken",
    "SerializationError",
]


class FleetError(Exception):
    """Root of every error fleetslurm raises on purpose."""


class InvalidValue(FleetError, ValueError):
    """A value in SLURM's language (time, memory, hostlist, ...) is malformed."""


class UsageError(FleetError):
    """A command line is malformed. ``prog`` is the command (``sbatch``...)."""

    def __init__(self, message: str, prog: str = "fleetslurm", hint: bool = False,
                 code: "int | None" = None):
        super().__init__(message)
        self.prog = prog
        #: whether to print SLURM's 'Try "prog --help" for more information' line
        self.hint = hint
        #: the exit status SLURM uses for this error (None: the command's default)
        self.code = code


class ConfigError(FleetError):
    """fleet_config.json cannot be read or does not validate."""


class SubmitError(FleetError):
    """A job was refused at submission."""


class JobError(FleetError):
    """A request about an existing job failed."""


class InvalidJobId(JobError):
    """No job with this id is known."""


class AccessDenied(JobError):
    """The caller may not act on another user's job."""


class RemoteJobError(JobError):
    """A Python job (Executor, slurmify) failed where it ran, or ended without
    a result (cancelled, timed out, out of memory, node failure).

    The remote failure comes back as text, never as a pickled exception:
    ``remote_type`` (e.g. ``"ValueError"``), ``remote_message`` and
    ``remote_traceback``; the message holds all three. ``state`` is the job's
    SLURM state."""

    def __init__(self, message: str, job_id: str = "", state: str = "",
                 remote_type: str = "", remote_message: str = "",
                 remote_traceback: str = "") -> None:
        super().__init__(message)
        self.job_id = job_id
        self.state = state
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback

    @classmethod
    def from_failure(cls, job_id: str, state: str, failure: dict) -> "RemoteJobError":
        """From the runner's failure record (``type``, ``message``, ``traceback``)."""
        rtype = str(failure.get("type") or "Exception")
        rmsg = str(failure.get("message") or "")
        tb = str(failure.get("traceback") or "")
        text = f"job {job_id} failed remotely: {rtype}: {rmsg}"
        if tb:
            text += "\n--- remote traceback ---\n" + tb.rstrip("\n")
        return cls(text, job_id, state, rtype, rmsg, tb)

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.job_id, self.state, self.remote_type,
                             self.remote_message, self.remote_traceback))


class JobTimeout(JobError, TimeoutError):
    """Waiting for a job (``Job.result(timeout=...)``, ``wait``) took longer than
    the caller allowed; the job itself goes on."""


class StoreError(FleetError):
    """The state store (SQLite) failed, or the state directory (or the control
    socket's) cannot be used: another user's, or out of reach."""


class ControllerError(FleetError):
    """The controller cannot be reached, or its answer cannot be understood."""


class ControllerLost(ControllerError):
    """The connection to the controller ended before its answer came (it
    died, or was stopped): the request may or may not have been carried out."""


class TransportError(FleetError):
    """A machine cannot be reached or used. ``node`` names it."""

    def __init__(self, message: str, node: str | None = None):
        super().__init__(message)
        self.node = node


class NodeUnreachable(TransportError):
    """The machine does not answer (connection refused, timeout, dropped link)."""


class FileMissing(TransportError):
    """The file asked for does not exist on the machine (a job that wrote
    nothing there, say)."""


class FileUnreadable(TransportError):
    """The file is on the machine, over a working link, but cannot be read
    there (its permissions, a directory in its place)."""


class TransferCorrupt(TransportError):
    """A copied file's size or sha256 differs from what the other end counted:
    the copy is discarded and made again from the start."""


class AuthenticationFailed(TransportError):
    """The machine answered but refused our credentials."""


class HostKeyError(TransportError):
    """The machine's host key is unknown or differs from the recorded one."""


class WorkdirTaken(TransportError):
    """The machine's workdir belongs to another fleet (another controller):
    sharing it would let each kill the other's jobs."""


class SerializationError(FleetError):
    """A serialized payload has the wrong magic or version, or is corrupt."""


def internal_error(exc: BaseException) -> ControllerError:
    """A bug's exception as the ControllerError a client is answered with;
    call it in the ``except`` that caught ``exc`` (the traceback goes to the
    controller's log, stderr, so the bug can be found)."""
    import traceback

    traceback.print_exc()
    return ControllerError(f"internal error in the controller: {type(exc).__name__}: {exc}")

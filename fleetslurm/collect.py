"""Bring a finished job's output home from a machine without a shared filesystem.

The copy runs in a background thread (SFTP can be slow); when it is done the
controller is told through its inbox, records it, and only then tells the
agent to forget the job's directory, so output is never deleted before it is
safe on the submit host. A copy cut by a lost link is retried at the next
agent hello (the run's directory is still there). A copy that fails another
way (a file on the machine it may not read, an output path on the submit
host it cannot write) lets the job finish, but the agent only moves the
run's directory aside (``WORKDIR/kept/KEY``), and the job's output file and
the controller's log say where.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from .errors import FileMissing, FileUnreadable, TransportError
from .paths import JobPaths

if TYPE_CHECKING:
    from .controller import Controller
    from .transport.base import Transport

__all__ = ["copy_back", "write_inline", "kept_where", "log_kept"]


def copy_back(ctl: "Controller", task: dict, node: str) -> None:
    threading.Thread(target=_copy, args=(ctl, task, node), daemon=True,
                     name=f"collect-{task['task_id']}").start()


def out_modes(task: dict) -> "tuple[int, int]":
    """Modes of an output file sent home and of the directories made for it:
    what the submitter's umask (SLURM_UMASK) gives, 022 when none was recorded."""
    umask = 0o022 if task.get("umask") is None else task["umask"]
    return 0o666 & ~umask, 0o777 & ~umask


def _makedirs(directory: str, mode: "int | None") -> None:
    """Create the missing directories of an output path, each with exactly
    ``mode`` when given (as the job would have, with its umask)."""
    if mode is None:
        os.makedirs(directory, exist_ok=True)
        return
    if os.path.isdir(directory):
        return
    parent = os.path.dirname(directory)
    if parent and parent != directory:
        _makedirs(parent, mode)
    try:
        os.mkdir(directory)
        os.chmod(directory, mode)
    except FileExistsError:
        pass


def _write(path: str, data: bytes, append: bool, mode: int = 0o644,
           dir_mode: "int | None" = None) -> None:
    _makedirs(os.path.dirname(path) or ".", dir_mode)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(path, flags | os.O_EXCL, mode)
        # exactly ``mode``: not masked by the umask of whatever command
        # started this controller (an existing file keeps its mode, as in SLURM)
        os.fchmod(fd, mode)
    except FileExistsError:
        fd = os.open(path, flags, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)


def _keep_dir(ctl: "Controller", task_id: int):
    keep = ctl.paths.output_dir(task_id)
    keep.mkdir(parents=True, exist_ok=True)
    os.chmod(keep, 0o700)
    return keep


def write_inline(ctl: "Controller", task: dict, output: dict) -> str:
    """Write output that came with the `ended` event; "" or what went wrong."""
    import base64

    try:
        append = task.get("open_mode") == "append" or task["restart_count"] > 0
        keep = _keep_dir(ctl, task["task_id"])
        for which in ("stdout", "stderr"):
            if which == "stderr" and (not task["stderr"] or task["stderr"] == task["stdout"]):
                continue
            data = base64.b64decode(output.get(which) or "")
            _write(task[which], data, append, *out_modes(task))
            _write(str(keep / f"{which}.txt"), data, append, 0o600)
    except (OSError, ValueError, TypeError) as exc:
        return f"its output could not be written on this host: {exc}"
    return ""


def _copy(ctl: "Controller", task: dict, node: str) -> None:
    error = kept = ""
    where = node
    try:
        transport = ctl.transport_for(node)
        jp = JobPaths(transport.workdir, task["run_key"])
        where = kept_where(node, jp)
        kept = _copy_files(ctl, transport, task, jp)
        if kept:
            # where the user looks first: the job's own output file
            _write(task["stderr"] or task["stdout"],
                   f"fleetslurm: error: job {task['task_id']}: {kept}; its output is kept "
                   f"on {where}\n".encode("utf-8", "surrogateescape"), True, *out_modes(task))
    except TransportError as exc:
        # a lost link, a failed reconnection: retried when the machine says
        # hello again (the run's directory is still there)
        error = str(exc)
    except OSError as exc:
        # the submit host cannot take it (an unwritable --output directory...)
        kept = f"its output could not be written on this host: {exc}"
    if kept:
        # the job finishes rather than hang in COMPLETING, and the machine
        # keeps the run's directory: nothing is deleted that is not safe here
        log_kept(ctl, task["task_id"], kept, where)
    ctl.inbox.put(("collected", node, task["task_id"], task["run_key"], error, bool(kept)))


def kept_where(node: str, jp: JobPaths) -> str:
    """Where a run's output stays when it cannot come home, for messages."""
    return f"{node} in {jp.kept}"


def log_kept(ctl: "Controller", task_id: int, why: str, where: str) -> None:
    """Tell the controller's log that a job's output stayed on its machine."""
    ctl.log(f"job {task_id}: {why}; its output is kept on {where}: copy it from there")


def _copy_files(ctl: "Controller", transport: "Transport", task: dict, jp: JobPaths) -> str:
    """Copy the run's stdout/stderr (and staged results) home; "" or why a
    file that is on the machine could not be read there. A lost link (or a
    failed reconnection) raises its TransportError, a submit host that
    refuses a file OSError."""
    append = task.get("open_mode") == "append" or task["restart_count"] > 0
    keep = _keep_dir(ctl, task["task_id"])
    pairs = [("stdout", jp.stdout)]
    if task["stderr"] and task["stderr"] != task["stdout"]:
        pairs.append(("stderr", jp.stderr))
    unread = ""
    for which, remote in pairs:
        try:
            data = transport.get_bytes(remote)
        except FileMissing:
            data = b""  # the job wrote nothing there
        except FileUnreadable as exc:  # there, but unreadable (permissions...)
            unread = unread or str(exc)
            continue
        _write(task[which], data, append, *out_modes(task))
        _write(str(keep / f"{which}.txt"), data, append, 0o600)
    from .staging import copy_stage_out

    try:
        copy_stage_out(transport, task)
    except FileUnreadable as exc:
        unread = unread or str(exc)
    return unread

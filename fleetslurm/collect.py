"""Bring a finished job's output home from a machine without a shared filesystem.

The copy runs in a background thread (SFTP can be slow); when it is done the
controller is told through its inbox, records it, and only then tells the
agent to forget the job's directory, so output is never deleted before it is
safe on the submit host. A copy that fails is retried at the next agent hello
(the run's directory is still there).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from .errors import FleetError, NodeUnreachable
from .paths import JobPaths

if TYPE_CHECKING:
    from .controller import Controller

__all__ = ["copy_back", "write_inline"]


def copy_back(ctl: "Controller", task: dict, node: str) -> None:
    threading.Thread(target=_copy, args=(ctl, task, node), daemon=True,
                     name=f"collect-{task['task_id']}").start()


def _write(path: str, data: bytes, append: bool, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
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
            _write(task[which], data, append)
            _write(str(keep / f"{which}.txt"), data, append, 0o600)
    except (OSError, ValueError, TypeError) as exc:
        return f"cannot write its output: {exc}"
    return ""


def _copy(ctl: "Controller", task: dict, node: str) -> None:
    error = ""
    try:
        transport = ctl.transport_for(node)
        jp = JobPaths(transport.workdir, task["run_key"])
        append = task.get("open_mode") == "append" or task["restart_count"] > 0
        keep = _keep_dir(ctl, task["task_id"])
        pairs = [("stdout", jp.stdout)]
        if task["stderr"] and task["stderr"] != task["stdout"]:
            pairs.append(("stderr", jp.stderr))
        for which, remote in pairs:
            try:
                data = transport.get_bytes(remote)
            except NodeUnreachable:
                raise  # the link dropped: retried when the machine says hello again
            except FleetError:
                data = b""  # the job wrote nothing there (or the file is gone)
            _write(task[which], data, append)
            _write(str(keep / f"{which}.txt"), data, append, 0o600)
        from .staging import copy_stage_out

        copy_stage_out(transport, task)
    except NodeUnreachable as exc:
        error = str(exc)  # retried when the machine says hello again
    except (OSError, FleetError) as exc:
        # the submit host cannot take it (an unwritable --output directory...):
        # say so once and let the job finish rather than hang in COMPLETING
        ctl.log(f"job {task['task_id']}: its output could not be written on this host: {exc}")
    ctl.inbox.put(("collected", node, task["task_id"], task["run_key"], error))

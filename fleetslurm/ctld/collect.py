"""Bring a finished job's output home from a machine without a shared filesystem.

The copy runs in a background thread, never on the controller's loop; when
it is done the controller is told through its inbox, records it, and only
then tells the agent to forget the job's directory, so output is never
deleted before it is safe on the submit host. Each file is streamed in
chunks (memory stays bounded whatever its size) into a part file in the
controller's private ``output/<job>/`` directory, verified (size and sha256
against the machine's), and only then written to its place. A copy cut by
a lost link is retried at the next agent hello (the run's directory is
still there) and continues after the bytes already home; the job stays
COMPLETING (and in ``squeue``) until its output is home. A copy that fails
another way (a file on the machine it may not read, an output path on the
submit host it cannot write) lets the job finish, but the agent only moves
the run's directory aside (``WORKDIR/kept/KEY``), and the job's output file
and the controller's log say where.
"""

from __future__ import annotations

import os
import posixpath
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..asowner import as_owner, needs_switch
from ..errors import FileMissing, FileUnreadable, TransferCorrupt, TransportError
from ..paths import JobPaths, write_private
from .inbox import Collected
from .lifecycle import finish_collection
from .staging import has_stage, stage_paths

if TYPE_CHECKING:
    from .context import Context
    from ..transport.base import Transport

__all__ = ["copy_back", "write_inline", "kept_where", "log_kept", "fetch", "part_file"]


def copy_back(ctx: "Context", task: dict, node: str) -> None:
    """Start bringing a run's output home in a thread; a run whose copy is
    under way is not copied twice at once: that copy, should it fail, tries
    once more (the hello that asked again will not come back). A run
    reported ended twice (in the agent's hello, then as an `ended` event) is
    so never appended twice."""
    busy, lock = ctx.collecting, ctx.collecting_lock
    with lock:
        if task["run_key"] in busy:
            busy[task["run_key"]] = True
            return
        busy[task["run_key"]] = False
    threading.Thread(target=_copy, args=(ctx, task, node), daemon=True,
                     name=f"collect-{task['task_id']}").start()


def part_file(keep: Path, run_key: str, name: str) -> str:
    """Where a run's file is received before it goes to its place: a stable
    name (a later copy continues it) in the job's private directory."""
    return str(keep / f".{run_key}.{name}.part")


def fetch(ctx: "Context", transport: "Transport", task: dict, remote: str, part: str,
          what: str) -> None:
    """Stream ``remote`` into ``part`` (continuing after what it holds) and
    verify it; a copy that does not match is made again once from the start.
    A resumed copy is logged with its offset."""
    try:
        done = transport.get_file(remote, part)
    except TransferCorrupt as exc:
        ctx.log(f"job {task['task_id']}: {exc}")
        done = transport.get_file(remote, part)
    if done.offset:
        ctx.log(f"job {task['task_id']}: its {what} copy from {transport.node} resumed at "
                f"byte {done.offset} of {done.size} ({done.moved} bytes moved)")


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


def _open_out(path: str, append: bool, mode: int) -> int:
    """Open an output file for writing: a new one with exactly ``mode`` (not
    masked by the umask of whatever command started this controller), an
    existing one keeping its mode, as in SLURM."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(path, flags | os.O_EXCL, mode)
        os.fchmod(fd, mode)
    except FileExistsError:
        fd = os.open(path, flags, mode)
    return fd


def _open_dest(path: str, append: bool, mode: int, dir_mode: "int | None",
               owner: "int | None") -> int:
    """Make the directories of an output path and open it, as the job's
    owner when the controller is root for another user (see asowner)."""
    def opener() -> int:
        _makedirs(os.path.dirname(path) or ".", dir_mode)
        return _open_out(path, append, mode)

    fd = as_owner(owner, opener)
    assert fd is not None
    return fd


def _write(path: str, data: bytes, append: bool, mode: int = 0o644,
           dir_mode: "int | None" = None, owner: "int | None" = None) -> None:
    fd = _open_dest(path, append, mode, dir_mode, owner)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)


def _keep_dir(ctx: "Context", task_id: int, owner: "int | None" = None):
    """The job's private spool directory (0700, per user: see output_dir).
    Its parents are made (and a user's spool set to 0700) once per
    controller, not at every job's end (ctx.spool_parents): made again only
    if they went away meanwhile."""
    keep = ctx.paths.output_dir(task_id, owner)
    known = ctx.spool_parents
    if keep.parent not in known:
        _make_parents(ctx, keep)
        known.add(keep.parent)
    try:
        os.mkdir(keep, 0o700)
    except FileExistsError:
        pass
    except FileNotFoundError:  # its parents went away since: made again
        _make_parents(ctx, keep)
        keep.mkdir(parents=True, exist_ok=True)
    os.chmod(keep, 0o700)  # whatever the umask, and an existing one too
    return keep


def _make_parents(ctx: "Context", keep: Path) -> None:
    """The spool's directories above one job's: the output root and, for
    another user's job, that user's own spool (0700)."""
    ctx.paths.output_root.mkdir(parents=True, exist_ok=True)
    if keep.parent != ctx.paths.output_root:
        keep.parent.mkdir(mode=0o700, exist_ok=True)
        os.chmod(keep.parent, 0o700)


def write_inline(ctx: "Context", task: dict, output: dict) -> str:
    """Write output that came with the `ended` event; "" or what went wrong."""
    import base64

    try:
        append = task.get("open_mode") == "append" or task["restart_count"] > 0
        keep = _keep_dir(ctx, task["task_id"], task.get("owner"))
        for which in ("stdout", "stderr"):
            if which == "stderr" and (not task["stderr"] or task["stderr"] == task["stdout"]):
                continue
            data = base64.b64decode(output.get(which) or "")
            _write(task[which], data, append, *out_modes(task), owner=task.get("owner"))
            _write(str(keep / f"{which}.txt"), data, append, 0o600)
    except (OSError, ValueError, TypeError) as exc:
        return f"its output could not be written on this host: {exc}"
    return ""


def _copy(ctx: "Context", task: dict, node: str) -> None:
    busy, lock = ctx.collecting, ctx.collecting_lock
    while True:
        error, kept = _copy_once(ctx, task, node)
        with lock:
            again = busy.pop(task["run_key"], False)
            if not (error and again):
                break
            busy[task["run_key"]] = False
    ctx.inbox.put(Collected(node, task["task_id"], task["run_key"], error, bool(kept)))


def _copy_once(ctx: "Context", task: dict, node: str) -> "tuple[str, str]":
    """One attempt: ``(error, kept)``, a lost link's message or why the
    output stays on the machine (both "" once it is home)."""
    error = kept = ""
    where = node
    try:
        transport = ctx.transport_for(node)
        jp = JobPaths(transport.workdir, task["run_key"])
        where = kept_where(node, jp)
        kept = _copy_files(ctx, transport, task, jp)
        if kept:
            # where the user looks first: the job's own output file
            _write(task["stderr"] or task["stdout"],
                   f"fleetslurm: error: job {task['task_id']}: {kept}; its output is kept "
                   f"on {where}\n".encode("utf-8", "surrogateescape"), True, *out_modes(task),
                   owner=task.get("owner"))
    except TransportError as exc:
        # a lost link, a failed reconnection: retried when the machine says
        # hello again (the run's directory is still there)
        error = str(exc)
    except OSError as exc:
        # the submit host cannot take it (an unwritable --output directory...)
        kept = f"its output could not be written on this host: {exc}"
    except Exception as exc:  # a bug must not leave the job COMPLETING for ever
        kept = f"copying its output failed: {type(exc).__name__}: {exc}"
    if kept:
        # the job finishes rather than hang in COMPLETING, and the machine
        # keeps the run's directory: nothing is deleted that is not safe here
        log_kept(ctx, task["task_id"], kept, where)
        # (so what came of it here is not needed: only a lost link's parts
        # are kept, for the next copy to continue)
        for part in ctx.paths.output_dir(task["task_id"], task.get("owner")).glob(f".{task['run_key']}.*.part"):
            try:
                part.unlink()
            except OSError:
                pass
    return error, kept


def kept_where(node: str, jp: JobPaths) -> str:
    """Where a run's output stays when it cannot come home, for messages."""
    return f"{node} in {jp.kept}"


def log_kept(ctx: "Context", task_id: int, why: str, where: str) -> None:
    """Tell the controller's log that a job's output stayed on its machine."""
    ctx.log(f"job {task_id}: {why}; its output is kept on {where}: copy it from there")


def _copy_files(ctx: "Context", transport: "Transport", task: dict, jp: JobPaths) -> str:
    """Copy the run's stdout/stderr (and staged results) home; "" or why a
    file that is on the machine could not be read there. A lost link (or a
    failed reconnection) raises its TransportError, a submit host that
    refuses a file OSError. Every file is received first (a retry after a
    lost link continues the part files), then each is written to its place."""
    append = task.get("open_mode") == "append" or task["restart_count"] > 0
    keep = _keep_dir(ctx, task["task_id"], task.get("owner"))
    pairs = [("stdout", jp.stdout)]
    if task["stderr"] and task["stderr"] != task["stdout"]:
        pairs.append(("stderr", jp.stderr))
    unread = ""
    received: list[tuple[str, "str | None"]] = []
    for which, remote in pairs:
        part = part_file(keep, task["run_key"], which)
        # the mode the output file would get (see _deliver: it may become
        # that file); the directory is private, so no one reads it meanwhile
        fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o600)
        os.fchmod(fd, out_modes(task)[0])
        os.close(fd)
        try:
            fetch(ctx, transport, task, remote, part, which)
        except FileMissing:
            os.unlink(part)
            received.append((task[which], None))  # the job wrote nothing there
            continue
        except FileUnreadable as exc:  # there, but unreadable (permissions...)
            os.unlink(part)
            unread = unread or str(exc)
            continue
        received.append((task[which], part))
    try:
        copy_stage_out(ctx, transport, task, keep)
    except FileUnreadable as exc:
        unread = unread or str(exc)
    for dest, part in received:
        _deliver(part, dest, append, *out_modes(task), owner=task.get("owner"))
    for _, part in received:
        if part is not None:
            os.unlink(part)
    return unread


def _deliver(part: "str | None", dest: str, append: bool, mode: int, dir_mode: int,
             owner: "int | None" = None) -> None:
    """Write a received file (None: an empty one) to its place: where there
    is no file yet, the received one becomes it (a hard link, no copy);
    else in chunks, appended or replacing what is there (opened as
    ``_write`` does, never renamed over: ``--output=/dev/null`` must stay a
    device)."""
    from ..transport.chunked import CHUNK

    if part is not None and not append and not needs_switch(owner):
        # (not for another user: a link made here would be the controller's)
        _makedirs(os.path.dirname(dest) or ".", dir_mode)
        try:
            os.link(part, dest)  # fails if anything is there, symlinks included
            return
        except OSError:
            pass  # there already, or another filesystem: copied below
    fd = _open_dest(dest, append, mode, dir_mode, owner)
    try:
        if part is None:
            return
        with open(part, "rb") as src:
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def collect_output(ctx: "Context", task: dict, node: str,
                   output: Optional[dict] = None) -> None:
    """Without a shared filesystem, bring the job's output home: from the
    `ended` event when it came inline, else copied over the transport in the
    background (after the commit)."""
    transport = ctx.transport_for(node)
    if transport.shared_fs:
        return
    current = ctx.store.task(task["task_id"])
    fresh = dict(current or task)
    # the run whose output this is: an earlier run of a requeued job is not
    # the task's current one (its files, and the key the agent must forget)
    fresh["run_key"], fresh["restart_count"] = task["run_key"], task["restart_count"]
    job = ctx.store.job(task["job_id"])
    fresh["open_mode"] = job["spec"].get("open_mode") if job else None
    fresh["stage_out"] = stage_paths(job, fresh, "out") if job and has_stage(job) else []
    fresh["owner"] = job["uid"] if job else None
    fresh["umask"] = job["spec"].get("umask") if job else None
    if output is not None and not fresh["stage_out"]:  # result files need a copy
        error = write_inline(ctx, fresh, output)
        if error:
            # the submit host refused it; the job finishes all the same, and
            # the machine keeps the run's directory
            log_kept(ctx, fresh["task_id"], error,
                     kept_where(node, JobPaths(transport.workdir, fresh["run_key"])))
        # (the row as read above: writing the output changed nothing in it)
        finish_collection(ctx, fresh["task_id"], fresh["run_key"], node, ctx.now,
                          keep=bool(error), current=current)
        return
    # (one copy of a run at a time: see copy_back)
    ctx.after_commit(lambda: copy_back(ctx, fresh, node))


def copy_stage_out(ctx: "Context", transport: "Transport", task: dict, keep: Path) -> None:
    """Copy a run's result files home (collect's background thread):
    ``task["stage_out"]`` holds their submit-host paths. Each is streamed into
    a part file in ``keep`` (the job's private directory; a retry continues
    it), verified, then written to its place. A file the job did not write is
    skipped; a lost link raises NodeUnreachable (the copy is retried at the
    next hello), a file there that cannot be read FileUnreadable."""
    stage = JobPaths(transport.workdir, task["run_key"]).stage
    for i, path in enumerate(task.get("stage_out") or []):
        part = part_file(keep, task["run_key"], f"stage{i}")
        try:
            fetch(ctx, transport, task, posixpath.join(stage, os.path.basename(path)), part,
                  f"result file {os.path.basename(path)}")
        except FileMissing:
            continue  # the job left no such file
        with open(part, "rb") as src:
            write_private(path, src, task.get("owner"))
        os.unlink(part)


"""Files staged into a job's directory on its machine before it runs, and
result files copied back to the submit host when it ends.

A job submitted with ``stage={"in": [...], "out": [...]}`` (absolute paths on
the submit host, SLURM filename patterns allowed: ``%a``, ``%A``, ``%j``) keeps
that list in its record, so a restarted controller still does the copies.
On a machine without a shared filesystem:

- before the launch, each ``in`` file is put into ``<workdir>/stage/<run key>/``
  (0600 files in 0700 directories); the agent moves that directory to the
  job's ``<jobdir>/stage`` as it starts it, and ``$FLEETSLURM_STAGE_DIR``
  names it inside the job;
- when the job ends, each ``out`` file the job left there (same base name) is
  copied back to its path on the submit host (0600, written to a temporary
  file and renamed) by :mod:`fleetslurm.collect`, before the job leaves
  COMPLETING.

Both ways the files are streamed in chunks, resumed after a lost link and
verified (``Transport.put_file``/``get_file``): a payload or a result of any
size never sits whole in the controller's memory.

With a shared filesystem nothing is copied and the variable is unset: the job
uses the paths in place. The puts run on a small thread pool after the commit;
when they are done the controller is told through its inbox and only then
sends the launch (a link lost meanwhile: the agent's next hello launches the
run again, which stages it again).
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .errors import FileMissing, FleetError, NodeUnreachable, TransferCorrupt
from .paths import JobPaths

if TYPE_CHECKING:
    from .controller import Controller
    from .transport.base import Transport

__all__ = ["check_stage", "has_stage", "stage_paths", "launch_staged", "staged",
           "copy_stage_out", "open_as", "read_as", "write_private", "STAGE_ENV"]

#: the variable naming the stage directory inside a job
STAGE_ENV = "FLEETSLURM_STAGE_DIR"
_POOL_WORKERS = 4


def stage_paths(job: dict, task: dict, kind: str) -> list[str]:
    """The submit-host paths of one task's ``kind`` ("in" or "out") files,
    patterns expanded for that task."""
    from .slurm.patterns import expand_pattern

    stage = job["spec"].get("stage") or {}
    array = task["array_index"] is not None
    out = []
    for pattern in stage.get(kind) or []:
        out.append(expand_pattern(
            pattern, job_id=task["task_id"], array_job_id=job["job_id"] if array else None,
            array_task_id=task["array_index"], node=task.get("node") or "",
            user=job["user"], job_name=task["req"]["name"]))
    return out


def check_stage(stage: Any, uid: int) -> dict:
    """A submit request's ``stage`` made safe to keep: lists of absolute paths
    with distinct base names. The controller reads and writes these files
    for the caller, so a caller other than the controller's own user may
    name only paths in directories it owns."""
    from .errors import SubmitError

    if not isinstance(stage, dict):
        raise SubmitError("stage must be {\"in\": [paths], \"out\": [paths]}")
    out: dict[str, list[str]] = {}
    bases: set[str] = set()
    for kind in ("in", "out"):
        paths = stage.get(kind) or []
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise SubmitError(f"stage.{kind} must be a list of paths")
        for path in paths:
            base = os.path.basename(path)
            if not os.path.isabs(path) or base in ("", ".", "..") or "\0" in path:
                raise SubmitError(f"stage.{kind}: {path!r} is not an absolute file path")
            if base in bases:
                raise SubmitError(f"stage.{kind}: two staged files are named {base!r}")
            bases.add(base)
            if uid != os.getuid():
                try:
                    owner = os.stat(os.path.dirname(path)).st_uid
                except OSError:
                    owner = None
                if owner != uid:
                    raise SubmitError(f"stage.{kind}: {path}: its directory must exist and "
                                      "belong to you")
        out[kind] = list(paths)
    return out


def has_stage(job: dict) -> bool:
    stage = job["spec"].get("stage") or {}
    return bool(stage.get("in") or stage.get("out"))


def launch_staged(ctl: "Controller", task: dict, job: dict, transport: "Transport",
                  agent_spec: dict) -> None:
    """Launch a run that has staged files (no shared filesystem): the agent
    gives it a stage directory; inputs are put there first."""
    key = task["run_key"]
    agent_spec["stage"] = True
    agent_spec["env"][STAGE_ENV] = JobPaths(transport.workdir, key).stage
    inputs = stage_paths(job, task, "in")
    msg = {"op": "launch", "key": key, "spec": agent_spec}
    if not inputs:
        ctl.send(task["node"], msg)
        return
    node, task_id, owner = task["node"], task["task_id"], job["uid"]

    def put() -> None:
        error, fatal = "", False
        try:
            dest = JobPaths(transport.workdir, key).incoming
            for path in inputs:
                try:
                    src = open_as(path, owner)
                except OSError as exc:
                    error, fatal = f"cannot read its staged file {path}: {exc.strerror}", True
                    break
                with src:
                    _put(transport, src, posixpath.join(dest, os.path.basename(path)))
        except NodeUnreachable as exc:
            error = str(exc)  # launched (and staged) again at the machine's next hello
        except FleetError as exc:
            error, fatal = f"cannot stage its files on {node}: {exc}", True
        except Exception as exc:  # a bug must not leave the job RUNNING forever
            error, fatal = f"staging failed: {type(exc).__name__}: {exc}", True
        ctl.inbox.put(("staged", node, task_id, key, msg, error, fatal))

    ctl.after_commit(lambda: _pool(ctl).submit(put))


def _put(transport: "Transport", src: BinaryIO, remote: str) -> None:
    """Stream one staged file to the machine; a copy there that does not
    match is made once more from the start."""
    try:
        transport.put_file(src, remote, 0o600)
    except TransferCorrupt:
        transport.put_file(src, remote, 0o600)


def open_as(path: str, owner: int) -> BinaryIO:
    """A staged file, open for reading. For a job of another user than the
    controller's (a root controller), only a regular file that user owns, not
    through a symlink: the controller must not read for them what they could
    not."""
    if owner == os.getuid():
        return open(path, "rb")
    import errno
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    f = os.fdopen(fd, "rb")
    st = os.fstat(fd)
    if st.st_uid != owner or not stat.S_ISREG(st.st_mode):
        f.close()
        raise PermissionError(errno.EACCES, "not a regular file of the job's owner")
    return f


def read_as(path: str, owner: int) -> bytes:
    """A staged file's bytes (small files; see :func:`open_as` for the rule)."""
    with open_as(path, owner) as f:
        return f.read()


def _pool(ctl: "Controller") -> Any:
    # one small pool per controller: the transport serializes SFTP anyway
    pool = getattr(ctl, "_stage_pool", None)
    if pool is None:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(_POOL_WORKERS, thread_name_prefix="stage")
        ctl._stage_pool = pool  # type: ignore[attr-defined]
    return pool


def staged(ctl: "Controller", item: tuple, now: float) -> None:
    """The inbox message ``("staged", node, task_id, run_key, launch, error, fatal)``."""
    from .ops import finish_cancel

    _, node, task_id, key, msg, error, fatal = item
    task = ctl.store.task(task_id)
    if task is None or task["run_key"] != key or task["state"] != "RUNNING":
        ctl.send(node, {"op": "forget", "key": key})  # requeued or gone: drop the files
        return
    if task["cancelled_by"] is not None:
        ctl.send(node, {"op": "forget", "key": key})
        finish_cancel(ctl, task, task["cancelled_by"], now)
        return
    if not error:
        ctl.send(node, msg)
        return
    ctl.log(f"job {task_id}: {error}")
    if not fatal:
        return  # the link dropped: the agent's hello launches (and stages) it again
    from .handlers import launch_failed

    # a staged file that cannot be read or written fails the job, as a launch
    # failure does (the machine is drained only when the fault is the machine's)
    if "cannot read its staged file" in error:
        _fail(ctl, task, key, error, now)
    else:
        launch_failed(ctl, node, key, error, now)


def _fail(ctl: "Controller", task: dict, key: str, error: str, now: float) -> None:
    from .scheduler import JobEnded

    ctl.store.update_step(key, state="FAILED", end_time=now, exit_code=1, exit_signal=0,
                          error=error)
    ctl.store.update_task(task["task_id"], state="FAILED", end_time=now, exit_code=1,
                          exit_signal=0, reason="JobLaunchFailure", collected=1)
    ctl.store.log(task["task_id"], now, "end", f"FAILED staging: {error}")
    ctl.send(task["node"], {"op": "forget", "key": key})
    ctl.emit(JobEnded(task["task_id"], "FAILED", now))
    ctl.forget_fed(task["task_id"])
    ctl.task_finished(task)


def copy_stage_out(ctl: "Controller", transport: "Transport", task: dict, keep: Path) -> None:
    """Copy a run's result files home (collect's background thread):
    ``task["stage_out"]`` holds their submit-host paths. Each is streamed into
    a part file in ``keep`` (the job's private directory; a retry continues
    it), verified, then written to its place. A file the job did not write is
    skipped; a lost link raises NodeUnreachable (the copy is retried at the
    next hello), a file there that cannot be read FileUnreadable."""
    from .collect import fetch, part_file

    stage = JobPaths(transport.workdir, task["run_key"]).stage
    for i, path in enumerate(task.get("stage_out") or []):
        part = part_file(keep, task["run_key"], f"stage{i}")
        try:
            fetch(ctl, transport, task, posixpath.join(stage, os.path.basename(path)), part,
                  f"result file {os.path.basename(path)}")
        except FileMissing:
            continue  # the job left no such file
        with open(part, "rb") as src:
            write_private(path, src, task.get("owner"))
        os.unlink(part)


def write_private(path: str, data: "bytes | BinaryIO", owner: "int | None" = None) -> None:
    """Write ``data`` (bytes, or an open file read in chunks) to ``path`` as a
    0600 file (temporary file, then rename), owned by ``owner`` when the
    controller runs as root for another user."""
    from .transport.chunked import CHUNK

    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        if owner is not None and os.getuid() == 0 and owner != 0:
            import pwd

            try:
                gid = pwd.getpwuid(owner).pw_gid
            except KeyError:
                gid = -1
            os.fchown(fd, owner, gid)
        chunks = [data] if isinstance(data, bytes) else iter(lambda: data.read(CHUNK), b"")
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.replace(tmp, path)

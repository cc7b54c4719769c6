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
  file and renamed) by :mod:`fleetslurm.ctld.collect`, before the job leaves
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
from typing import TYPE_CHECKING, Any, BinaryIO

from ..node.agent import protocol
from ..errors import FleetError, NodeUnreachable, TransferCorrupt
from ..paths import JobPaths
from .inbox import Staged

if TYPE_CHECKING:
    from .context import Context
    from ..transport.base import Transport

__all__ = ["check_stage", "has_stage", "stage_paths", "launch_staged", "open_as", "read_as",
           "STAGE_ENV"]

#: the variable naming the stage directory inside a job
STAGE_ENV = "FLEETSLURM_STAGE_DIR"
_POOL_WORKERS = 4


def stage_paths(job: dict, task: dict, kind: str) -> list[str]:
    """The submit-host paths of one task's ``kind`` ("in" or "out") files,
    patterns expanded for that task."""
    from ..slurm.patterns import expand_pattern

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
    from ..errors import SubmitError

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


def launch_staged(ctx: "Context", task: dict, job: dict, transport: "Transport",
                  agent_spec: dict) -> None:
    """Launch a run that has staged files (no shared filesystem): the agent
    gives it a stage directory; inputs are put there first."""
    key = task["run_key"]
    agent_spec["stage"] = True
    agent_spec["env"][STAGE_ENV] = JobPaths(transport.workdir, key).stage
    inputs = stage_paths(job, task, "in")
    msg = protocol.launch(key, agent_spec)
    if not inputs:
        ctx.send(task["node"], msg)
        return
    node, task_id, owner = task["node"], task["task_id"], job["uid"]

    def put() -> None:
        # whose fault a failure is decides what it does: the job's (a file it
        # named cannot be read) or the controller's (a bug) fails the job; only
        # the machine's (it refused the copy) drains the machine
        error, fatal, machine = "", False, False
        try:
            dest = JobPaths(transport.workdir, key).incoming
            for path in inputs:
                try:
                    src = open_as(path, owner)
                except OSError as exc:
                    error, fatal = f"cannot read its staged file {path}: {exc.strerror}", True
                    break
                with src:
                    _put(transport, _Source(src, path), posixpath.join(dest, os.path.basename(path)))
        except _SourceError as exc:
            error, fatal = str(exc), True
        except NodeUnreachable as exc:
            error = str(exc)  # launched (and staged) again at the machine's next hello
        except FleetError as exc:
            error, fatal, machine = f"cannot stage its files on {node}: {exc}", True, True
        except Exception as exc:  # a bug must not leave the job RUNNING forever
            error, fatal = f"staging failed: {type(exc).__name__}: {exc}", True
        ctx.inbox.put(Staged(node, task_id, key, msg, error, fatal, machine))

    ctx.after_commit(lambda: _pool(ctx).submit(put))


class _SourceError(Exception):
    """Reading a staged file on this host failed during its copy."""


class _Source:
    """A staged file being read for its copy: a read error is named as the
    file's, whatever the transport would make of an OSError."""

    def __init__(self, f: BinaryIO, path: str) -> None:
        self._f, self._path = f, path

    def read(self, size: int = -1) -> bytes:
        try:
            return self._f.read(size)
        except OSError as exc:
            raise _SourceError(f"cannot read its staged file {self._path}: "
                               f"{exc.strerror or exc}") from exc

    def __getattr__(self, name: str) -> Any:  # seek, tell, fileno...
        return getattr(self._f, name)


def _put(transport: "Transport", src: Any, remote: str) -> None:
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


def _pool(ctx: "Context") -> Any:
    # one small pool per controller: the transport serializes SFTP anyway
    pool = ctx.stage_pool
    if pool is None:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(_POOL_WORKERS, thread_name_prefix="stage")
        ctx.stage_pool = pool
    return pool



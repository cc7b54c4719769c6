"""The agent's file I/O: the names of the files in a job's directory, atomic
writes, raw-fd reads (cheap in forked processes), results, the markers the
agent leaves for a supervisor, and the agent's log. Standard library only."""
from __future__ import annotations

import errno
import json
import os
import stat
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

RESULT_FILE = "result.json"
# Reserved by the supervisor before the job starts (blanks), then overwritten
# in place with the result and renamed to result.json: a job that fills the
# disk cannot keep its result from being recorded (overwriting reserved
# blocks needs no free space; not so on copy-on-write filesystems)
RESULT_SPARE = "result.spare"
SPARE_SIZE = 4096
# a filesystem with less free than this when a job ends was full during it
DISK_FULL_BYTES = 1 << 20
SUPERVISOR_FILE = "supervisor.json"
SCRIPT_FILE = "script"
CANCEL_FILE = "cancel"
STEPS_DIR = "steps"    # one file per srun step process group (named by its pgid)
STAGE_DIR = "stage"    # files staged in for the job / left by it to be copied home
INCOMING_DIR = "stage"  # <workdir>/stage/<key>: staged files waiting for the launch
KEPT_DIR = "kept"      # <workdir>/kept/<key>: a run whose output could not go home
LIMIT_FILE = "limit"   # a new time limit (seconds, or "none") from scontrol update
# written before the supervisor signals a job it is ending (cancel, time limit):
# srun then leaves its tasks to the supervisor's SIGTERM and KillWait
STOPPING_FILE = "stopping"
STDIN_FIFO = "stdin.fifo"  # srun's standard input, streamed by the agent
LOG_FILE = "agent.log"


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (os.write may write less)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def note_id(spec: Dict[str, Any], key: str) -> str:
    """What slurmstepd's line names: the job's id, or its step 0 when the
    job's task is step 0 (``srun_direct``)."""
    job_id = spec["job_id"] or key.split(".")[0]
    return job_id + ".0" if spec.get("srun_direct") else job_id


def write_note(path: str, node: str, job_id: str, why: str,
               owner: Optional[int] = None) -> None:
    """Append slurmstepd's line for a job it ends to the job's stderr:
    ``slurmstepd-N: error: *** JOB 12 ON N CANCELLED AT <time>[ DUE TO ...] ***``;
    a step's id (``12.0``: a job srun made, whose task is step 0) names the step,
    ``*** STEP 12.0 ON ...``, as slurmstepd's line for such a job does (oracle)."""
    append_line(path, "slurmstepd-%s: error: *** %s %s ON %s CANCELLED AT %s%s ***\n" % (
        node, "STEP" if "." in job_id else "JOB", job_id, node,
        time.strftime("%Y-%m-%dT%H:%M:%S"), why), owner)


def append_line(path: str, line: str, owner: Optional[int] = None,
                create: bool = False) -> None:
    """Append ``line`` to a job's file; never raises. Two guarded cases, where
    a root agent or supervisor writes where a job's user may plant anything:

    * ``owner`` (a job of that user, written by root): a file of the user's
      choosing, its output. Only a regular file that user owns; never
      through a final symlink, never blocking on a FIFO, never creating one.
    * ``create``: a file of the supervisor's own in the job's directory (the
      user's while the job runs), made when missing (0644: the job's srun
      reads it). The same guards, and a file of one link (not a hard link
      the job planted to another), whoever owns it.

    Otherwise the agent writes as the job's user: created when missing (0600)."""
    guarded = create or (owner is not None and os.geteuid() == 0 and owner != 0)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
    if guarded:
        flags |= os.O_NOFOLLOW | os.O_NONBLOCK
    if create or not guarded:
        flags |= os.O_CREAT
    try:
        fd = os.open(path, flags, 0o644 if create else 0o600)
    except OSError:
        return
    try:
        if guarded:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or (
                    st.st_nlink != 1 if create else st.st_uid != owner):
                return
        write_all(fd, line.encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def read_small(path: str) -> bytes:
    """Contents of a small file via raw fds.

    Used on hot paths instead of open(): the io stack allocates buffers, and
    in forked processes every fresh page is a page fault.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def read_json(path: str) -> Optional[Dict[str, Any]]:
    """Return the JSON object in ``path``, or None if absent or unreadable."""
    try:
        obj = json.loads(read_small(path))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _open_new(tmp: str) -> int:
    """A temporary file of the agent's, created 0600: never through a name
    someone else made (a job's directory may be its user's, and the agent
    root), a stale one of this pid replaced."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(tmp, flags, 0o600)
    except FileExistsError:
        os.unlink(tmp)  # removes a link itself, never its target
        return os.open(tmp, flags, 0o600)


def write_json_atomic(path: str, obj: Dict[str, Any], fsync: bool = False,
                      exclusive: bool = False) -> bool:
    """Write ``obj`` to ``path`` via a temp file and rename (mode 0600).

    With ``exclusive`` the file is only created if absent (link instead of
    rename), so a LOST verdict can never overwrite a real result; returns
    False when the file already existed.
    """
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = _open_new(tmp)
    try:
        write_all(fd, json.dumps(obj, separators=(",", ":")).encode())
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    if not exclusive:
        os.replace(tmp, path)
        return True
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def read_result(jobdir: str) -> Optional[Dict[str, Any]]:
    """A job's RESULT: result.json, else the supervisor's reserved file when
    the result could be written there but not renamed (blanks until then)."""
    result = read_json(os.path.join(jobdir, RESULT_FILE))
    if result is None and os.access(os.path.join(jobdir, RESULT_SPARE), os.F_OK):
        result = read_json(os.path.join(jobdir, RESULT_SPARE))
    return result


# A marker's text kept in a symlink's target when the disk is full: a short
# target lives in the inode (ext4, tmpfs), so it needs no free block. Under
# /dev/null, so the link never resolves to a file.
_MARKER_LINK = "/dev/null/"


def write_marker(path: str, text: str) -> None:
    """Leave a request for a supervisor (temp file + rename); on a full disk,
    as a symlink whose target holds the text (see read_marker)."""
    try:
        write_text_atomic(path, text)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
    tmp = "%s.lnk.%d" % (path, os.getpid())
    os.symlink(_MARKER_LINK + text, tmp)
    os.replace(tmp, path)


def write_text_atomic(path: str, text: str) -> None:
    """Write a small text file atomically (temp file + rename, mode 0600)."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = _open_new(tmp)
    try:
        write_all(fd, text.encode())
    except BaseException:
        os.unlink(tmp)  # nothing half-written left behind (a full disk)
        raise
    finally:
        os.close(fd)
    os.replace(tmp, path)


def inline_output(stdout: str, stderr: str, limit: int) -> Optional[Dict[str, Any]]:
    """A finished job's output, base64, when every file is at most ``limit``
    bytes (else None: the controller copies it over SFTP)."""
    import base64

    out: Dict[str, Any] = {}
    for name, path in (("stdout", stdout), ("stderr", stderr)):
        if name == "stderr" and path == stdout:
            continue
        try:
            # never through a link (the job's directory may be its user's,
            # the agent root): such a file is sent home empty
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            out[name] = ""
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                out[name] = ""
                continue
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                out[name] = ""
                continue
            if st.st_size > limit:
                return None
            data = b""
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                data += chunk
                if len(data) > limit:
                    return None
        finally:
            os.close(fd)
        out[name] = base64.b64encode(data).decode()
    return out



def take_back(jobdir: str, workdir: str) -> None:
    """A job's directory that was its user's (see ops.op_launch), once the
    job has ended: it (and its stage directory) become the agent's again,
    and a symlink the user left where its output or results are read is
    removed, so that what the controller copies home (as the agent's
    account, which may be root) is only what the job wrote, never a file it
    links to. Nothing to do for a directory that is the agent's."""
    me = os.geteuid()
    try:
        if os.lstat(jobdir).st_uid == me:
            return
    except OSError:
        return
    stage = os.path.join(jobdir, STAGE_DIR)
    try:
        os.chown(jobdir, me, os.getegid())
        if not os.path.islink(stage) and os.path.isdir(stage):
            os.chown(stage, me, os.getegid())
    except OSError as exc:
        log(workdir, "cannot take back %s: %s" % (jobdir, exc))
        return
    names = [os.path.join(jobdir, n) for n in ("stdout.txt", "stderr.txt", STAGE_DIR)]
    try:
        if not os.path.islink(stage):
            names += [e.path for e in os.scandir(stage)]
    except OSError:
        pass
    for path in names:
        try:
            if os.path.islink(path):
                os.unlink(path)
        except OSError:
            pass


def remove_tree(path: str) -> None:
    """Delete a job directory (symlinks are removed, never followed)."""
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            remove_tree(entry.path)
        else:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass


def format_exc() -> str:
    """The current traceback as text (traceback is imported only when needed)."""
    import traceback
    return traceback.format_exc()


def log(workdir: str, msg: str) -> None:
    """Append one line to <workdir>/agent.log; never raises."""
    try:
        fd = os.open(os.path.join(workdir, LOG_FILE),
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            write_all(fd, ("%s [%d] %s\n" % (stamp, os.getpid(), msg.rstrip())).encode(
                "utf-8", "replace"))
        finally:
            os.close(fd)
    except OSError:
        pass


def read_marker(jobdir: str, name: str) -> Optional[str]:
    """The text of a file the agent leaves in the job's directory, or None
    while there is none (the usual case, told without an exception)."""
    path = os.path.join(jobdir, name)
    if not os.access(path, os.F_OK, follow_symlinks=False):
        return None
    try:
        return read_small(path).decode("utf-8", "replace").strip()
    except OSError:
        pass
    try:  # left on a full disk (write_marker)
        target = os.readlink(path)
    except OSError:
        return None
    return target[len(_MARKER_LINK):].strip() if target.startswith(_MARKER_LINK) else None

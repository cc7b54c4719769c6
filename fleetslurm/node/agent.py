#!/usr/bin/env python3
"""fleetslurm node agent: one stdlib-only file, run as ``python3 agent.py --workdir DIR``.

The controller copies this file to a node and starts it over one byte stream
(an SSH exec channel, or a local pipe). It speaks JSON lines: one request
object per line on stdin, one reply or event object per line on stdout.
Nothing else is ever written to stdout; diagnostics go to
``<workdir>/agent.log``.

Each job runs under a *supervisor*: a process forked from the agent (a fork
costs about 1 ms, a new interpreter about 30 ms) that starts its own session,
forks the job, enforces the time and memory limits, and writes the job's
result atomically to ``<workdir>/jobs/<key>/result.json``. Supervisors and
jobs outlive the agent; a new agent rebuilds its view from the job
directories. The supervisor is the subreaper of the job's processes (what the
job daemonizes dies with it; memory is their summed PSS), and reserves the
blocks of its result before the job starts (a job that fills the disk still
gets a result: FAILED, with the reason).

Protocol (every request may carry "id"; its reply carries it back as "re"):

  hello [unwanted]         -> {ev: hello, version, pid, facts, jobs: [JOBINFO]}
                              then one `ended` per finished, unforgotten job;
                              runs named in `unwanted` (requeued elsewhere) are
                              killed first and end CANCELLED, unless they ended
  facts                    -> {ev: facts, **FACTS}               (the heartbeat)
  launch key spec          -> {ev: started, key, pid, start_time}
                            | {ev: launch_failed, key, error, [cause: job]}
                              (nothing ran; key reusable; cause "job": the spec
                              itself is invalid, else the machine failed)
                            | {ev: ended, key, result}           (key already ran)
  signal key signal [batch_only] -> {ev: signalled, key, ok, error}
  cancel key [signal=15]   -> {ev: cancelling, key, ok, error}
  stdin key data eof       -> {ev: stdin, key, written, closed}  (srun's stdin, base64;
                              also unsolicited as the job reads it)
  status                   -> {ev: status, jobs: [JOBINFO]}
  forget key               -> {ev: forgotten, key, ok, error}    (ended or absent only)
  shutdown                 -> {ev: shutdown}, then exit; jobs keep running
  anything else            -> {ev: error, error}
  unsolicited              -> {ev: ended, key, result}, once per job per agent

JOBINFO = {key, status: running|ended, pid, result|null}. A launch is
idempotent per key: the job directory is the token, so a key never runs twice.

This file must run under any Python >= 3.8 with only the standard library and
must not import anything from ``fleetslurm``: it is shipped on its own.
It is one file, longer than the house limit for modules, because the
controller ships it to nodes as a single file.
"""
from __future__ import annotations

import errno
import gc
import json
import os
import re
import select
import signal
import sys
import time

# The C module under `signal`: signal.signal() and pthread_sigmask() wrap it
# in enum conversions (an exception per non-enum handler), which costs a
# forked child hundreds of copy-on-write faults; the supervisor and the job
# child call it directly.
try:
    import _signal
except ImportError:  # pragma: no cover - not CPython
    _signal = signal  # type: ignore[assignment]

# typing and shutil are left out on purpose: every module in the heap is
# copied (page tables, then copy-on-write faults) by each of the two forks per
# job. Annotations are strings (PEP 563), so typing is needed by checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Set, Tuple

try:
    import pwd
except ImportError:  # pragma: no cover - not on Linux
    pwd = None  # type: ignore[assignment]
try:
    # os.wait4 imports it on first use to build its rusage result: imported
    # here, once, instead of in every supervisor (an extension module's
    # import after fork is a path search, a dlopen and many copy-on-write faults)
    import resource  # noqa: F401
except ImportError:  # pragma: no cover - not on Linux
    pass

AGENT_VERSION = "1"

_KEY_RE = re.compile(r"[A-Za-z0-9._-]{1,200}\Z")
_OPEN_MODES = ("truncate", "append")
# A job directory without supervisor.json may belong to a launch still in
# flight (the previous agent died just after forking); only after this long is
# it declared LOST.
_LOST_GRACE_S = 10.0
_ADOPT_POLL_S = 0.5
_MEM_SAMPLE_S = 0.2
# poll() takes a C int of milliseconds (about 24.8 days at most): a deadline
# further away than this is waited for in steps, so any time limit SLURM
# accepts (up to 365 days and beyond, or none) works
_MAX_POLL_MS = 3600 * 1000
_SESSION_RESCAN_S = 2.0
_MAX_LINE = 64 << 20
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
_CGROUP_ROOT = "/sys/fs/cgroup"
# /proc/PID/task/TID/children needs CONFIG_PROC_CHILDREN; without it the
# memory watchdog scans all of /proc.
_HAVE_CHILDREN_FILE = os.path.exists("/proc/self/task/%d/children" % os.getpid())
# Linux >= 4.14: a process's proportional set size in one read; older kernels
# fall back to RSS
_HAVE_SMAPS_ROLLUP = os.path.exists("/proc/self/smaps_rollup")
# The memory watchdog spends at most 1/this of its time sampling (PSS costs
# about 25 us a small process, 3 ms a GiB of memory)
_MEM_SAMPLE_DUTY = 20

# prctl(PR_SET_CHILD_SUBREAPER) for the supervisor: what a job orphans (a
# setsid'd or double-forked daemon) is re-parented to its supervisor instead
# of init, so it dies with the job. ctypes is loaded here, once, rather than
# in each supervisor (an import after fork costs about 2 ms and many faults).
try:
    import ctypes
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
except (ImportError, OSError, AttributeError):  # pragma: no cover - not glibc/Linux
    _prctl = None
_PR_SET_CHILD_SUBREAPER = 36

# plain ints for _signal (the enum members' values)
_SIG_DFL, _SIG_IGN = int(signal.SIG_DFL), int(signal.SIG_IGN)
_SIG_SETMASK = int(signal.SIG_SETMASK)
_SIGHUP, _SIGINT = int(signal.SIGHUP), int(signal.SIGINT)
_SIGCHLD, _SIGUSR1 = int(signal.SIGCHLD), int(signal.SIGUSR1)

RESULT_FILE = "result.json"
# Reserved by the supervisor before the job starts (blanks), then overwritten
# in place with the result and renamed to result.json: a job that fills the
# disk cannot keep its result from being recorded (overwriting reserved
# blocks needs no free space; not so on copy-on-write filesystems)
RESULT_SPARE = "result.spare"
_SPARE_SIZE = 4096
# a filesystem with less free than this when a job ends was full during it
_DISK_FULL_BYTES = 1 << 20
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


# --------------------------------------------------------------------------
# small helpers shared by agent and supervisor


def _noop_handler(signum: int, frame: Any) -> None:
    """Signal handler whose only effect is the byte on the wakeup fd."""


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (os.write may write less)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def write_note(path: str, node: str, job_id: str, why: str) -> None:
    """Append slurmstepd's line for a job it ends to the job's stderr:
    ``slurmstepd-N: error: *** JOB 12 ON N CANCELLED AT <time>[ DUE TO ...] ***``."""
    append_line(path, "slurmstepd-%s: error: *** JOB %s ON %s CANCELLED AT %s%s ***\n" % (
        node, job_id, node, time.strftime("%Y-%m-%dT%H:%M:%S"), why))


def append_line(path: str, line: str) -> None:
    """Append a line of slurmstepd's to a job's output file; never raises."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
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


def write_json_atomic(path: str, obj: Dict[str, Any], fsync: bool = False,
                      exclusive: bool = False) -> bool:
    """Write ``obj`` to ``path`` via a temp file and rename (mode 0600).

    With ``exclusive`` the file is only created if absent (link instead of
    rename), so a LOST verdict can never overwrite a real result; returns
    False when the file already existed.
    """
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
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
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        write_all(fd, text.encode())
    except BaseException:
        os.unlink(tmp)  # nothing half-written left behind (a full disk)
        raise
    finally:
        os.close(fd)
    os.replace(tmp, path)


def proc_stat(pid: int) -> Optional[Tuple[str, int, int]]:
    """(state, session id, start time in clock ticks) of ``pid``, or None."""
    try:
        data = read_small("/proc/%d/stat" % pid)
        # comm may contain spaces and parentheses: fields resume after the last ')'
        rest = data[data.rindex(b")") + 2:].split()
        return rest[0].decode(), int(rest[3]), int(rest[19])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: Optional[int], ticks: Optional[int]) -> bool:
    """True if ``pid`` runs and (when given) started at ``ticks``.

    Zombies count as dead: an orphaned supervisor whose new parent does not
    reap it (a container's PID 1) stays a zombie forever.
    """
    if not pid:
        return False
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X") and (ticks is None or st[2] == ticks)


def step_groups(jobdir: str, sid: Optional[int]) -> List[int]:
    """Process groups of the job's srun steps that still live in its session."""
    path = os.path.join(jobdir, STEPS_DIR)
    # most jobs have no steps: asked without raising (an exception is many
    # copy-on-write faults in a forked supervisor)
    if not os.access(path, os.F_OK):
        return []
    try:
        names = os.listdir(path)
    except OSError:
        return []
    groups = []
    for name in names:
        if name.isdigit():
            st = proc_stat(int(name))
            # the session check guards against a reused pid
            if st is not None and (sid is None or st[1] == sid):
                groups.append(int(name))
    return groups


def child_pids(pid: int) -> List[int]:
    """Children of ``pid`` (of every thread of it), from /proc."""
    out: List[int] = []
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            out.extend(int(c) for c in read_small("/proc/%d/task/%s/children" % (pid, tid)).split())
        except (OSError, ValueError):
            pass
    return out


def memory_kb(pid: int) -> int:
    """Memory of one process in KiB: its PSS (shared pages split between the
    processes that share them), else its RSS; 0 when it is gone."""
    if _HAVE_SMAPS_ROLLUP:
        try:
            data = read_small("/proc/%d/smaps_rollup" % pid)
            at = data.index(b"\nPss:") + 5
            return int(data[at:data.index(b"kB", at)])
        except (OSError, ValueError):
            pass  # gone, or unreadable (a setuid program): its RSS then
    try:
        return int(read_small("/proc/%d/statm" % pid).split()[1]) * _PAGE_KB
    except (OSError, ValueError, IndexError):
        return 0


def signal_scope(jobdir: str, sid: Optional[int], pid: int, signum: int, scope: str) -> None:
    """SLURM's targets: "steps" (srun steps only, scancel's default and
    --signal without B:), "batch" (the batch shell: scancel -b, --signal=B:),
    "full" (every process of the job: scancel -f)."""
    if scope == "batch":
        os.kill(pid, signum)
        return
    targets = step_groups(jobdir, sid)
    if scope == "full":
        targets.append(pid)
    for pgid in targets:
        try:
            os.killpg(pgid, signum)
        except OSError:
            pass


def inline_output(stdout: str, stderr: str, limit: int) -> Optional[Dict[str, Any]]:
    """A finished job's output, base64, when every file is at most ``limit``
    bytes (else None: the controller copies it over SFTP)."""
    import base64

    out: Dict[str, Any] = {}
    for name, path in (("stdout", stdout), ("stderr", stderr)):
        if name == "stderr" and path == stdout:
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            out[name] = ""
            continue
        except OSError:
            return None
        try:
            if os.fstat(fd).st_size > limit:
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


def key_error(key: Any) -> Optional[str]:
    """Why ``key`` is not a valid job key, or None if it is."""
    if not isinstance(key, str) or not _KEY_RE.match(key) or ".." in key or key == ".":
        return ("invalid job key %r: use 1-200 characters from [A-Za-z0-9._-], "
                "without '..'" % (key,))
    return None


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


# --------------------------------------------------------------------------
# node facts


def _meminfo() -> Dict[str, int]:
    out: Dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    out[name] = int(parts[0])
    except (OSError, ValueError):
        pass
    return out


def _boot_time() -> Optional[float]:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def query_gpus() -> List[Dict[str, Any]]:
    """GPUs reported by nvidia-smi, or [] when it is absent or fails."""
    exe = None
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        candidate = os.path.join(d or ".", "nvidia-smi")
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            exe = candidate
            break
    if exe is None:
        return []
    import subprocess  # only here: keeps the heap every fork copies small
    try:
        proc = subprocess.run(
            [exe, "--query-gpu=index,name,uuid,memory.total", "--format=csv,noheader,nounits"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            timeout=15, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4:
            continue
        try:
            gpus.append({"index": int(parts[0]), "name": parts[1], "uuid": parts[2],
                         "memory_mb": int(float(parts[3]))})
        except ValueError:
            continue
    return gpus


# --------------------------------------------------------------------------
# launch spec validation (in the agent, so bad specs never fork)


def _opt_int(spec: Dict[str, Any], name: str, default: Optional[int] = None,
             minimum: int = 0) -> Optional[int]:
    value = spec.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError("spec.%s must be an integer >= %d or null, got %r" % (name, minimum, value))
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or "\0" in value:
        raise ValueError("%s must be a string without NUL bytes, got %r" % (what, value))
    return value


def validate_spec(spec: Any) -> Dict[str, Any]:
    """Return a normalized copy of a launch spec; raise ValueError on bad input."""
    if not isinstance(spec, dict):
        raise ValueError("spec must be a JSON object")
    out: Dict[str, Any] = {}
    out["script"] = spec.get("script")
    if not isinstance(out["script"], str) or not out["script"]:
        raise ValueError("spec.script must be a non-empty string")
    argv = spec.get("argv") or []
    if not isinstance(argv, list):
        raise ValueError("spec.argv must be a list of strings")
    out["argv"] = [a if isinstance(a, str) and "\0" not in a else _text(a, "spec.argv[%d]" % i)
                   for i, a in enumerate(argv)]
    env = spec.get("env")
    if env is None:
        env = dict(os.environ)
    if not isinstance(env, dict):
        raise ValueError("spec.env must be an object of string values")
    for k, v in env.items():
        if not isinstance(v, str) or "\0" in v:  # what _text says, formatted only then
            _text(v, "spec.env[%r]" % k)
        if not k or "=" in k or "\0" in k:
            raise ValueError("spec.env has an invalid variable name %r" % (k,))
    out["env"] = env
    out["cwd"] = _text(spec.get("cwd") or "/", "spec.cwd")
    out["stdin"] = _text(spec.get("stdin") or "/dev/null", "spec.stdin")
    out["stdin_stream"] = bool(spec.get("stdin_stream"))
    out["stdout"] = _text(spec.get("stdout") or "/dev/null", "spec.stdout")
    out["stderr"] = _text(spec.get("stderr") or out["stdout"], "spec.stderr")
    # named in slurmstepd's "*** JOB 12 ON node01 CANCELLED AT ... ***" line
    out["node"] = _text(spec.get("node") or os.uname().nodename, "spec.node")
    out["job_id"] = _text(str(spec.get("job_id") or ""), "spec.job_id")
    mode = spec.get("open_mode") or "truncate"
    if mode not in _OPEN_MODES:
        raise ValueError("spec.open_mode must be one of %s, got %r" % (", ".join(_OPEN_MODES), mode))
    out["open_mode"] = mode
    out["time_limit_s"] = _opt_int(spec, "time_limit_s") or None  # 0 = unlimited, as SLURM
    out["kill_wait_s"] = _opt_int(spec, "kill_wait_s", 30)
    if out["kill_wait_s"] is None:
        out["kill_wait_s"] = 30
    out["mem_limit_mb"] = _opt_int(spec, "mem_limit_mb") or None  # 0 = unlimited, as SLURM
    out["umask"] = _opt_int(spec, "umask")
    if out["umask"] is not None and out["umask"] > 0o777:
        raise ValueError("spec.umask must be a file mode mask 0..0o777, got %o" % out["umask"])
    # bytes of output small enough to send home with the `ended` event
    out["inline_output"] = _opt_int(spec, "inline_output")
    # the job gets <jobdir>/stage: <workdir>/stage/<key> moved in (files the
    # controller put there before the launch), else an empty directory
    out["stage"] = bool(spec.get("stage", False))
    sig = spec.get("signal")
    if sig is not None:
        if not isinstance(sig, dict):
            raise ValueError("spec.signal must be {num, secs_before, batch_only} or null")
        num = _opt_int(sig, "num", minimum=1)
        if num is None or num >= signal.NSIG:
            raise ValueError("spec.signal.num must be a signal number 1..%d" % (signal.NSIG - 1))
        sig = {"num": num, "secs_before": _opt_int(sig, "secs_before", 0) or 0,
               "batch_only": bool(sig.get("batch_only", False))}
    out["signal"] = sig
    out["uid"] = _opt_int(spec, "uid")
    out["gid"] = _opt_int(spec, "gid")
    if os.geteuid() != 0:
        if out["uid"] not in (None, os.getuid()) or out["gid"] not in (None, os.getgid()):
            raise ValueError("cannot run the job as uid %s gid %s: the agent runs as uid %d, "
                             "not root" % (out["uid"], out["gid"], os.getuid()))
        out["uid"] = out["gid"] = None
    return out


# --------------------------------------------------------------------------
# the supervisor (runs in a process forked from the agent)


class _SetupError(Exception):
    """The job could not be started; the text is the whole user-facing message."""


class Supervisor:
    """Runs one job: fork, wait, enforce limits, record the result."""

    def __init__(self, workdir: str, key: str, jobdir: str, spec: Dict[str, Any],
                 notify_fd: int, job_umask: int, agent_fds: List[int],
                 changed_signals: List[int]) -> None:
        self.workdir = workdir
        self.agent_fds = agent_fds
        # Dispositions the job child must reset to default before exec.
        self.changed_signals = changed_signals
        self.key = key
        self.jobdir = jobdir
        self.spec = spec
        self.notify_fd = notify_fd
        self.job_umask = spec["umask"] if spec["umask"] is not None else job_umask
        self.script = os.path.join(jobdir, SCRIPT_FILE)
        self.pid = 0
        self.reaped = False
        self.sid = 0
        self.reason: Optional[str] = None
        self.error: Optional[str] = None
        self.cgroup: Optional[str] = None
        self.peak_kb = 0
        #: the job's orphans are re-parented to us (prctl), found by a tree walk
        self.subreaper = False
        #: CPU seconds (user, system) of orphans we reaped: part of the job's
        self.orphan_cpu = [0.0, 0.0]
        self.tracked: Set[int] = set()
        self.next_full_scan = 0.0
        self.stdio_plan = self.plan_stdio(spec)

    # -- set-up ----------------------------------------------------------

    def detach(self) -> None:
        """Leave the agent's session, stdio and fds behind."""
        signal.set_wakeup_fd(-1)  # that pipe belongs to the agent
        os.setsid()
        self.sid = os.getpid()
        if _prctl is not None and _HAVE_CHILDREN_FILE:
            self.subreaper = _prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        # No controlling terminal, but a stray HUP/INT must not orphan the job.
        _signal.signal(_SIGHUP, _SIG_IGN)
        _signal.signal(_SIGINT, _SIG_IGN)
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        # The poll object the agent holds is not an fd (poll(), not epoll).
        for fd in self.agent_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        _signal.signal(_SIGCHLD, _noop_handler)
        _signal.signal(_SIGUSR1, _noop_handler)

    def setup_cgroup(self) -> Optional[str]:
        """Create a cgroup v2 child with memory.max, or None to use the watchdog."""
        try:
            with open(os.path.join(_CGROUP_ROOT, "cgroup.controllers")) as f:
                if "memory" not in f.read().split():
                    return None
        except OSError:
            return None
        base = os.path.join(_CGROUP_ROOT, "fleetslurm")
        cg = os.path.join(base, "%s-%d" % (self.key, self.sid))
        try:
            os.makedirs(base, exist_ok=True)
            # Controllers must be enabled top-down; base holds no processes,
            # so enabling memory for its children is allowed.
            for parent in (_CGROUP_ROOT, base):
                path = os.path.join(parent, "cgroup.subtree_control")
                with open(path) as f:
                    enabled = f.read().split()
                if "memory" not in enabled:
                    with open(path, "w") as f:
                        f.write("+memory")
            os.mkdir(cg, 0o755)
            with open(os.path.join(cg, "memory.max"), "w") as f:
                f.write(str(self.spec["mem_limit_mb"] << 20))
            for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                try:
                    with open(os.path.join(cg, name), "w") as f:
                        f.write(value)
                except OSError:
                    pass  # older kernels or no swap accounting: limit still holds
            return cg
        except OSError as exc:
            log(self.workdir, "job %s: cgroup v2 unusable (%s); using RSS watchdog" % (self.key, exc))
            try:
                os.rmdir(cg)
            except OSError:
                pass
            return None

    # -- the job process (between fork and exec) -------------------------

    def exec_job(self, err_w: int) -> None:
        """In the job child: set up process group, limits, identity, stdio; exec."""
        spec = self.spec
        stage = "setup"
        try:
            signal.set_wakeup_fd(-1)
            os.close(self.notify_fd)
            os.setpgid(0, 0)
            # Restore what Python and the supervisor changed: the job must see
            # default dispositions (SIGPIPE in particular) and an empty mask.
            for sig in self.changed_signals:
                try:
                    _signal.signal(sig, _SIG_DFL)
                except (OSError, ValueError):
                    pass
            _signal.pthread_sigmask(_SIG_SETMASK, ())
            if self.cgroup:
                stage = "join memory cgroup"
                with open(os.path.join(self.cgroup, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            os.umask(self.job_umask)
            if spec["uid"] is not None or spec["gid"] is not None:
                stage = "switch to uid %s gid %s" % (spec["uid"], spec["gid"])
                self.drop_privileges(spec["uid"], spec["gid"])
            chdir_error: Optional[OSError] = None
            try:
                os.chdir(spec["cwd"])
            except OSError as exc:
                chdir_error = exc
                os.chdir("/tmp")
            self.open_stdio()
            if chdir_error is not None:
                # SLURM's own wording, so log scrapers keep working.
                write_all(2, ("slurmstepd: error: couldn't chdir to `%s': %s: going to /tmp "
                              "instead\n" % (spec["cwd"], os.strerror(chdir_error.errno or 0))
                              ).encode("utf-8", "surrogateescape"))
            env = dict(spec["env"])
            env["SLURM_TASK_PID"] = str(os.getpid())
            # srun (fleetslurm's) records each step's process group here, so that
            # signals meant for job steps (scancel --signal, --signal=SIG@T) find them
            env["FLEETSLURM_STEPS_DIR"] = os.path.join(self.jobdir, STEPS_DIR)
            # srun records its steps under this run (a requeued job runs again)
            env["FLEETSLURM_RUN_KEY"] = self.key
            stage = "exec"
            try:
                os.execve(self.script, [self.script] + spec["argv"], env)
            except OSError as exc:
                msg = "slurmstepd: error: execve(): %s: %s\n" % (self.script, os.strerror(exc.errno or 0))
                try:
                    write_all(2, msg.encode("utf-8", "surrogateescape"))
                finally:
                    write_all(err_w, msg.strip().encode("utf-8", "surrogateescape"))
                return
        except _SetupError as exc:
            write_all(err_w, str(exc).encode("utf-8", "replace"))
        except BaseException as exc:  # anything here must end in _exit, never unwind
            write_all(err_w, ("could not %s: %s" % (stage, exc)).encode("utf-8", "replace"))

    @staticmethod
    def drop_privileges(uid: Optional[int], gid: Optional[int]) -> None:
        """Become uid/gid (only reached as root; validate_spec rejects otherwise)."""
        if gid is not None:
            groups_set = False
            if uid is not None and pwd is not None:
                try:
                    os.initgroups(pwd.getpwuid(uid).pw_name, gid)
                    groups_set = True
                except (KeyError, OSError):
                    pass
            if not groups_set:
                os.setgroups([gid])
            os.setgid(gid)
        elif uid is not None:
            os.setgroups([])
        if uid is not None:
            os.setuid(uid)

    def open_stdio(self) -> None:
        """Open the job's stdin/stdout/stderr as fds 0/1/2, creating parent dirs."""
        spec = self.spec
        # O_APPEND in both modes: slurmstepd's "*** JOB N CANCELLED ***" line
        # (write_note, from the agent's own descriptor) must not be overwritten
        # by what the job writes after it, as SLURM shares one description
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (
            0 if spec["open_mode"] == "append" else os.O_TRUNC)
        try:
            # a streamed stdin was opened by the agent before the fork (see
            # Agent.open_stdin_fifo); a file is opened here
            fin = spec["stdin_fd"] if spec.get("stdin_fd") is not None \
                else os.open(spec["stdin"], os.O_RDONLY)
        except OSError as exc:
            raise _SetupError("cannot open stdin file %s: %s"
                              % (spec["stdin"], os.strerror(exc.errno or 0))) from None
        fds = []
        for name, path, parent in self.stdio_plan:
            try:
                try:
                    fd = os.open(path, flags, 0o666)
                except FileNotFoundError:
                    if not parent:
                        raise
                    # the parent directories are created only when missing
                    # (a mkdir costs a syscall and an exception per level)
                    for d in parent:
                        try:
                            os.mkdir(d)
                        except FileExistsError:
                            pass
                    fd = os.open(path, flags, 0o666)
            except OSError as exc:
                raise _SetupError("cannot open %s file %s: %s"
                                  % (name, path, os.strerror(exc.errno or 0))) from None
            fds.append(fd)
        os.dup2(fin, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[-1], 2)  # the same file: one description, so writes do not clobber
        for fd in set(fds) | {fin}:
            if fd > 2:
                os.close(fd)

    @staticmethod
    def plan_stdio(spec: Dict[str, Any]) -> List[Tuple[str, str, Tuple[str, ...]]]:
        """(name, path, directories to create when missing) of the files to
        open for stdout and, when it is another file, stderr. Worked out before
        the fork: path arithmetic in the job child is copy-on-write faults."""
        plan = []
        seen = set()
        for name in ("stdout", "stderr"):
            path = spec[name]
            norm = os.path.normpath(path)
            if norm not in seen:
                seen.add(norm)
                plan.append((name, path, Supervisor.dirs_needed(path)))
        return plan

    @staticmethod
    def dirs_needed(path: str) -> Tuple[str, ...]:
        """The directories opening ``path`` walks through, as prefixes of the
        path as written, in the order the kernel resolves them: for
        ``out/x/../../5`` that is ``out`` then ``out/x``, both of which must
        exist before ``..`` can leave them (normpath drops both, and through
        a symlink ``x/..`` is not where normpath says). Prefixes ending in
        ``.`` or ``..`` name directories already made."""
        parts = path.split("/")[:-1]
        dirs = []
        for i, part in enumerate(parts):
            if part not in ("", ".", ".."):
                dirs.append("/".join(parts[:i + 1]))
        return tuple(dirs)

    # -- supervision -------------------------------------------------------

    def run(self) -> None:
        """Whole life of the supervisor; returns when result.json is written."""
        spec = self.spec
        try:
            self.detach()
            if spec["uid"] is not None and spec["uid"] != os.geteuid():
                # The job needs to exec its script: hand it the script and let it
                # traverse (not list) the directories on the way.
                os.chown(self.script, spec["uid"], spec["gid"] if spec["gid"] is not None else -1)
                for d in (self.jobdir, os.path.dirname(self.jobdir), self.workdir):
                    mode = os.stat(d).st_mode & 0o7777
                    os.chmod(d, mode | 0o011)
            full = self.full_disk(only_jobdir=True)
            if full is not None:
                # full before the job ran: the machine's fault, not the job's
                raise OSError(errno.ENOSPC, full.split(" when the job ended")[0]
                              + " before the job started")
            self.reserve_result()
            if spec["mem_limit_mb"]:
                self.cgroup = self.setup_cgroup()
            err_r, err_w = os.pipe()
            pid = os.fork()
        except BaseException as exc:
            # Nothing has run yet: the agent reports launch_failed and removes the directory.
            self.notify(json.dumps({"error": "supervisor could not start job %s: %s"
                                    % (self.key, exc)}) + "\n")
            raise
        if pid == 0:
            try:
                os.close(err_r)
                self.exec_job(err_w)
            finally:
                os._exit(127)
        os.close(err_w)
        if spec.get("stdin_fd") is not None:
            os.close(spec["stdin_fd"])  # the job has it now
        self.pid = pid
        try:
            self.watch(err_r)
        except BaseException as exc:
            # A supervisor bug or a full disk must not leave the job running
            # unwatched: kill it and record why, so it is FAILED, not LOST.
            log(self.workdir, "job %s: supervisor failed:\n%s" % (self.key, format_exc()))
            if not self.reaped:
                self.kill(signal.SIGKILL)
                self.error = "supervisor failed: %s: %s" % (type(exc).__name__, exc)
                try:
                    _, status, usage = os.wait4(pid, 0)
                    self.finish(status, usage, time.time())
                except BaseException:
                    pass
            raise

    def watch(self, err_r: int) -> None:
        """Record the started job, tell the agent, supervise it, write the result."""
        pid = self.pid
        try:
            os.setpgid(pid, pid)  # also here, so signals reach the group at once
        except OSError:
            pass  # the child got there first, or already exec'd
        start_time = time.time()
        start_mono = time.monotonic()
        st = proc_stat(pid)
        ticks = st[2] if st else None
        own = proc_stat(self.sid)
        # Before `started` goes out, so a new agent can always adopt a started job.
        # Written in place, not via rename: a reader that sees it half-written
        # gets a parse error and treats the launch as still in flight.
        fd = os.open(os.path.join(self.jobdir, SUPERVISOR_FILE),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, ('{"pid":%d,"ticks":%s,"job_pid":%d,"job_ticks":%s,"start_time":%r}'
                           % (self.sid, "null" if own is None else own[2], pid,
                              "null" if ticks is None else ticks, start_time)).encode())
        finally:
            os.close(fd)
        self.notify('{"pid":%d,"start_time":%r,"ticks":%s}\n'
                    % (pid, start_time, "null" if ticks is None else ticks))
        status, usage = self.supervise(err_r, start_mono)
        self.finish(status, usage, start_time)

    def notify(self, line: str) -> None:
        """Tell the agent how the launch went (one JSON line, then EOF)."""
        try:
            write_all(self.notify_fd, line.encode())
        except OSError:
            pass  # the agent is gone; the result file still tells the story
        finally:
            try:
                os.close(self.notify_fd)
            except OSError:
                pass

    def supervise(self, err_r: int, start: float) -> Tuple[int, Any]:
        """Wait for the job, acting on deadlines and cancel requests."""
        spec = self.spec
        poller = select.poll()
        poller.register(self.wake_r, select.POLLIN)
        poller.register(err_r, select.POLLIN)
        limit = spec["time_limit_s"]
        sig = spec["signal"]
        t_signal = start + max(0, limit - sig["secs_before"]) if (sig and limit) else None
        t_limit = start + limit if limit else None
        t_kill: Optional[float] = None
        watchdog = bool(spec["mem_limit_mb"]) and self.cgroup is None
        t_mem: Optional[float] = start if watchdog else None
        check_cancel = True  # a cancel may have arrived before our handler existed
        reap = False  # a SIGCHLD: maybe an orphan of the job's to collect
        err_buf = b""
        while True:
            if os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break  # (orphans are collected by kill_leftovers)
            if reap:
                reap = False
                self.reap_orphans()
            now = time.monotonic()
            if check_cancel:
                check_cancel = False
                t_kill = self.check_cancel(now, t_kill)
                new_limit = self.check_limit()
                if new_limit is not None and self.reason is None:
                    limit = new_limit[0]
                    t_limit = start + limit if limit else None
                    t_signal = (start + max(0, limit - sig["secs_before"])
                                if (sig and limit) else None)
            if t_signal is not None and now >= t_signal:
                t_signal = None
                try:
                    signal_scope(self.jobdir, self.sid, self.pid, sig["num"],
                                 "batch" if sig["batch_only"] else "steps")
                except OSError:
                    pass
            if t_limit is not None and now >= t_limit:
                t_limit = None
                if self.reason is None:
                    self.note(" DUE TO TIME LIMIT")
                self.set_reason("TIMEOUT")
                self.stop_job(signal.SIGTERM)
                if t_kill is None:
                    t_kill = now + spec["kill_wait_s"]
            if t_kill is not None and now >= t_kill:
                t_kill = None
                self.kill_everything(now)
            if t_mem is not None and now >= t_mem:
                t_mem = now + _MEM_SAMPLE_S
                used_kb = self.sample_memory(now)
                # at most 1/_MEM_SAMPLE_DUTY of the time goes to sampling
                t_mem = max(t_mem, now + _MEM_SAMPLE_DUTY * (time.monotonic() - now))
                self.peak_kb = max(self.peak_kb, used_kb)
                if used_kb > spec["mem_limit_mb"] * 1024:
                    log(self.workdir, "job %s: memory (PSS) %d KiB over the %d MiB limit; killing"
                        % (self.key, used_kb, spec["mem_limit_mb"]))
                    self.set_reason("OUT_OF_MEMORY")
                    self.kill_everything(now)
                    t_mem = None
            deadlines = [t for t in (t_signal, t_limit, t_kill, t_mem) if t is not None]
            timeout = None
            if deadlines:
                # poll() takes ms; round up so we do not wake just before a deadline
                timeout = min(_MAX_POLL_MS,
                              max(0, int((min(deadlines) - time.monotonic()) * 1000) + 1))
            for fd, _ in poller.poll(timeout):
                if fd == self.wake_r:
                    try:
                        got = os.read(self.wake_r, 4096)
                    except BlockingIOError:
                        got = b""
                    if signal.SIGUSR1 in got:
                        check_cancel = True
                    if _SIGCHLD in got and self.subreaper:
                        reap = True
                else:
                    chunk = os.read(err_r, 4096)
                    if chunk:
                        err_buf += chunk
                    else:
                        poller.unregister(err_r)
                        os.close(err_r)
                        err_r = -1
        if err_r >= 0:
            # The child is gone, so its (close-on-exec) end is closed: this hits EOF.
            while True:
                chunk = os.read(err_r, 65536)
                if not chunk:
                    break
                err_buf += chunk
            os.close(err_r)
        if err_buf:
            self.error = err_buf.decode("utf-8", "replace")
        # The batch shell is done: like slurmstepd, kill what it left behind
        # (its group and srun's tasks). Done before reaping so the group id
        # cannot have been reused yet.
        self.kill(signal.SIGKILL)
        self.kill_steps(signal.SIGKILL)
        if self.subreaper:
            # and what it daemonized, as SLURM's proctrack/cgroup does
            self.kill_leftovers()
        elif self.reason is not None:
            self.sweep_session()
        _, status, usage = os.wait4(self.pid, 0)
        self.reaped = True
        return status, usage

    def read_marker(self, name: str) -> Optional[str]:
        """The text of a file the agent leaves in the job's directory, or None
        while there is none (the usual case, told without an exception)."""
        path = os.path.join(self.jobdir, name)
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

    def check_limit(self) -> Optional[Tuple[Optional[int]]]:
        """A new time limit left by the agent (``scontrol update TimeLimit=``)."""
        text = self.read_marker(LIMIT_FILE)
        if text is None:
            return None
        if text == "none":
            return (None,)
        return (int(text),) if text.isdigit() else None

    def note(self, why: str) -> None:
        """slurmstepd's line in the job's stderr when it ends the job."""
        write_note(self.spec["stderr"], self.spec["node"],
                   self.spec["job_id"] or self.key.split(".")[0], why)

    def set_reason(self, reason: str) -> None:
        """Record why we ended the job; the first reason wins."""
        if self.reason is None:
            self.reason = reason

    def check_cancel(self, now: float, t_kill: Optional[float]) -> Optional[float]:
        """Act on jobs/K/cancel if present; return the SIGKILL deadline."""
        text = self.read_marker(CANCEL_FILE)
        if text is None:
            return t_kill
        words = text.split()
        try:
            signum = int(words[0]) if words else signal.SIGTERM
        except ValueError:
            signum = signal.SIGTERM
        if self.reason is None and "noted" not in words[1:]:
            self.note(" DUE TO JOB REQUEUE" if "requeue" in words[1:] else "")
        self.set_reason("CANCELLED")
        self.stop_job(signum)
        return t_kill if t_kill is not None else now + self.spec["kill_wait_s"]

    def stop_job(self, signum: int) -> None:
        """End the job as slurmstepd does: every step and the batch shell get
        SIGCONT then ``signum`` (SIGKILL follows after KillWait). The marker
        tells srun not to kill its tasks at once: they get this signal here."""
        try:
            write_text_atomic(os.path.join(self.jobdir, STOPPING_FILE), str(signum))
        except OSError:
            pass
        escaped = [pid for pid in self.job_processes()
                   if (proc_stat(pid) or ("", self.sid))[1] != self.sid] if self.subreaper else []
        for sig in (signal.SIGCONT, signum):
            self.kill_steps(sig)
            self.kill(sig)
            for pid in escaped:  # left the session (setsid): neither group has it
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass

    def kill_steps(self, signum: int) -> None:
        """Signal srun's tasks (each is a process group of its own)."""
        try:
            signal_scope(self.jobdir, self.sid, self.pid, signum, "steps")
        except OSError:
            pass

    def kill(self, signum: int, group: bool = True) -> None:
        """Signal the job's process group (or only the batch shell)."""
        try:
            if group:
                os.killpg(self.pid, signum)
            else:
                os.kill(self.pid, signum)
        except OSError:
            pass  # already gone

    def kill_everything(self, now: float) -> None:
        """SIGKILL the job's group and whatever else lives in our session."""
        self.kill(signal.SIGKILL)
        self.sweep_session()

    def sweep_session(self) -> None:
        if self.cgroup:
            try:
                with open(os.path.join(self.cgroup, "cgroup.kill"), "w") as f:
                    f.write("1")
            except OSError:
                pass
        for pid in self.job_processes(full=True):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def job_processes(self, now: float = 0.0, full: bool = False) -> Set[int]:
        """Every process of the job: all below the supervisor when it is their
        subreaper (a setsid'd or double-forked one included), else those in
        its session."""
        if not self.subreaper:
            return self.session_members(now, full)
        found: Set[int] = set()
        stack = self.own_children()
        while stack:
            pid = stack.pop()
            if pid not in found:
                found.add(pid)
                stack.extend(child_pids(pid))
        return found

    def own_children(self) -> List[int]:
        """The supervisor's children (it has one thread: one file to read)."""
        try:
            return [int(c) for c in read_small("/proc/%d/task/%d/children"
                                               % (self.sid, self.sid)).split()]
        except (OSError, ValueError):
            return child_pids(self.sid)

    def reap_orphans(self) -> None:
        """Collect the job's orphans that have exited (we are their subreaper;
        unreaped they would stay zombies for the job's life). Their CPU time
        is the job's."""
        for pid in self.own_children():
            if pid == self.pid:
                continue  # the batch shell: supervise() collects its status
            try:
                got, _, usage = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if got:
                self.orphan_cpu[0] += usage.ru_utime
                self.orphan_cpu[1] += usage.ru_stime

    def kill_leftovers(self) -> None:
        """The batch shell has exited: SIGKILL every process the job left
        (reparented to us), round after round, until none is alive."""
        if self.own_children() == [self.pid]:
            return  # the usual case: the batch shell (exited) was all there was
        for _ in range(500):
            live = [pid for pid in self.job_processes()
                    if pid != self.pid and alive(pid, None)]
            for pid in live:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            self.reap_orphans()
            if not live:
                return
            time.sleep(0.01)  # SIGKILL is delivered asynchronously
        log(self.workdir, "job %s: processes left after the job's end would not die: %s"
            % (self.key, sorted(self.job_processes())))

    def session_members(self, now: float = 0.0, full: bool = False) -> Set[int]:
        """Pids in our session except ourselves.

        A full /proc scan per sample would cost milliseconds on a busy node, so
        normally walk the job's process tree (plus processes seen before, which
        may have been re-parented) and rescan /proc only every few seconds to
        catch processes that escaped the tree before we saw them.
        """
        found: Set[int] = set()
        if full or not _HAVE_CHILDREN_FILE or now >= self.next_full_scan:
            self.next_full_scan = now + _SESSION_RESCAN_S
            for name in os.listdir("/proc"):
                if name.isdigit():
                    pid = int(name)
                    if pid != self.sid:
                        st = proc_stat(pid)
                        if st is not None and st[1] == self.sid:
                            found.add(pid)
        else:
            stack = [self.pid] + list(self.tracked)
            while stack:
                pid = stack.pop()
                if pid in found or pid == self.sid:
                    continue
                st = proc_stat(pid)
                if st is None or st[1] != self.sid:
                    continue
                found.add(pid)
                try:
                    tids = os.listdir("/proc/%d/task" % pid)
                except OSError:
                    continue
                for tid in tids:
                    try:
                        with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                            stack.extend(int(c) for c in f.read().split())
                    except (OSError, ValueError):
                        pass
        self.tracked = found
        return found

    def sample_memory(self, now: float) -> int:
        """Memory (KiB) the job's processes use together: the sum of their
        PSS, which counts a page shared by N of them 1/N in each (summed RSS
        counted 200 sleeps' shared libc 200 times, and killed them)."""
        return sum(memory_kb(pid) for pid in self.job_processes(now))

    def finish(self, status: int, usage: Any, start_time: float) -> None:
        """Turn the wait status into a RESULT and write it atomically."""
        if os.WIFSIGNALED(status):
            exit_code, signum = 0, os.WTERMSIG(status)
        else:
            exit_code, signum = os.WEXITSTATUS(status), 0
        if self.cgroup:
            self.finish_cgroup()
        if self.reason is not None:
            state = self.reason
        elif exit_code == 0 and signum == 0:
            state = "COMPLETED"
        else:
            state = "FAILED"
        error = self.error
        full = self.full_disk()
        if full is not None:
            # the job's failure, whatever its exit code: its output (and
            # anything else it wrote there) may be cut short
            if state == "COMPLETED":
                state = "FAILED"
            error = (error + "\n" if error else "") + full
            # where the user looks (when that file is on another disk)
            append_line(self.spec["stderr"], "slurmstepd: error: %s\n" % full)
        result = {
            "key": self.key, "pid": self.pid, "start_time": start_time, "end_time": time.time(),
            "state": state, "exit_code": exit_code, "signal": signum,
            "user_cpu": usage.ru_utime + self.orphan_cpu[0],
            "system_cpu": usage.ru_stime + self.orphan_cpu[1],
            "max_rss_kb": max(int(usage.ru_maxrss), self.peak_kb), "error": error,
        }
        self.record(result)

    def reserve_result(self) -> None:
        """Reserve the blocks the result will take (see RESULT_SPARE)."""
        fd = os.open(os.path.join(self.jobdir, RESULT_SPARE),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, b" " * _SPARE_SIZE)
        finally:
            os.close(fd)

    def record(self, result: Dict[str, Any]) -> None:
        """Write the RESULT into the reserved file, then rename it to
        result.json. Too long for it (a long error text), a new file is tried
        first, then the reserved one with the error text cut."""
        spare = os.path.join(self.jobdir, RESULT_SPARE)
        data = json.dumps(result, separators=(",", ":")).encode()
        if len(data) > _SPARE_SIZE:
            try:
                write_json_atomic(os.path.join(self.jobdir, RESULT_FILE), result, fsync=True)
                os.unlink(spare)
                return
            except OSError:
                error = str(result.get("error") or "")
                while len(data) > _SPARE_SIZE and error:
                    error = error[:len(error) // 2]
                    result["error"] = error + " [cut]"
                    data = json.dumps(result, separators=(",", ":")).encode()
        fd = os.open(spare, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))  # frees blocks, never needs one
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(spare, os.path.join(self.jobdir, RESULT_FILE))
        except OSError as exc:  # read_result reads it where it is
            log(self.workdir, "job %s: result left in %s: %s" % (self.key, spare, exc))

    def full_disk(self, only_jobdir: bool = False) -> Optional[str]:
        """Why the job's output may be cut short when a filesystem it wrote
        to (its job directory, its output files) is full at its end, or None."""
        uid = self.spec["uid"] if self.spec["uid"] is not None else os.geteuid()
        seen = set()
        paths = (self.jobdir,) if only_jobdir else (self.jobdir, self.spec["stdout"],
                                                    self.spec["stderr"])
        for path in paths:
            try:
                st = os.stat(path)
                if path != self.jobdir and not (st.st_mode & 0o170000 == 0o100000):
                    continue  # /dev/null, a pipe: not a disk
                if st.st_dev in seen:
                    continue
                seen.add(st.st_dev)
                vfs = os.statvfs(path)
            except OSError:
                continue
            # root may write into the blocks kept for it
            free = (vfs.f_bfree if uid == 0 else vfs.f_bavail) * vfs.f_frsize
            if vfs.f_blocks and free < _DISK_FULL_BYTES:
                return ("No space left on device: the filesystem of %s was full when the job "
                        "ended (%d KiB free); its output may be cut short" % (path, free >> 10))
        return None

    def finish_cgroup(self) -> None:
        """Read OOM kills and peak memory from the cgroup, then remove it."""
        assert self.cgroup is not None
        try:
            with open(os.path.join(self.cgroup, "memory.events")) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill" and int(value) > 0:
                        self.set_reason("OUT_OF_MEMORY")
        except (OSError, ValueError):
            pass
        try:
            with open(os.path.join(self.cgroup, "memory.peak")) as f:
                self.peak_kb = max(self.peak_kb, int(f.read().split()[0]) // 1024)
        except (OSError, ValueError, IndexError):
            pass
        self.sweep_session()
        for _ in range(50):
            try:
                os.rmdir(self.cgroup)
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    return
                time.sleep(0.02)  # killed processes take a moment to leave


# --------------------------------------------------------------------------
# the agent


class Job:
    """The agent's view of one job directory."""

    __slots__ = ("key", "dir", "own", "sup_pid", "sup_ticks", "pid", "ticks", "start_time",
                 "result", "emitted", "launch_fd", "waiters", "inline", "note",
                 "stdin")

    def __init__(self, key: str, jobdir: str, own: bool) -> None:
        self.key = key
        self.dir = jobdir
        self.own = own                     # supervisor is our child (SIGCHLD) vs adopted (polled)
        self.sup_pid: Optional[int] = None
        self.sup_ticks: Optional[int] = None
        self.pid: Optional[int] = None     # the job's batch shell
        self.ticks: Optional[int] = None
        self.start_time: Optional[float] = None
        self.result: Optional[Dict[str, Any]] = None
        self.emitted = False
        self.launch_fd: Optional[int] = None
        self.waiters: List[Any] = []       # request ids awaiting `started`
        #: (stdout path, stderr path, byte limit): send small output with `ended`
        self.inline: Optional[Tuple[str, str, int]] = None
        #: (stderr path, node, job id) for slurmstepd's line when it is cancelled
        self.note: Optional[Tuple[str, str, str]] = None
        self.stdin: Optional[StdinFeed] = None  # srun's stdin, when streamed

    def info(self) -> Dict[str, Any]:
        """JOBINFO for hello/status."""
        return {"key": self.key, "status": "ended" if self.result is not None else "running",
                "pid": self.pid, "result": self.result}


class StdinFeed:
    """srun's standard input on its way into one job's stdin FIFO."""

    __slots__ = ("fd", "buf", "written", "eof", "polled")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()
        self.written = 0       # bytes the job's pipe has taken
        self.eof = False       # srun's stdin ended: close after the buffer
        self.polled = False    # registered for POLLOUT


class _Gone(Exception):
    """The controller closed our stdout."""


class Agent:
    """The JSON-lines server. Single-threaded; fork is safe because of that."""

    def __init__(self, workdir: str) -> None:
        self.workdir = os.path.abspath(workdir)
        self.jobs_dir = os.path.join(self.workdir, "jobs")
        # Our own files are private; the job gets the umask we were started with.
        self.job_umask = os.umask(0o077)
        os.makedirs(self.jobs_dir, exist_ok=True)
        self.jobs: Dict[str, Job] = {}
        self.children: Dict[int, str] = {}
        self.launch_fds: Dict[int, str] = {}
        self.stdin_fds: Dict[int, str] = {}  # write ends of jobs' stdin FIFOs -> key
        self.adopted: Set[str] = set()
        self.ready = False   # hold unsolicited `ended` until the controller has spoken
        self.stop = False
        self.inbuf = b""
        self.outbuf: List[bytes] = []
        self.gpus: Optional[List[Dict[str, Any]]] = None
        self.since = time.time()  # scontrol's SlurmdStartTime
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, _noop_handler)
        # Installed before any fork so a supervisor that gets a cancel before
        # it set up its own handler is not killed by SIGUSR1's default action.
        signal.signal(signal.SIGUSR1, _noop_handler)
        # Worked out once here, so the job child does as little as possible
        # between fork and exec (every page it touches is a copy-on-write fault).
        self.changed_signals = [signal.SIGHUP, signal.SIGINT]  # the supervisor ignores these
        for sig in signal.valid_signals():
            if sig not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGHUP, signal.SIGINT):
                handler = signal.getsignal(sig)
                if handler is not None and handler is not signal.SIG_DFL:
                    self.changed_signals.append(sig)
        self.poller = select.poll()
        self.poller.register(0, select.POLLIN)
        self.poller.register(self.wake_r, select.POLLIN)
        self.close_stray_fds()
        for name in sorted(os.listdir(self.jobs_dir)):
            if key_error(name) is None and os.path.isdir(os.path.join(self.jobs_dir, name)):
                self.adopt(name)
        gc.freeze()  # keep the startup heap out of copy-on-write faults in forks

    # -- I/O ---------------------------------------------------------------

    def close_stray_fds(self) -> None:
        """Close fds we inherited but did not open, once, at start.

        After this the agent knows every fd it holds (own_fds), so a
        supervisor can drop them without listing /proc/self/fd, which is
        costly on the launch path.
        """
        keep = {0, 1, 2, self.wake_r, self.wake_w}
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass  # the fd listdir itself used

    def own_fds(self) -> List[int]:
        """Every fd above 2 the agent holds open (for a supervisor to close)."""
        return [self.wake_r, self.wake_w] + list(self.launch_fds) + list(self.stdin_fds)

    def send(self, obj: Dict[str, Any]) -> None:
        """Queue one JSON line for stdout; ``flush`` writes the queue at the end of
        each turn of the loop, so a burst of replies and events costs one write
        (over SSH: one packet, not one per line)."""
        self.outbuf.append((json.dumps(obj, separators=(",", ":")) + "\n").encode())

    def flush(self) -> None:
        if not self.outbuf:
            return
        data, self.outbuf = b"".join(self.outbuf), []
        try:
            write_all(1, data)
        except OSError as exc:
            raise _Gone() from exc

    def serve(self) -> None:
        """Run until stdin EOF or `shutdown`; running jobs are left alone."""
        try:
            self._serve()
        finally:
            self.flush()

    def _serve(self) -> None:
        next_poll = time.monotonic() + _ADOPT_POLL_S
        while not self.stop:
            self.flush()
            timeout = None
            if self.adopted:
                timeout = max(0, int((next_poll - time.monotonic()) * 1000) + 1)
            for fd, _ in self.poller.poll(timeout):
                if fd == 0:
                    self.read_stdin()
                elif fd == self.wake_r:
                    try:
                        os.read(self.wake_r, 4096)
                    except BlockingIOError:
                        pass
                    self.reap()
                elif fd in self.stdin_fds:
                    job = self.jobs.get(self.stdin_fds[fd])
                    if job is not None:
                        self.feed_stdin(job)
                else:
                    self.on_launch_fd(fd)
                if self.stop:
                    return
            if self.adopted and time.monotonic() >= next_poll:
                next_poll = time.monotonic() + _ADOPT_POLL_S
                self.poll_adopted()

    def read_stdin(self) -> None:
        data = os.read(0, 1 << 16)
        if not data:
            if self.inbuf.strip():
                self.handle_line(self.inbuf)
            self.inbuf = b""
            self.stop = True
            return
        self.inbuf += data
        while not self.stop:
            nl = self.inbuf.find(b"\n")
            if nl < 0:
                break
            line, self.inbuf = self.inbuf[:nl], self.inbuf[nl + 1:]
            if line.strip():
                self.handle_line(line)
        if len(self.inbuf) > _MAX_LINE:
            self.inbuf = b""
            self.send({"ev": "error", "re": None,
                       "error": "request line longer than %d bytes dropped" % _MAX_LINE})

    def handle_line(self, line: bytes) -> None:
        """Decode and dispatch one request; errors become `error` events."""
        rid = None
        try:
            try:
                req = json.loads(line)
            except ValueError as exc:
                self.send({"ev": "error", "re": None, "error": "bad JSON request line: %s" % exc})
                return
            if not isinstance(req, dict):
                self.send({"ev": "error", "re": None, "error": "a request must be a JSON object"})
                return
            rid = req.get("id")
            handler = _OPS.get(req.get("op"))  # type: ignore[arg-type]
            if handler is None:
                self.send({"ev": "error", "re": rid, "error": "unknown op %r; valid ops: %s"
                           % (req.get("op"), ", ".join(sorted(_OPS)))})
                return
            handler(self, req, rid)
        except _Gone:
            raise
        except Exception as exc:
            log(self.workdir, "error handling %r:\n%s" % (line[:200], format_exc()))
            self.send({"ev": "error", "re": rid, "error": "agent error: %s: %s"
                       % (type(exc).__name__, exc)})
        finally:
            if not self.ready:
                self.ready = True
                for job in list(self.jobs.values()):
                    if job.result is not None:
                        self.emit_ended(job)

    # -- job bookkeeping ------------------------------------------------------

    def jobdir(self, key: str) -> str:
        return os.path.join(self.jobs_dir, key)

    def lookup(self, key: str) -> Optional[Job]:
        """The job for ``key``, adopting a directory we did not know of."""
        job = self.jobs.get(key)
        if job is None and os.path.isdir(self.jobdir(key)):
            job = self.adopt(key)
        return job

    def adopt(self, key: str) -> Job:
        """Take over a job directory left by an earlier agent."""
        job = Job(key, self.jobdir(key), own=False)
        self.jobs[key] = job
        self.refresh(job)
        if job.result is None:
            self.adopted.add(key)
        return job

    def refresh(self, job: Job) -> None:
        """Re-read an adopted job's files; decide ended / running / LOST."""
        job.result = read_result(job.dir)
        if job.result is not None:
            return
        if job.sup_pid is None:
            sup = read_json(os.path.join(job.dir, SUPERVISOR_FILE))
            if sup is not None:
                job.sup_pid, job.sup_ticks = sup.get("pid"), sup.get("ticks")
                job.pid, job.ticks = sup.get("job_pid"), sup.get("job_ticks")
                job.start_time = sup.get("start_time")
        if job.sup_pid is not None:
            if not alive(job.sup_pid, job.sup_ticks):
                self.mark_lost(job, "supervisor vanished")
            return
        try:
            age = time.time() - os.stat(job.dir).st_mtime
        except OSError:
            age = _LOST_GRACE_S + 1
        if age > _LOST_GRACE_S:
            self.mark_lost(job, "supervisor vanished before starting the job")

    def mark_lost(self, job: Job, why: str) -> None:
        """Record a LOST result, unless a real one appeared meanwhile."""
        path = os.path.join(job.dir, RESULT_FILE)
        result = {"key": job.key, "pid": job.pid or 0, "start_time": job.start_time or 0.0,
                  "end_time": time.time(), "state": "LOST", "exit_code": 0, "signal": 0,
                  "user_cpu": 0.0, "system_cpu": 0.0, "max_rss_kb": 0, "error": why}
        try:
            if not write_json_atomic(path, result, fsync=True, exclusive=True):
                result = read_json(path) or result
        except OSError as exc:
            log(self.workdir, "job %s: cannot write LOST result: %s" % (job.key, exc))
        job.result = result
        if result.get("state") == "LOST" and alive(job.pid, job.ticks):
            # Nobody supervises it and the controller will requeue it: an
            # orphan left running would make the job run twice.
            try:
                os.killpg(job.pid, signal.SIGKILL)  # type: ignore[arg-type]
            except OSError:
                pass
        log(self.workdir, "job %s: %s" % (job.key, why))

    def poll_adopted(self) -> None:
        for key in list(self.adopted):
            job = self.jobs.get(key)
            if job is None:
                self.adopted.discard(key)
                continue
            self.refresh(job)
            if job.result is not None:
                self.adopted.discard(key)
                self.emit_ended(job)

    def emit_ended(self, job: Job) -> None:
        if job.result is not None and job.stdin is not None:
            self.close_stdin(job)
        if self.ready and not job.emitted and job.result is not None:
            job.emitted = True
            msg: Dict[str, Any] = {"ev": "ended", "key": job.key, "result": job.result}
            if job.inline is not None:
                output = inline_output(*job.inline)
                if output is not None:
                    msg["output"] = output
            self.send(msg)

    def reap(self) -> None:
        """Collect exited supervisors (our children) and report their jobs."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            key = self.children.pop(pid, None)
            job = self.jobs.get(key) if key is not None else None
            if job is None or job.sup_pid != pid:
                continue  # forgotten, or its launch failed
            if job.launch_fd is not None:
                self.on_launch_fd(job.launch_fd)  # `started` must precede `ended`
                if self.jobs.get(key) is not job:
                    continue
            job.result = read_result(job.dir)
            if job.result is None:
                how = ("killed by signal %d" % os.WTERMSIG(status) if os.WIFSIGNALED(status)
                       else "exit status %d" % os.WEXITSTATUS(status))
                self.mark_lost(job, "supervisor vanished (%s)" % how)
            self.emit_ended(job)

    def on_launch_fd(self, fd: int) -> None:
        """The supervisor reported the job's pid (or why it could not start it)."""
        # The fd may be stale: reaping can consume a pipe whose readiness is
        # still queued in the same select() batch, and its number may even
        # have been reused by a newer launch. Only act on what we still own.
        key = self.launch_fds.get(fd)
        if key is None:
            return
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        del self.launch_fds[fd]
        self.poller.unregister(fd)
        os.close(fd)
        job = self.jobs.get(key) if key is not None else None
        if job is None:
            return
        job.launch_fd = None
        try:
            msg = json.loads(data) if data.strip() else {}
        except ValueError:
            msg = {}
        waiters, job.waiters = job.waiters, []
        if "error" in msg:
            # Nothing ran: remove the directory so the same key may be retried.
            del self.jobs[key]
            try:
                remove_tree(job.dir)
            except OSError as exc:
                log(self.workdir, "job %s: cannot remove %s: %s" % (key, job.dir, exc))
            for rid in waiters:
                self.send({"ev": "launch_failed", "re": rid, "key": key, "error": msg["error"]})
            return
        job.pid, job.ticks, job.start_time = msg.get("pid"), msg.get("ticks"), msg.get("start_time")
        for rid in waiters:
            self.send(self.started(job, rid))

    @staticmethod
    def started(job: Job, rid: Any) -> Dict[str, Any]:
        return {"ev": "started", "re": rid, "key": job.key, "pid": job.pid,
                "start_time": job.start_time}

    # -- ops ------------------------------------------------------------------

    def facts(self) -> Dict[str, Any]:
        """FACTS: what the scheduler needs to know about this machine."""
        mem = _meminfo()
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
        try:
            st = os.statvfs(self.workdir)
            disk_free = st.f_bavail * st.f_frsize // (1 << 20)
        except OSError:
            disk_free = 0
        if self.gpus is None:  # GPUs do not come and go; nvidia-smi is slow
            self.gpus = query_gpus()
        uname = os.uname()
        return {
            "hostname": uname.nodename, "cpus": cpus,
            "mem_mb": mem.get("MemTotal", 0) // 1024,
            "free_mem_mb": mem.get("MemAvailable", mem.get("MemFree", 0)) // 1024,
            "load1": os.getloadavg()[0], "gpus": self.gpus,
            "python": "%d.%d.%d" % sys.version_info[:3],
            # what slurmd reports: "Linux 6.1.0-13-amd64 #1 SMP PREEMPT_DYNAMIC ..."
            "os": "%s %s %s" % (uname.sysname, uname.release, uname.version),
            "arch": uname.machine, "started": self.since,
            "boot_time": _boot_time(), "workdir": self.workdir, "disk_free_mb": disk_free,
            "workdir_writable": os.access(self.jobs_dir, os.W_OK | os.X_OK), "uid": os.getuid(),
        }

    def op_hello(self, req: Dict[str, Any], rid: Any) -> None:
        # first of all: runs the controller requeued elsewhere while it could
        # not reach us must not finish here (the job would run twice)
        for key in req.get("unwanted") or ():
            self.stop_unwanted(key)
        self.send({"ev": "hello", "re": rid, "version": AGENT_VERSION, "pid": os.getpid(),
                   "facts": self.facts(), "jobs": [j.info() for j in self.jobs.values()]})

    def stop_unwanted(self, key: Any) -> None:
        """Kill a run the controller gave up for lost and requeued, unless it
        has already ended. Its job is frozen first, then its supervisor
        killed (so no result of its can follow), then the job; the run's
        result is CANCELLED, claimed exclusively: a result the supervisor
        wrote before all this wins (the run really ended, and the controller
        decides whether that counts)."""
        if not isinstance(key, str) or key_error(key) is not None:
            return
        job = self.lookup(key)
        if job is None or job.result is not None:
            return
        path = os.path.join(job.dir, RESULT_FILE)
        job.result = read_json(path)
        if job.result is not None:
            return
        if job.sup_pid is None:
            self.refresh(job)
            if job.result is not None:
                return
        if job.pid and alive(job.pid, job.ticks):
            try:
                os.killpg(job.pid, signal.SIGSTOP)
            except OSError:
                pass
        if alive(job.sup_pid, job.sup_ticks):
            try:
                os.kill(job.sup_pid, signal.SIGKILL)  # type: ignore[arg-type]
            except OSError:
                pass
            deadline = time.monotonic() + 2.0
            while alive(job.sup_pid, job.sup_ticks) and time.monotonic() < deadline:
                time.sleep(0.005)
        if job.pid:
            signal_scope(job.dir, job.sup_pid, job.pid, signal.SIGKILL, "full")
        if job.sup_pid:
            # whatever else lived in the supervisor's session (its sweep's job)
            for name in os.listdir("/proc"):
                st = proc_stat(int(name)) if name.isdigit() else None
                if st is not None and st[1] == job.sup_pid:
                    try:
                        os.kill(int(name), signal.SIGKILL)
                    except OSError:
                        pass
        result = {"key": key, "pid": job.pid or 0, "start_time": job.start_time or 0.0,
                  "end_time": time.time(), "state": "CANCELLED", "exit_code": 0,
                  "signal": signal.SIGKILL, "user_cpu": 0.0, "system_cpu": 0.0,
                  "max_rss_kb": 0, "error": "stopped: the controller had requeued it"}
        try:
            if not write_json_atomic(path, result, fsync=True, exclusive=True):
                result = read_json(path) or result
        except OSError as exc:
            log(self.workdir, "job %s: cannot write its result: %s" % (key, exc))
        job.result = result
        self.adopted.discard(key)
        log(self.workdir, "job %s: no longer wanted (requeued elsewhere): %s"
            % (key, "stopped" if result.get("state") == "CANCELLED" and
               result.get("error", "").startswith("stopped") else "had ended"))

    def op_facts(self, req: Dict[str, Any], rid: Any) -> None:
        reply = {"ev": "facts", "re": rid}
        reply.update(self.facts())
        self.send(reply)

    def op_status(self, req: Dict[str, Any], rid: Any) -> None:
        self.send({"ev": "status", "re": rid, "jobs": [j.info() for j in self.jobs.values()]})

    def op_shutdown(self, req: Dict[str, Any], rid: Any) -> None:
        self.send({"ev": "shutdown", "re": rid})
        self.stop = True

    def op_launch(self, req: Dict[str, Any], rid: Any) -> None:
        key = req.get("key")
        err = key_error(key)
        if err is None:
            job = self.lookup(key)  # type: ignore[arg-type]
            if job is not None:
                self.reply_existing(job, rid)
                return
            try:
                spec = validate_spec(req.get("spec"))
            except ValueError as exc:
                # the job's own spec is at fault, not this machine: the
                # controller fails the job and leaves the machine alone
                self.send({"ev": "launch_failed", "re": rid, "key": key, "cause": "job",
                           "error": "job %s: %s" % (key, exc)})
                return
        if err is not None:
            self.send({"ev": "launch_failed", "re": rid, "key": key, "error": err})
            return
        jobdir = self.jobdir(key)  # type: ignore[arg-type]
        try:
            os.mkdir(jobdir, 0o700)
        except FileExistsError:  # another agent on this workdir won the race
            self.reply_existing(self.adopt(key), rid)  # type: ignore[arg-type]
            return
        except OSError as exc:
            self.send({"ev": "launch_failed", "re": rid, "key": key,
                       "error": "cannot create %s: %s" % (jobdir, exc)})
            return
        pipe: Tuple[int, int] = (-1, -1)
        feed_fd = -1
        try:
            if spec["stage"]:
                self.take_stage(key, jobdir, spec["uid"], spec["gid"])  # type: ignore[arg-type]
            fd = os.open(os.path.join(jobdir, SCRIPT_FILE),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o700)
            try:
                write_all(fd, spec["script"].encode("utf-8", "surrogateescape"))
            finally:
                os.close(fd)
            if spec["stdin_stream"]:
                spec["stdin_fd"], feed_fd = self.open_stdin_fifo(jobdir, spec)
                self.stdin_fds[feed_fd] = key  # type: ignore[assignment]
            pipe = os.pipe()
            # built here, not in the child: objects the child allocates land on
            # pages shared with the agent, each one a copy-on-write fault there
            sup = Supervisor(self.workdir, key, jobdir, spec, pipe[1], self.job_umask,
                             self.own_fds(), self.changed_signals)  # type: ignore[arg-type]
            pid = os.fork()
        except OSError as exc:
            for p in pipe:
                if p >= 0:
                    os.close(p)
            if feed_fd >= 0:
                del self.stdin_fds[feed_fd]
                os.close(feed_fd)
            if spec.get("stdin_fd") is not None:
                os.close(spec["stdin_fd"])
            try:
                remove_tree(jobdir)
            except OSError:
                pass  # the launch_failed reply below is what matters
            self.send({"ev": "launch_failed", "re": rid, "key": key,
                       "error": "cannot start the supervisor: %s" % exc})
            return
        if pid == 0:
            # Short-lived: a collection would only dirty copy-on-write pages.
            gc.disable()
            code = 1
            try:
                os.close(pipe[0])
                sup.run()
                code = 0
            except BaseException:
                log(self.workdir, "supervisor for job %s failed:\n%s" % (key, format_exc()))
            finally:
                os._exit(code)  # never return into the agent's loop
        os.close(pipe[1])
        if spec.get("stdin_fd") is not None:
            os.close(spec["stdin_fd"])  # the supervisor's now
        os.set_blocking(pipe[0], False)
        job = Job(key, jobdir, own=True)  # type: ignore[arg-type]
        if spec.get("inline_output"):
            job.inline = (spec["stdout"], spec["stderr"], int(spec["inline_output"]))
        job.note = (spec["stderr"], spec["node"], spec["job_id"] or key.split(".")[0])
        job.sup_pid = pid
        job.launch_fd = pipe[0]
        if feed_fd >= 0:
            job.stdin = StdinFeed(feed_fd)
        job.waiters.append(rid)
        self.jobs[key] = job  # type: ignore[index]
        self.children[pid] = key  # type: ignore[assignment]
        self.launch_fds[pipe[0]] = key  # type: ignore[assignment]
        self.poller.register(pipe[0], select.POLLIN)

    def incoming(self, key: str) -> str:
        return os.path.join(self.workdir, INCOMING_DIR, key)

    def take_stage(self, key: str, jobdir: str, uid: Optional[int],
                   gid: Optional[int]) -> None:
        """Move the files staged for ``key`` into the job's directory (0700),
        owned by the job's user when it runs as another one."""
        target = os.path.join(jobdir, STAGE_DIR)
        try:
            os.rename(self.incoming(key), target)
        except FileNotFoundError:
            os.mkdir(target, 0o700)  # nothing staged in: a place for results
        os.chmod(target, 0o700)
        if uid is not None and uid != os.geteuid():
            g = -1 if gid is None else gid
            os.chown(target, uid, g)
            for entry in os.scandir(target):
                os.chown(entry.path, uid, g, follow_symlinks=False)

    def reply_existing(self, job: Job, rid: Any) -> None:
        """Idempotent launch: report the job we already have, never run it again."""
        if job.result is None and not job.own:
            self.refresh(job)
        elif job.result is None:
            job.result = read_result(job.dir)
        if job.result is not None:
            job.emitted = True
            self.adopted.discard(job.key)
            self.send({"ev": "ended", "re": rid, "key": job.key, "result": job.result})
        elif job.launch_fd is not None:
            job.waiters.append(rid)
        else:
            self.send(self.started(job, rid))

    def _job_for(self, req: Dict[str, Any], rid: Any, ev: str) -> Optional[Job]:
        key = req.get("key")
        err = key_error(key)
        job = None if err else self.lookup(key)  # type: ignore[arg-type]
        if err is None and job is None:
            err = "no job %s on this node" % key
        if err is None and job is not None and job.result is None and job.own:
            job.result = read_result(job.dir)
        if err is None and job is not None and job.result is not None:
            err = "job %s has already ended" % key
        if err is not None:
            self.send({"ev": ev, "re": rid, "key": key, "ok": False, "error": err})
            return None
        return job

    def op_signal(self, req: Dict[str, Any], rid: Any) -> None:
        signum = req.get("signal")
        if isinstance(signum, bool) or not isinstance(signum, int) or not 0 <= signum < signal.NSIG:
            self.send({"ev": "signalled", "re": rid, "key": req.get("key"), "ok": False,
                       "error": "signal must be a number 0..%d, got %r" % (signal.NSIG - 1, signum)})
            return
        job = self._job_for(req, rid, "signalled")
        if job is None:
            return
        err = None
        if job.pid is None:
            err = "job %s has not started yet; retry shortly" % job.key
        elif not alive(job.pid, job.ticks):
            err = "job %s's batch shell has exited" % job.key
        else:
            scope = req.get("scope") or ("batch" if req.get("batch_only") else "full")
            try:
                signal_scope(job.dir, job.sup_pid, job.pid, signum, str(scope))
            except OSError as exc:
                err = "cannot signal job %s: %s" % (job.key, exc.strerror)
        self.send({"ev": "signalled", "re": rid, "key": job.key, "ok": err is None, "error": err})

    def op_cancel(self, req: Dict[str, Any], rid: Any) -> None:
        signum = req.get("signal", signal.SIGTERM)
        if isinstance(signum, bool) or not isinstance(signum, int) or not 1 <= signum < signal.NSIG:
            self.send({"ev": "cancelling", "re": rid, "key": req.get("key"), "ok": False,
                       "error": "signal must be a number 1..%d, got %r" % (signal.NSIG - 1, signum)})
            return
        job = self._job_for(req, rid, "cancelling")
        if job is None:
            return
        # The supervisor does the killing (it owns the kill_wait timer); we only
        # leave the request where it looks and wake it up.
        # slurmstepd's line goes into the job's output now, before whatever the
        # controller sends next (a requeued job's next run) can write there
        words = [str(signum)]
        if req.get("requeue"):
            words.append("requeue")
        if job.note is not None and job.result is None and not os.path.lexists(
                os.path.join(job.dir, CANCEL_FILE)):
            write_note(*job.note, " DUE TO JOB REQUEUE" if req.get("requeue") else "")
            words.append("noted")
        err = self.tell_supervisor(job, CANCEL_FILE, " ".join(words))
        self.send({"ev": "cancelling", "re": rid, "key": job.key, "ok": err is None, "error": err})

    @staticmethod
    def tell_supervisor(job: "Job", filename: str, text: str) -> Optional[str]:
        """Leave a request file in the job's directory and wake its supervisor
        (SIGUSR1); returns an error text or None."""
        write_marker(os.path.join(job.dir, filename), text)
        if job.sup_pid is not None and (job.own or alive(job.sup_pid, job.sup_ticks)):
            try:
                os.kill(job.sup_pid, signal.SIGUSR1)
            except OSError as exc:
                return "cannot wake the supervisor of job %s: %s" % (job.key, exc.strerror)
        return None

    def op_set_limit(self, req: Dict[str, Any], rid: Any) -> None:
        """Change a running job's time limit (seconds from its start; null = none)."""
        limit = req.get("time_limit_s")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            self.send({"ev": "limit_set", "re": rid, "key": req.get("key"), "ok": False,
                       "error": "time_limit_s must be a non-negative integer or null"})
            return
        job = self._job_for(req, rid, "limit_set")
        if job is None:
            return
        err = self.tell_supervisor(job, LIMIT_FILE, "none" if not limit else str(limit))
        self.send({"ev": "limit_set", "re": rid, "key": job.key, "ok": err is None, "error": err})

    # -- srun's standard input ----------------------------------------------------

    @staticmethod
    def open_stdin_fifo(jobdir: str, spec: Dict[str, Any]) -> Tuple[int, int]:
        """The job's stdin is a FIFO that the agent writes. Both ends are opened
        here, before the supervisor is forked: the read end goes to the job,
        the write end stays with us (so the job sees EOF only when srun's input
        ends, never before it has opened its stdin). Returns (read, write)."""
        fifo = os.path.join(jobdir, STDIN_FIFO)
        os.mkfifo(fifo, 0o600)
        spec["stdin"] = fifo
        r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            os.close(r)
            raise
        os.set_blocking(r, True)  # the job reads a normal, blocking stdin
        return r, w

    def op_stdin(self, req: Dict[str, Any], rid: Any) -> None:
        """More of srun's standard input for a job (``data`` base64, ``eof``)."""
        import base64
        import binascii

        key = req.get("key")
        job = self.jobs.get(key) if key_error(key) is None else None  # type: ignore[arg-type]
        if job is None or job.stdin is None or job.stdin.fd < 0:
            # unknown, ended, or adopted after an agent restart: its stdin is gone
            self.send({"ev": "stdin", "re": rid, "key": key, "written": 0, "closed": True})
            return
        try:
            data = base64.b64decode(str(req.get("data") or ""), validate=True)
        except (binascii.Error, ValueError):
            self.send({"ev": "error", "re": rid, "error": "stdin data must be base64"})
            return
        job.stdin.buf += data
        job.stdin.eof = job.stdin.eof or bool(req.get("eof"))
        self.feed_stdin(job, rid)

    def feed_stdin(self, job: Job, rid: Any = None) -> None:
        """Write what the job's stdin pipe takes; wait for POLLOUT for the rest."""
        feed = job.stdin
        assert feed is not None
        while feed.buf and feed.fd >= 0:
            try:
                n = os.write(feed.fd, feed.buf)
            except BlockingIOError:
                break
            except OSError:
                self.close_stdin(job)
                break
            feed.written += n
            del feed.buf[:n]
        if feed.fd >= 0:
            if feed.buf and not feed.polled:
                self.poller.register(feed.fd, select.POLLOUT)
                feed.polled = True
            elif not feed.buf and feed.polled:
                self.poller.unregister(feed.fd)
                feed.polled = False
            if not feed.buf and feed.eof:
                self.close_stdin(job)
        self.send({"ev": "stdin", "re": rid, "key": job.key, "written": feed.written,
                   "closed": feed.fd < 0})

    def close_stdin(self, job: Job) -> None:
        """Our write end closed: the job reads EOF once the pipe is drained."""
        feed = job.stdin
        if feed is None or feed.fd < 0:
            return
        if feed.polled:
            self.poller.unregister(feed.fd)
            feed.polled = False
        self.stdin_fds.pop(feed.fd, None)
        os.close(feed.fd)
        feed.fd = -1
        feed.buf = bytearray()

    def op_forget(self, req: Dict[str, Any], rid: Any) -> None:
        key = req.get("key")
        err = key_error(key)
        job = None if err else self.lookup(key)  # type: ignore[arg-type]
        if job is not None:
            if job.result is None:
                job.result = read_result(job.dir)
            if job.result is None:
                err = "job %s is still running; cancel it and wait for `ended` first" % key
            else:
                try:
                    if req.get("keep"):
                        # its output could not be copied home: out of the jobs
                        # directory (no longer reported), but not deleted
                        kept = os.path.join(self.workdir, KEPT_DIR, job.key)
                        os.makedirs(os.path.dirname(kept), mode=0o700, exist_ok=True)
                        os.rename(job.dir, kept)
                    else:
                        remove_tree(job.dir)
                    del self.jobs[job.key]
                    self.adopted.discard(job.key)
                except OSError as exc:
                    err = "cannot %s %s: %s" % ("keep" if req.get("keep") else "remove",
                                                job.dir, exc)
        if err is None and key_error(key) is None:
            try:  # files staged for a run that never launched
                remove_tree(self.incoming(key))  # type: ignore[arg-type]
            except OSError:
                pass
        # A key that is already gone counts as forgotten, so the controller may retry.
        self.send({"ev": "forgotten", "re": rid, "key": key, "ok": err is None, "error": err})


_OPS = {
    "hello": Agent.op_hello, "facts": Agent.op_facts, "launch": Agent.op_launch,
    "signal": Agent.op_signal, "cancel": Agent.op_cancel, "status": Agent.op_status,
    "forget": Agent.op_forget, "shutdown": Agent.op_shutdown, "set_limit": Agent.op_set_limit,
    "stdin": Agent.op_stdin,
}


_USAGE = "usage: agent.py --workdir DIR   (JSON lines on stdin/stdout)\n"


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: ``python3 agent.py --workdir DIR``.

    Parsed by hand: argparse would stay in the heap that every fork copies.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    workdir = None
    while args:
        arg = args.pop(0)
        if arg == "--workdir" and args:
            workdir = args.pop(0)
        elif arg.startswith("--workdir="):
            workdir = arg[len("--workdir="):]
        elif arg in ("-h", "--help"):
            sys.stdout.write(_USAGE)
            return 0
        else:
            sys.stderr.write("agent.py: unexpected argument %r\n%s" % (arg, _USAGE))
            return 2
    if not workdir:
        sys.stderr.write("agent.py: --workdir is required\n" + _USAGE)
        return 2
    try:
        agent = Agent(workdir)
    except OSError as exc:
        sys.stderr.write("fleetslurm agent: cannot use workdir %s: %s\n" % (workdir, exc))
        return 1
    log(agent.workdir, "agent %s started, %d job(s) found" % (AGENT_VERSION, len(agent.jobs)))
    try:
        agent.serve()
    except (_Gone, KeyboardInterrupt):
        pass
    log(agent.workdir, "agent exiting")
    return 0


# Run as a script, this file is compiled from source, which leaves about 2.5 MB
# of freed compiler memory scattered through the heap that every fork then
# copies. So the script re-executes itself once as an *imported* module (its
# bytecode cached in __pycache__ when the directory is writable), in an
# isolated interpreter without site (-I -S: no user site, no .pth files, no
# PYTHON* variables). That makes launches about 10% cheaper.
_BOOT = ("import sys, importlib.util as u\n"
         "s = u.spec_from_file_location('fleetslurm_agent', sys.argv[1])\n"
         "m = u.module_from_spec(s)\n"
         "s.loader.exec_module(m)\n"
         "sys.exit(m.main(sys.argv[2:]))\n")


def _reexec_lean(argv: List[str]) -> None:
    """Replace this process by a lean interpreter running main(); returns on failure."""
    if not sys.executable:
        return  # cannot tell which interpreter we are
    try:
        os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", _BOOT,
                                  os.path.abspath(__file__)] + argv)
    except OSError:
        pass  # run in this interpreter: slower forks, same behaviour


if __name__ == "__main__":
    _reexec_lean(sys.argv[1:])
    sys.exit(main())

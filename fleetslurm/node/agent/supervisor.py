"""The supervisor: a process forked from the agent per job (a fork costs
about 1 ms, a new interpreter about 30 ms) that starts its own session, forks
the job, enforces the time and memory limits, and writes the job's result
atomically to ``<workdir>/jobs/<key>/result.json``. Supervisors and jobs
outlive the agent. The supervisor is the subreaper of the job's processes
(what the job daemonizes dies with it; memory is their summed PSS), and
reserves the blocks of its result before the job starts (a job that fills the
disk still gets a result: FAILED, with the reason). Standard library only."""
from __future__ import annotations

import errno
import json
import os
import select
import signal
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Set, Tuple

try:
    # os.wait4 imports it on first use to build its rusage result: imported
    # here, once, instead of in every supervisor (an extension module's
    # import after fork is a path search, a dlopen and many copy-on-write faults)
    import resource  # noqa: F401
except ImportError:  # pragma: no cover - not on Linux
    pass

from . import oom, protocol
from .cgroups import JobCgroups, remove
from .fsio import (CANCEL_FILE, DISK_FULL_BYTES, LIMIT_FILE, RESULT_FILE, RESULT_SPARE,
                   SCRIPT_FILE, SPARE_SIZE, STOPPING_FILE, SUPERVISOR_FILE, append_line,
                   format_exc, log, read_marker, read_small, take_back, write_all, write_json_atomic,
                   note_id, write_note, write_text_atomic)
from .host import (HAVE_CHILDREN_FILE, alive, child_pids, memory_kb, proc_stat, signal_scope,
                   step_groups)
from .jobchild import _SIG_IGN, _SIGCHLD, _SIGHUP, _SIGINT, _SIGUSR1, JobChild, _signal
from .sampling import Sampler

_MEM_SAMPLE_S = 0.2
# poll() takes a C int of milliseconds (about 24.8 days at most): a deadline
# further away than this is waited for in steps, so any time limit SLURM
# accepts (up to 365 days and beyond, or none) works
_MAX_POLL_MS = 3600 * 1000
_SESSION_RESCAN_S = 2.0
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


def noop_handler(signum: int, frame: Any) -> None:
    """Signal handler whose only effect is the byte on the wakeup fd."""


class Supervisor(JobChild, JobCgroups):
    """Runs one job: fork, wait, enforce limits, record the result."""

    def __init__(self, workdir: str, key: str, jobdir: str, spec: Dict[str, Any],
                 notify_fd: int, job_umask: int, agent_fds: List[int],
                 changed_signals: List[int],
                 cpu_cg: Optional[Tuple[Optional[str], Dict[str, str]]] = None,
                 results_fd: int = -1) -> None:
        self.workdir = workdir
        #: the write end of the agent's results pipe (non-blocking, close-on-exec)
        self.results_fd = results_fd
        #: what the machine allows for CPU limits (cgroups.detect_cgroups): the
        #: agent found out once at start
        self.cpu_cg_mode, self.cpu_cg_dirs = cpu_cg or (None, {})
        #: cgroup v1 cpu/cpuset directories of the job (v2: all in self.cgroup)
        self.cpu_cgroups: List[str] = []
        #: whether self.cgroup limits memory (it may hold only CPU limits)
        self.mem_cgroup = False
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
        self.oom_killed: Set[int] = set()  # step groups the watchdog killed (oom.py)
        #: the job's orphans are re-parented to us (prctl), found by a tree walk
        self.subreaper = False
        #: CPU seconds (user, system) of orphans we reaped: part of the job's
        self.orphan_cpu = [0.0, 0.0]
        self.tracked: Set[int] = set()
        self.next_full_scan = 0.0
        self.stdio_plan = self.plan_stdio(spec)
        #: the run's resource use over time, for sstat and the dashboard (``sampling``)
        self.sampler = Sampler(workdir, key, spec.get("sample_s"), jobdir)

    # -- set-up ----------------------------------------------------------

    def detach(self) -> None:
        """Leave the agent's session, stdio and fds behind."""
        signal.set_wakeup_fd(-1)  # that pipe belongs to the agent
        os.setsid()
        self.sid = os.getpid()
        if _prctl is not None and HAVE_CHILDREN_FILE:
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
        _signal.signal(_SIGCHLD, noop_handler)
        _signal.signal(_SIGUSR1, noop_handler)

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
                for d in self.dirs_to_traverse():
                    mode = os.stat(d).st_mode & 0o7777
                    os.chmod(d, mode | 0o011)
            full = self.full_disk(only_jobdir=True)
            if full is not None:
                # full before the job ran: the machine's fault, not the job's
                raise OSError(errno.ENOSPC, full.split(" when the job ended")[0]
                              + " before the job started")
            self.reserve_result()
            self.setup_cgroups()
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
            write_all(fd, ('{"pid":%d,"ticks":%s,"job_pid":%d,"job_ticks":%s,"start_time":%r,'
                           '"cpus":%s}'
                           % (self.sid, "null" if own is None else own[2], pid,
                              "null" if ticks is None else ticks, start_time,
                              json.dumps(self.spec["cpu_ids"]))).encode())
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

    def notify_result(self, data: bytes) -> None:
        """Tell the agent the result on the pipe all supervisors share, before
        its fsync: the end is reported a disk flush sooner. One write of at
        most PIPE_BUF (never interleaved), non-blocking: skipped on a full
        pipe or no agent (the agent then reads the file when we exit)."""
        line = b'{"sup":%d,"result":%s}\n' % (self.sid, data)
        if self.results_fd >= 0 and len(line) <= select.PIPE_BUF:
            try:
                os.write(self.results_fd, line)
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
        watchdog = bool(spec["mem_limit_mb"]) and not self.mem_cgroup
        t_mem: Optional[float] = start if watchdog else None
        t_sample: Optional[float] = start + min(1.0, self.sampler.interval)
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
                    if not oom.kill_steps_first(self.jobdir, step_groups(self.jobdir, self.sid),
                                                self.oom_killed):
                        self.set_reason("OUT_OF_MEMORY")
                        self.kill_everything(now)
                        t_mem = None
                    elif self.pid in self.oom_killed:
                        # step 0 run as the job itself (srun_direct): the job was killed
                        self.set_reason("OUT_OF_MEMORY")
                        t_mem = None
            if t_sample is not None and now >= t_sample:
                self.sampler.take(self.job_processes(now), sum(self.orphan_cpu), time.time())
                # like the watchdog's: never more than 1/_MEM_SAMPLE_DUTY of the time
                t_sample = max(now + self.sampler.interval,
                               now + _MEM_SAMPLE_DUTY * (time.monotonic() - now))
            deadlines = [t for t in (t_signal, t_limit, t_kill, t_mem, t_sample) if t is not None]
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
        """The text of a file the agent leaves in the job's directory, or None."""
        return read_marker(self.jobdir, name)

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
        write_note(self.spec["stderr"], self.spec["node"], note_id(self.spec, self.key), why,
                   self.spec["uid"])

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
            try:
                # the steps and the job's group, each once (step 0 of a job srun
                # made may be the job's own group: srun_direct)
                signal_scope(self.jobdir, self.sid, self.pid, sig, "full")
            except OSError:
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
        if full or not HAVE_CHILDREN_FILE or now >= self.next_full_scan:
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
        self.take_back_jobdir()
        if os.WIFSIGNALED(status):
            exit_code, signum = 0, os.WTERMSIG(status)
        else:
            exit_code, signum = os.WEXITSTATUS(status), 0
        if self.cgroup:
            self.finish_cgroup()
        if self.cpu_cgroups:
            remove(self.cpu_cgroups)
        if self.reason == "OUT_OF_MEMORY":  # SLURM's SIG_OOM: ExitCode 0:125
            exit_code, signum = 0, oom.OOM_SIGNAL
            oom.batch_result(self)
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
            append_line(self.spec["stderr"], "slurmstepd: error: %s\n" % full, self.spec["uid"])
        result = protocol.result(
            self.key, self.pid, start_time, time.time(), state, exit_code, signum,
            usage.ru_utime + self.orphan_cpu[0], usage.ru_stime + self.orphan_cpu[1],
            max(int(usage.ru_maxrss), self.peak_kb), error)  # type: Dict[str, Any]
        self.record(result)

    def dirs_to_traverse(self) -> List[str]:
        """The directories on the way to the job's directory that its user
        must be able to pass through (not list): jobs/, the workdir and
        those above it that are the agent's own and closed to others (a
        root agent's workdir under /root or a lab's private state
        directory), as slurmd's spool is open to pass through."""
        dirs = [os.path.dirname(self.jobdir)]
        d = self.workdir
        while True:
            try:
                st = os.stat(d)
            except OSError:
                break
            if st.st_uid == os.geteuid() and st.st_mode & 0o011 != 0o011:
                dirs.append(d)
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
        return dirs

    def take_back_jobdir(self) -> None:
        """Once a job run as another user has ended (see fsio.take_back)."""
        uid = self.spec["uid"]
        if uid is not None and uid != os.geteuid():
            take_back(self.jobdir, self.workdir)

    def reserve_result(self) -> None:
        """Reserve the blocks the result will take (see RESULT_SPARE)."""
        fd = os.open(os.path.join(self.jobdir, RESULT_SPARE),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, b" " * SPARE_SIZE)
        finally:
            os.close(fd)

    def record(self, result: Dict[str, Any]) -> None:
        """Write the RESULT into the reserved file, then rename it to
        result.json. Too long for it (a long error text), a new file is tried
        first, then the reserved one with the error text cut."""
        spare = os.path.join(self.jobdir, RESULT_SPARE)
        data = json.dumps(result, separators=(",", ":")).encode()
        if len(data) > SPARE_SIZE:
            try:
                write_json_atomic(os.path.join(self.jobdir, RESULT_FILE), result, fsync=True)
                os.unlink(spare)
                return
            except OSError:
                error = str(result.get("error") or "")
                while len(data) > SPARE_SIZE and error:
                    error = error[:len(error) // 2]
                    result["error"] = error + " [cut]"
                    data = json.dumps(result, separators=(",", ":")).encode()
        # the job's directory may be its user's: never through a link they made
        fd = os.open(spare, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))  # frees blocks, never needs one
            try:
                os.replace(spare, os.path.join(self.jobdir, RESULT_FILE))
            except OSError as exc:  # read_result reads it where it is
                log(self.workdir, "job %s: result left in %s: %s" % (self.key, spare, exc))
            # reportable now (a crash before the fsync: unreadable, LOST, as before)
            self.notify_result(data)
            os.fsync(fd)
        finally:
            os.close(fd)

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
            if vfs.f_blocks and free < DISK_FULL_BYTES:
                return ("No space left on device: the filesystem of %s was full when the job "
                        "ended (%d KiB free); its output may be cut short" % (path, free >> 10))
        return None

"""The agent's book of jobs: one :class:`Job` per job directory, adopted
from an earlier agent or launched by this one, and what follows from the
files there (started, ended, LOST) and from supervisors exiting. Standard
library only."""
from __future__ import annotations

import json
import os
import signal
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Set, Tuple

    from .gpus import GpuProbe

from . import protocol
from .cgroups import drop, left_behind
from .fsio import (RESULT_FILE, SUPERVISOR_FILE, inline_output, log, read_json, read_result,
                   remove_tree, take_back, write_json_atomic)
from .host import alive, proc_stat, signal_scope
from .protocol import key_error

# A job directory without supervisor.json may belong to a launch still in
# flight (the previous agent died just after forking); only after this long is
# it declared LOST.
_LOST_GRACE_S = 10.0
# How long the cgroups a dead supervisor left are retried (their last
# process is reaped by init, usually within milliseconds)
_CGROUP_RETRY_S = 60.0


class Job:
    """The agent's view of one job directory."""

    __slots__ = ("key", "dir", "own", "sup_pid", "sup_ticks", "pid", "ticks", "start_time",
                 "result", "emitted", "launch_fd", "waiters", "inline", "note",
                 "stdin", "cpus", "stop", "forgets")

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
        #: `forget` requests held until the supervisor has exited (ops.op_forget)
        self.forgets: List[Tuple[Dict[str, Any], Any]] = []
        #: (stdout path, stderr path, byte limit): send small output with `ended`
        self.inline: Optional[Tuple[str, str, int]] = None
        #: (stderr path, node, job id) for slurmstepd's line when it is cancelled
        self.note: Optional[Tuple[str, str, str, Optional[int]]] = None
        self.stdin: Optional[StdinFeed] = None  # srun's stdin, when streamed
        self.cpus: Optional[List[int]] = None  # the CPU ids it is bound to
        #: SIGSTOP/SIGCONT asked for before the job's pid was known (a
        #: workstation's owner back the moment it was launched): applied at its start
        self.stop: Optional[int] = None

    def info(self) -> Dict[str, Any]:
        """JOBINFO for hello/status."""
        return protocol.job_info(self.key, self.pid, self.result)


class StdinFeed:
    """srun's standard input on its way into one job's stdin FIFO."""

    __slots__ = ("fd", "buf", "written", "eof", "polled")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()
        self.written = 0       # bytes the job's pipe has taken
        self.eof = False       # srun's stdin ended: close after the buffer
        self.polled = False    # registered for POLLOUT



class JobBook:
    """The job bookkeeping of :class:`server.Agent` (which gives it ``send``,
    and ``close_stdin`` from :class:`ops.Requests`)."""

    workdir: str
    jobs_dir: str
    jobs: Dict[str, Job]
    children: Dict[int, str]
    launch_fds: Dict[int, str]
    adopted: Set[str]
    ready: bool
    poller: Any
    #: a partial line read from the results pipe (``read_results``)
    results_buf: bytes
    cpu_cg: Tuple[Optional[str], Dict[str, str], str]
    #: (give up at, cgroup paths) a dead supervisor left, still busy
    busy_cgroups: List[Tuple[float, List[str]]]
    #: the background nvidia-smi query (a child reaped here too)
    gpu_probe: GpuProbe

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
            self.injob.reopen(key, job.dir)  # type: ignore[attr-defined]
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
                job.cpus = sup.get("cpus")
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
        result = protocol.result(job.key, job.pid or 0, job.start_time or 0.0, time.time(),
                                 "LOST", 0, 0, 0.0, 0.0, 0, why)  # type: Dict[str, Any]
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
        self.drop_cgroups(job.key, job.sup_pid)
        log(self.workdir, "job %s: %s" % (job.key, why))

    def drop_cgroups(self, key: str, sup_pid: Optional[int]) -> None:
        """Remove what a dead supervisor left in the cgroup hierarchies; what
        is still busy is tried again on each poll for a minute."""
        busy = drop(left_behind(self.cpu_cg[1], key, sup_pid))
        if busy:
            self.busy_cgroups.append((time.monotonic() + _CGROUP_RETRY_S, busy))

    def poll_adopted(self) -> None:
        if self.busy_cgroups:
            now = time.monotonic()
            self.busy_cgroups = [(t, left) for t, left in
                                 ((t, drop(paths)) for t, paths in self.busy_cgroups)
                                 if left and t > now]
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
        if job.result is not None:
            self.injob.close_job(job.key)  # type: ignore[attr-defined]
        if job.result is not None and job.stdin is not None:
            self.close_stdin(job)
        if self.ready and not job.emitted and job.result is not None:
            job.emitted = True
            # (its supervisor did, unless it vanished: never read as root
            # through what the job's user left there)
            take_back(job.dir, self.workdir)
            output = inline_output(*job.inline) if job.inline is not None else None
            self.send(protocol.ev_ended(protocol.UNSOLICITED, job.key, job.result, output))

    def reap(self) -> None:
        """Collect exited supervisors (our children) and report their jobs."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.supervisor_exited(pid, status)

    def supervisor_exited(self, pid: int, status: int) -> None:
        """A child of ours has exited (and was waited for): a job's
        supervisor, whose job's end is reported now unless its result line
        was (see ``read_results``)."""
        key = self.children.pop(pid, None)
        if key is None and self.gpu_probe.exited(pid, status):
            return
        job = self.jobs.get(key) if key is not None else None
        if job is None or job.sup_pid != pid:
            return  # forgotten, or its launch failed
        if job.launch_fd is not None:
            self.on_launch_fd(job.launch_fd)  # `started` must precede `ended`
            if self.jobs.get(key) is not job:
                return
        early, job.result = job.result, read_result(job.dir)
        if job.result is None and early is not None:
            # reported from its result line, but the file it wrote there is
            # unreadable now: keep the record that was reported
            try:
                write_json_atomic(os.path.join(job.dir, RESULT_FILE), early, fsync=True,
                                  exclusive=True)
            except OSError as exc:
                log(self.workdir, "job %s: cannot write its result: %s" % (job.key, exc))
            job.result = read_result(job.dir) or early
        if job.result is None:
            how = ("killed by signal %d" % os.WTERMSIG(status) if os.WIFSIGNALED(status)
                   else "exit status %d" % os.WEXITSTATUS(status))
            self.mark_lost(job, "supervisor vanished (%s)" % how)
        self.emit_ended(job)
        held, job.forgets = job.forgets, []
        for req, rid in held:
            self.op_forget(req, rid)  # type: ignore[attr-defined]

    def read_results(self, fd: int) -> None:
        """Result lines on the pipe all supervisors share (``{"sup": PID,
        "result": RESULT}``): each is written once the result is readable in
        its job's directory, before the supervisor's fsync, so the end is
        reported a disk flush sooner than at the supervisor's exit."""
        chunks = [self.results_buf]
        while True:
            try:
                data = os.read(fd, 65536)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            chunks.append(data)
        lines = b"".join(chunks).split(b"\n")
        self.results_buf = lines.pop()
        for line in lines:
            try:
                msg = json.loads(line)
                sup, result = msg["sup"], msg["result"]
                job = self.jobs.get(result["key"])
            except (ValueError, KeyError, TypeError):
                continue
            if job is None or not job.own or job.sup_pid != sup or job.result is not None:
                continue  # not (or no longer) ours to report this way
            if job.launch_fd is not None:
                self.on_launch_fd(job.launch_fd)  # `started` must precede `ended`
                if self.jobs.get(job.key) is not job:
                    continue
            job.result = result
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
            self.injob.close_job(key)  # type: ignore[attr-defined]
            try:
                remove_tree(job.dir)
            except OSError as exc:
                log(self.workdir, "job %s: cannot remove %s: %s" % (key, job.dir, exc))
            for rid in waiters:
                self.send(protocol.ev_launch_failed(rid, key, msg["error"]))
            return
        job.pid, job.ticks, job.start_time = msg.get("pid"), msg.get("ticks"), msg.get("start_time")
        if job.stop == signal.SIGSTOP and job.pid:
            try:
                signal_scope(job.dir, job.sup_pid, job.pid, signal.SIGSTOP, "full")
            except OSError:
                pass
        job.stop = None
        for rid in waiters:
            self.send(self.started(job, rid))

    @staticmethod
    def started(job: Job, rid: Any) -> Dict[str, Any]:
        return protocol.ev_started(rid, job.key, job.pid, job.start_time)

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
        self.drop_cgroups(key, job.sup_pid)
        result = protocol.result(key, job.pid or 0, job.start_time or 0.0, time.time(),
                                 "CANCELLED", 0, signal.SIGKILL, 0.0, 0.0, 0,
                                 "stopped: the controller had requeued it")  # type: Dict[str, Any]
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

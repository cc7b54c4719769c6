"""The agent's server: a single-threaded JSON-lines loop over stdin/stdout
(see ``protocol``) that launches jobs under supervisors, adopts the job
directories an earlier agent left, and reports how the jobs end. Fork is safe
because it is single-threaded. Standard library only."""
from __future__ import annotations

import gc
import json
import os
import select
import signal
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Set

from . import cpus, protocol
from .cgroups import detect_cgroups
from .fsio import format_exc, log, write_all
from .gpus import GpuProbe
from .injob import InJob, archive_of
from .jobs import Job
from .ops import Requests
from .protocol import AGENT_VERSION, key_error
from .supervisor import noop_handler

_ADOPT_POLL_S = 0.5
_MAX_LINE = 64 << 20


class _Gone(Exception):
    """The controller closed our stdout."""


class Agent(Requests):
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
        #: run key -> time of the last resource sample sent (``op_samples``)
        self.samples_sent: Dict[str, float] = {}
        self.ready = False   # hold unsolicited `ended` until the controller has spoken
        self.stop = False
        self.inbuf = b""
        self.outbuf: List[bytes] = []
        self.gpus: Optional[List[Dict[str, Any]]] = None
        self.gpu_probe = GpuProbe()
        self.since = time.time()  # scontrol's SlurmdStartTime
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, noop_handler)
        # Installed before any fork so a supervisor that gets a cancel before
        # it set up its own handler is not killed by SIGUSR1's default action.
        signal.signal(signal.SIGUSR1, noop_handler)
        # Worked out once here, so the job child does as little as possible
        # between fork and exec (every page it touches is a copy-on-write fault).
        self.changed_signals = [signal.SIGHUP, signal.SIGINT]  # the supervisor ignores these
        for sig in signal.valid_signals():
            if sig not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGHUP, signal.SIGINT):
                handler = signal.getsignal(sig)
                if handler is not None and handler is not signal.SIG_DFL:
                    self.changed_signals.append(sig)
        # the CPUs jobs are bound to, and what limits them (see ``cpus``)
        self.cpu_avail = sorted(os.sched_getaffinity(0))
        self.cpu_cursor = 0
        self.cpu_cg = detect_cgroups()
        self.busy_cgroups: List[Any] = []
        log(self.workdir, "CPU limits: affinity to CPUs %s%s" % (
            cpus.format_list(self.cpu_avail),
            ", quota and cpuset by " + self.cpu_cg[2] if self.cpu_cg[0]
            else "; no cgroup limits: " + self.cpu_cg[2]))
        self.poller = select.poll()
        self.poller.register(0, select.POLLIN)
        self.poller.register(self.wake_r, select.POLLIN)
        self.close_stray_fds()
        # one pipe for every supervisor's result line (Supervisor.notify_result):
        # one fd for all running jobs, not one more per job
        self.results_r, self.results_w = os.pipe()
        self.results_buf = b""
        os.set_blocking(self.results_r, False)
        os.set_blocking(self.results_w, False)
        self.poller.register(self.results_r, select.POLLIN)
        # SLURM's commands for jobs: shims in <workdir>/bin, a socket per job
        self.injob = InJob(self.workdir, self.poller, self.send, archive_of(__file__),
                           sys.executable)
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
        """Every fd above 2 the agent holds open (for a supervisor to close),
        but the results pipe's write end, which supervisors keep."""
        return ([self.wake_r, self.wake_w, self.results_r] + list(self.launch_fds)
                + list(self.stdin_fds) + self.injob.fds() + self.gpu_probe.fds())

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
            if self.adopted or self.busy_cgroups:
                timeout = max(0, int((next_poll - time.monotonic()) * 1000) + 1)
            for fd, events in self.poller.poll(timeout):
                if fd == 0:
                    self.read_stdin()
                elif fd == self.wake_r:
                    try:
                        os.read(self.wake_r, 4096)
                    except BlockingIOError:
                        pass
                    self.reap()
                elif fd == self.results_r:
                    self.read_results(fd)
                elif fd in self.stdin_fds:
                    job = self.jobs.get(self.stdin_fds[fd])
                    if job is not None:
                        self.feed_stdin(job)
                elif self.injob.on_fd(fd, events):
                    pass
                else:
                    self.on_launch_fd(fd)
                if self.stop:
                    return
            if (self.adopted or self.busy_cgroups) and time.monotonic() >= next_poll:
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
            self.send(protocol.ev_error(None, "request line longer than %d bytes dropped"
                                        % _MAX_LINE))

    def handle_line(self, line: bytes) -> None:
        """Decode and dispatch one request; errors become `error` events."""
        rid = None
        try:
            try:
                req = json.loads(line)
            except ValueError as exc:
                self.send(protocol.ev_error(None, "bad JSON request line: %s" % exc))
                return
            if not isinstance(req, dict):
                self.send(protocol.ev_error(None, "a request must be a JSON object"))
                return
            rid = req.get("id")
            handler = _OPS.get(req.get("op"))  # type: ignore[arg-type]
            if handler is None:
                self.send(protocol.ev_error(rid, "unknown op %r; valid ops: %s"
                                            % (req.get("op"), ", ".join(sorted(_OPS)))))
                return
            handler(self, req, rid)
        except _Gone:
            raise
        except Exception as exc:
            log(self.workdir, "error handling %r:\n%s" % (line[:200], format_exc()))
            self.send(protocol.ev_error(rid, "agent error: %s: %s" % (type(exc).__name__, exc)))
        finally:
            if not self.ready:
                self.ready = True
                for job in list(self.jobs.values()):
                    if job.result is not None:
                        self.emit_ended(job)

    def op_rpc_reply(self, req: Dict[str, Any], rid: Any) -> None:
        """The controller's answer to a job's command (see ``injob``)."""
        self.injob.reply(req.get("conn"), req.get("reply"))

    # -- job bookkeeping ------------------------------------------------------


_OPS = {
    "hello": Agent.op_hello, "facts": Agent.op_facts, "launch": Agent.op_launch,
    "signal": Agent.op_signal, "cancel": Agent.op_cancel, "status": Agent.op_status,
    "forget": Agent.op_forget, "shutdown": Agent.op_shutdown, "set_limit": Agent.op_set_limit,
    "stdin": Agent.op_stdin, "rpc_reply": Agent.op_rpc_reply, "samples": Agent.op_samples,
}


_USAGE = "usage: agent-HASH.pyz --workdir DIR   (JSON lines on stdin/stdout)\n"


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: ``python3 agent-HASH.pyz --workdir DIR`` (see ``__main__``).

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
            sys.stderr.write("fleetslurm agent: unexpected argument %r\n%s" % (arg, _USAGE))
            return 2
    if not workdir:
        sys.stderr.write("fleetslurm agent: --workdir is required\n" + _USAGE)
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

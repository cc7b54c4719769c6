"""``srun``: run a command as job tasks.

Inside an allocation (``SLURM_JOB_ID`` set) it starts a job step on this
machine (srun_step). Outside one it does what SLURM's srun does: allocate a
job, run the tasks as its step 0, and stay attached until they end:

- the tasks' output streams to the terminal while they run (wherever they
  run), srun's standard input streams to them (``--input``: ``all``, ``none``,
  a task id, a file);
- ``-n N`` tasks with their ranks, ``--output/--error/--label`` per task;
- the exit status is the tasks' (highest exit code, or 128 + signal);
- Ctrl-C: the first prints the tasks' state, a second within a second sends
  SIGINT to the tasks and cancels the job (``--quit-on-interrupt``: the
  first); SIGTERM/SIGHUP/SIGQUIT cancel the job; other signals (SIGUSR1...)
  are forwarded to the tasks.

One task without per-task I/O options (``direct_step``) is started by the
job's supervisor itself as step 0, the controller keeping the step's record
(ctld/srun_direct.py), and this srun says what step 0's srun would have said
of it. Otherwise the job's batch part is a small script that runs
fleetslurm's srun as step 0 (the controller's shim on the local transport,
the agent's on an SSH machine, or fleetslurm on the job's PATH); without one
(an agent that could not give the job its commands) it starts the tasks
itself, with their ranks but without per-task files, labels or stdin
broadcast.
"""

from __future__ import annotations

import base64
import os
import queue
import shlex
import signal
import sys
import threading
import time
TYPE_CHECKING = False
if TYPE_CHECKING:  # (annotations only: typing is some 4 ms of a command's start)
    from typing import Any, Optional

from ..errors import UsageError
from .common import help_or_version

PROG = "srun"

# srun options the job's step 0 needs (the rest describe the allocation)
_STEP_OPTIONS = (("ntasks", "--ntasks"), ("job_name", "--job-name"),
                 ("cpus_per_task", "--cpus-per-task"),
                 ("output", "--output"), ("error", "--error"), ("input", "--input"),
                 ("open_mode", "--open-mode"), ("label", "--label"),
                 ("unbuffered", "--unbuffered"), ("kill_on_bad_exit", "--kill-on-bad-exit"),
                 ("overcommit", "--overcommit"))
# per-task I/O belongs to the step, not to the job's own (spooled) files;
# -O lets the step's tasks share CPUs (the job's request is unchanged by it)
_NOT_FOR_JOB = {"wait", "output", "error", "input", "open_mode", "overcommit"}

_SCRIPT = """#!/bin/sh
# This job was created by srun: its tasks are job step 0.
if [ -n "$FLEETSLURM_STEPS_DIR" ]; then
    # fleetslurm's srun (a shim, or the fleetslurm command), never another SLURM's;
    # a shim's marker is its line 2 (3 behind sh's exec line for an odd Python path)
    for s in "$(command -v srun)" "${{FLEETSLURM_HOME:+$FLEETSLURM_HOME/bin/srun}}"; do
        if [ -n "$s" ] && [ -x "$s" ] && sed -n 2,3p "$s" 2>/dev/null | grep -q '^{marker}'; then
            exec "$s" {step_args} "$@"
        fi
    done
    if command -v fleetslurm >/dev/null 2>&1; then exec fleetslurm srun {step_args} "$@"; fi
fi
# fleetslurm is not installed on this machine: start the tasks without it
n=${{SLURM_NTASKS:-1}}
export SLURM_STEP_ID=0 SLURM_STEPID=0 SLURM_STEP_NUM_NODES=1 SLURM_STEP_NUM_TASKS="$n" \\
    SLURM_STEP_TASKS_PER_NODE="$n" SLURM_STEP_NODELIST="$SLURMD_NODENAME"
if [ "$n" -le 1 ]; then exec "$@"; fi
pids= i=0
while [ "$i" -lt "$n" ]; do
    SLURM_PROCID=$i SLURM_LOCALID=$i "$@" &
    pids="$pids $!"
    i=$((i + 1))
done
rc=0
for p in $pids; do wait "$p"; c=$?; [ "$c" -gt "$rc" ] && rc=$c; done
exit "$rc"
"""

#: stdin bytes sent to the controller but not yet written to the job's stdin
_STDIN_WINDOW = 1 << 20


USAGE = ("Usage: srun [OPTIONS(0)... [executable(0) [args(0)...]]] [ : [OPTIONS(N)...]] "
         "executable(N) [args(N)...]\n")


def _plain(argv: list[str]) -> bool:
    """``srun CMD ARGS...`` outside a job with no option on the command line
    or in the environment (no ``SLURM_*``/``SRUN_*`` variable): the options
    are then none, and the option tables (some 6 ms to import) are skipped.
    ``FLEETSLURM_NO_FAST_PATH=1`` turns this off."""
    env = os.environ
    return bool(argv) and not argv[0].startswith("-") and not env.get(
        "FLEETSLURM_NO_FAST_PATH") and not any(
        k.startswith(("SLURM_", "SRUN_")) for k in env)


def main(argv: list[str]) -> int:
    if _plain(argv):
        return Attached({}, list(argv)).run()
    from ..slurm.option_env import command_options
    from ..slurm.option_support import refuse_unsupported

    opts, command = command_options(PROG, argv, os.environ)
    refuse_unsupported(PROG, opts, argv=argv, environ=os.environ)
    if help_or_version(opts, USAGE):
        return 0
    if not command:
        raise UsageError("fatal: No command given to execute.", prog=PROG)
    # (SLURM_JOBID, set inside every job, reads as --jobid: only the command line counts)
    cli_opts = command_options(PROG, argv, {})[0]
    if cli_opts.get("jobid") and str(cli_opts["jobid"]) != os.environ.get("SLURM_JOB_ID"):
        raise UsageError(f"fleetslurm does not support --jobid={cli_opts['jobid']} (a job "
                         "other than the one this srun runs in); run srun inside that job's "
                         "batch script", prog=PROG)
    from ..slurm.cpubind import parse_cpu_bind

    parse_cpu_bind(opts.get("cpu_bind"))  # refused as srun refuses it, before anything runs
    if os.environ.get("SLURM_JOB_ID"):
        from ..slurm.option_support import refuse_for_step
        from .srun_step import run_step

        refuse_for_step(cli_opts, argv, os.environ)

        # inside an allocation -J names the step only when given here (SLURM
        # ignores the job's SLURM_JOB_NAME for it)
        named = cli_opts.get("job_name")
        return run_step(opts, command, name=str(named) if named else None)
    return Attached(opts, command).run()


def job_script(opts: dict) -> str:
    """The batch part of a job srun makes: fleetslurm's srun runs the tasks as
    step 0 where it is found, else the script starts them itself."""
    from ..shims import MARKER

    return _SCRIPT.format(step_args=shlex.join(step_arguments(opts)), marker=MARKER)


def direct_step(opts: dict) -> bool:
    """Whether step 0 can run without a second srun inside the job: one task
    and no option that step 0's srun itself acts on (per-task files, labels,
    stdin for some tasks, kill-on-bad-exit, overcommit). The job's supervisor
    then runs the task itself (ctld/srun_direct.py); ``FLEETSLURM_NO_FAST_PATH=1``
    keeps the second srun."""
    if os.environ.get("FLEETSLURM_NO_FAST_PATH"):
        return False
    if str(opts.get("ntasks") or 1) != "1":
        return False
    if str(opts.get("input") or "all").lower() not in ("all", "0"):
        return False
    return not any(opts.get(key) not in (None, False, "") for key, _ in _STEP_OPTIONS
                   if key not in ("ntasks", "job_name", "cpus_per_task", "input"))


def step_arguments(opts: dict) -> list[str]:
    """The srun options step 0 runs with inside the job."""
    out = []
    for key, flag in _STEP_OPTIONS:
        value = opts.get(key)
        if value is True:
            out.append(flag)
        elif value not in (None, False, ""):
            out.append(f"{flag}={value}")
    return out


class Attached:
    """One srun outside an allocation: submit, stream, forward, report."""

    def __init__(self, opts: dict, command: list[str]) -> None:
        self.opts = opts
        self.command = command
        self.job_id: Optional[int] = None
        self.signals: "queue.SimpleQueue[int]" = queue.SimpleQueue()
        self.offsets = {"stdout": 0, "stderr": 0}
        self.stdin: Optional[_StdinPump] = None
        self.last_intr = 0.0
        self.cancelled = False
        self.aborting = False  # the second Ctrl-C: the SIGINT that cancels the job
        self.record: dict = {}
        #: signals for the tasks, held until srun's step 0 has started them
        self.deferred: list[int] = []
        self.running_since: Optional[float] = None
        #: the job's supervisor runs the task as step 0 (no srun inside the job):
        #: this srun says what step 0's srun would have said of the task
        self.direct = direct_step(opts)

    def client(self) -> Any:
        from .common import client

        return client()

    # -- submission ---------------------------------------------------------
    def submit(self) -> int:
        import socket

        from ..paths import private_dir, state_paths

        options: dict = {}
        if self.opts:
            from ..slurm.option_tables import SBATCH

            known = {o.dest for o in SBATCH} | {"cpu_bind"}  # srun's own, for the agent
            options = {k: v for k, v in self.opts.items()
                       if k in known and k not in _NOT_FOR_JOB}
        options.setdefault("job_name", os.path.basename(self.command[0]))
        # the terminal gets the output: keep the job's own files out of the way
        spool = private_dir(state_paths().home / "srun")
        options["output"] = str(spool / "%j.out")
        options["error"] = str(spool / "%j.err")
        mode = str(self.opts.get("input") or "all").lower()
        stream = mode == "all" or mode.isdigit()
        script = job_script(self.opts)
        from ..umask import with_umask

        with self.client() as c:
            reply = c.call("submit", options=options, script=script,
                           script_args=list(self.command), env=with_umask(os.environ),
                           cwd=os.getcwd(), submit_host=socket.gethostname(),
                           script_name=self.command[0], command=shlex.join(self.command),
                           srun=True, stdin_stream=stream, srun_direct=self.direct)
        if stream:
            self.stdin = _StdinPump()
        return int(reply["job_id"])

    # -- the attached loop ------------------------------------------------------
    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                    signal.SIGUSR1, signal.SIGUSR2, signal.SIGCONT, signal.SIGALRM):
            signal.signal(sig, lambda signum, frame: self.signals.put(signum))
        self.job_id = self.submit()
        said_queued = False
        started = time.monotonic()
        idle = 0.02
        # a short job has ended within this first pause (it returns at the
        # job's end): its state and output are then read once, and no request
        # competes with its launch; a longer one's first output shows after
        # 0.1 s (the loop below waits up to 0.2 s between reads anyway)
        self.pause(0.1)
        while True:
            self.handle_signals()
            with self.client() as c:
                # the state first: output read after the job is seen ended is all of it
                recs = c.call("jobs", ids=[str(self.job_id)], steps=True)
                self.record = recs[0] if recs else {}
                state = self.record.get("state", "PENDING")
                got = self.pump_output(c)
                if state == "PENDING" and not said_queued and time.monotonic() - started > 0.5:
                    said_queued = True
                    _info(f"job {self.job_id} queued and waiting for resources")
                elif state != "PENDING" and said_queued is True:
                    said_queued = None  # type: ignore[assignment]
                    _info(f"job {self.job_id} has been allocated resources")
                if state == "RUNNING" and self.running_since is None:
                    self.running_since = time.monotonic()
                if state == "RUNNING" and self.stdin is not None:
                    got = self.stdin.send(c, self.job_id) or got
            if self.deferred:
                self.forward(*self.deferred)
            if state not in ("PENDING", "RUNNING", "COMPLETING", "REQUEUED"):
                break
            idle = 0.02 if got else min(0.2, idle * 1.5)
            self.pause(idle)
        if got:
            with self.client() as c:
                while self.pump_output(c):  # a read brings at most 4 MiB: the rest
                    pass
        return self.finish()

    def pause(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the job's end: the controller answers as
        it ends (no poll's delay). A signal is handled at the latest when the
        wait is over (at most 0.2 s); one already here ends the pause at once."""
        if not self.signals.empty():
            return
        from ..jobwait import block

        with self.client() as c:
            block(c.call, [str(self.job_id)], seconds)

    def pump_output(self, c: Any) -> bool:
        got = False
        for which, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
            r = c.call("read_output", id=str(self.job_id), offset=self.offsets[which],
                       which=which, raw=True)
            data = base64.b64decode(r["data_b64"]) if "data_b64" in r \
                else r["data"].encode()
            if data:
                got = True
                stream.flush()
                try:
                    stream.buffer.write(data)
                    stream.buffer.flush()
                except BrokenPipeError:
                    pass
                self.offsets[which] = r["offset"]
        return got

    # -- signals ------------------------------------------------------------
    def handle_signals(self) -> None:
        while True:
            try:
                signum = self.signals.get_nowait()
            except queue.Empty:
                return
            if signum == signal.SIGINT:
                self.interrupt()
            elif signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
                _info("forcing job termination")
                self.cancel()
            else:
                if signum == signal.SIGCONT:
                    _info("got SIGCONT")
                self.forward(signum)

    def interrupt(self) -> None:
        now = time.monotonic()
        state = self.record.get("state", "PENDING")
        if self.opts.get("quit_on_interrupt") or state == "PENDING":
            self.cancel()
            return
        if now - self.last_intr > 1:
            self.last_intr = now
            _info("interrupt (abort already in progress)" if self.cancelled
                  else "interrupt (one more within 1 sec to abort)")
            _info(f"StepId={self.job_id}.0 task{'s' if self.ntasks() > 1 else ''} "
                  f"{'0' if self.ntasks() == 1 else f'0-{self.ntasks() - 1}'}: running")
            return
        if self.cancelled:
            return
        _info(f"sending Ctrl-C to StepId={self.job_id}.0")
        self.aborting = True
        self.forward(signal.SIGINT)
        self.cancel()

    def ntasks(self) -> int:
        try:
            return max(1, int(self.opts.get("ntasks") or 1))
        except ValueError:
            return 1

    def forward(self, *signums: int) -> None:
        """Signals for the tasks: to step 0's tasks once srun started them there;
        to the batch part when no step shows up (it then is the task itself).
        Until then they wait: the step's srun must not die of them starting up."""
        self.deferred = [*self.deferred, *[s for s in signums if s not in self.deferred]]
        if self.record.get("state") != "RUNNING" or self.running_since is None:
            return
        if self.record.get("job_steps"):
            scope: dict = {}
        elif time.monotonic() - self.running_since > 5:
            scope = {"batch": True}
        else:
            return
        todo, self.deferred = self.deferred, []
        with self.client() as c:
            for signum in todo:
                # an abort's SIGINT also marks the job cancelled before it is sent
                abort = {"abort": True} if signum == signal.SIGINT and self.aborting else {}
                c.call("cancel", ids=[str(self.job_id)], signal=int(signum), **scope, **abort)

    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        with self.client() as c:
            if self.record.get("state") == "RUNNING":
                self.say_aborted(c)
            c.call("cancel", ids=[str(self.job_id)])

    def say_aborted(self, c: Any) -> None:
        """srun's line for a step being ended, with the controller's KillWait."""
        kill_wait = dict(map(tuple, c.call("config"))).get("KillWait", "30 sec")
        _info(f"Job step aborted: Waiting up to {int(kill_wait.split()[0]) + 2} "
              "seconds for job step to finish.")

    # -- the end --------------------------------------------------------------
    def finish(self) -> int:
        rec = self.record
        steps = [s for s in rec.get("job_steps") or [] if s.get("step_id") == 0]
        if not rec.get("start_time"):
            _info("error: Unable to allocate resources: Job/step already completing or "
                  "completed" if self.cancelled else
                  f"error: job {self.job_id} ended {rec.get('state')} before it started")
            return 1
        if steps and steps[0].get("end_time") and self.direct:
            return self.report_direct(steps[0], (rec.get("nodes") or [""])[0])
        if steps and steps[0].get("end_time"):
            if steps[0].get("state") == "OUT_OF_MEMORY":
                return 1  # srun's exit status for SIG_OOM (srun.c); the step said why
            code, sig = steps[0].get("exit_code") or 0, steps[0].get("exit_signal") or 0
            return 128 + sig if sig else code
        # no step record: the tasks ran without fleetslurm's srun (or were killed
        # with the job before it could say): report as srun does
        code, sig = rec.get("exit_code") or 0, rec.get("exit_signal") or 0
        node = (rec.get("nodes") or [""])[0]
        if rec.get("state") == "OUT_OF_MEMORY":
            _info(f"error: {node}: task 0: Out Of Memory")
            return 1
        if rec.get("state") == "TIMEOUT":
            _info(f"error: {node}: task 0: Terminated")
            return 128 + (sig or signal.SIGTERM)
        if sig:
            _info(f"error: {node}: task 0: {signal.strsignal(sig) or f'Signal {sig}'}")
            return 128 + sig
        if code:
            _info(f"error: {node}: task 0: Exited with exit code {code}")
        return code

    def report_direct(self, step: dict, node: str) -> int:
        """Step 0's srun's closing lines for its one task (srun_step.Step.report),
        said here when the job's supervisor ran the task; srun's exit status."""
        name = f"StepId={self.job_id}.0"
        if step.get("state") == "OUT_OF_MEMORY":  # (slurmstepd's line came with the output)
            _info(f"error: {node}: task 0: Out Of Memory")
            return 1
        code, sig = step.get("exit_code") or 0, step.get("exit_signal") or 0
        # ended from outside (scancel, the time limit): srun heard of it first
        ended = self.record.get("state") in ("CANCELLED", "TIMEOUT") and not self.cancelled
        if ended:
            with self.client() as c:
                self.say_aborted(c)
        if sig:
            _info(f"error: {node}: task 0: {signal.strsignal(sig) or f'Signal {sig}'}")
            if sig in (signal.SIGKILL, signal.SIGTERM) and not (self.cancelled or ended):
                _info(f"Force Terminated {name}")
            return 128 + sig
        if code:
            _info(f"error: {node}: task 0: Exited with exit code {code}")
        return code


def _info(text: str) -> None:
    sys.stderr.write(f"srun: {text}\n")
    sys.stderr.flush()


class _StdinPump:
    """srun's standard input, read by a thread and sent to the job's tasks
    through the controller, at most ``_STDIN_WINDOW`` bytes ahead of what the
    job's machine has written into the tasks' stdin."""

    def __init__(self) -> None:
        self.chunks: "queue.Queue[bytes]" = queue.Queue(maxsize=16)
        self.sent = 0
        self.eof_sent = False
        self.closed = False
        threading.Thread(target=self._read, name="srun-stdin", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(0, 65536)
            except OSError:
                data = b""
            self.chunks.put(data)  # blocks when the job does not keep up
            if not data:
                return

    def send(self, c: Any, job_id: int) -> bool:
        """Send what is ready; True when something was sent."""
        if self.eof_sent or self.closed:
            return False
        reply = c.call("stdin", id=str(job_id), data="", eof=False)
        if reply.get("closed"):
            self.closed = True
            return False
        written = int(reply.get("written") or 0)
        sent_any = False
        while self.sent - written < _STDIN_WINDOW:
            try:
                data = self.chunks.get_nowait()
            except queue.Empty:
                break
            reply = c.call("stdin", id=str(job_id), data=base64.b64encode(data).decode(),
                           eof=not data)
            sent_any = True
            self.sent += len(data)
            if not data:
                self.eof_sent = True
                break
            if reply.get("closed"):
                self.closed = True
                break
        return sent_any

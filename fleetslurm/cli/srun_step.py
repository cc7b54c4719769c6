"""``srun`` inside an allocation: one job step of ``-n`` tasks on this machine.

Each task gets ``SLURM_PROCID``/``SLURM_LOCALID`` (its rank), the step's
``SLURM_STEP_ID`` and the step's task counts; standard input and output follow
``--input/--output/--error/--label`` (srun_io). The step is recorded with the
controller (``N.0``, ``N.1``... in sacct) when the controller can be reached
from here; the tasks run all the same when it cannot (an SSH machine).

Signals, as SLURM 22.05's srun handles them (checked on the oracle):

- SIGINT: the first prints the tasks' state; a second within a second sends
  SIGINT to the tasks and then ends the step (SIGTERM, SIGKILL after
  KillWait); a third stops waiting (``--quit-on-interrupt``: the first one).
- SIGTERM, SIGHUP, SIGQUIT: "forcing job termination", the tasks are killed.
  When the whole job is being ended (scancel, time limit) the job's
  supervisor signals the tasks itself, so they get their SIGTERM and KillWait.
- any other signal (SIGUSR1, SIGUSR2, SIGCONT, ...) is forwarded to the tasks.

The exit status is the highest task exit code, or 128 + signal for a task a
signal killed; failed tasks are reported as srun does
(``srun: error: node: tasks 0-1: Exited with exit code 3``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Optional

from ..errors import FleetError, UsageError
from . import srun_io
from .srun_record import Accounting, local_step_id, oom_killed, register

PROG = "srun"
#: the job's supervisor writes this into the job directory before it signals a
#: job it is ending (cancel, time limit), see node/agent/fsio.py
STOPPING_FILE = "stopping"
_FORCE = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_FORWARD = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGCONT, signal.SIGALRM,
            signal.SIGWINCH)


def _info(text: str) -> None:
    sys.stderr.write(f"srun: {text}\n")
    sys.stderr.flush()


def _ranges(ranks: list[int]) -> str:
    """``0-1,3``: ranks as srun lists them."""
    out, start, prev = [], None, None
    for r in sorted(ranks):
        if start is None:
            start = prev = r
        elif r == prev + 1:  # type: ignore[operator]
            prev = r
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = r
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(out)


def _tasks(ranks: list[int]) -> str:
    return f"task{'s' if len(ranks) > 1 else ''} {_ranges(ranks)}"


def _int_opt(opts: dict, key: str, env: str, option: str) -> Optional[int]:
    raw = opts.get(key) or os.environ.get(env)
    if raw is None or raw == "":
        return None
    try:
        value = int(str(raw))
    except ValueError:
        raise UsageError(f'Invalid numeric value "{raw}" for {option}.', prog=PROG) from None
    if value < 1:
        raise UsageError(f'Invalid numeric value "{raw}" for {option}.', prog=PROG)
    return value


class Step:
    """One srun job step: start the tasks, relay signals, wait, report."""

    def __init__(self, opts: dict, command: list[str], name: Optional[str] = None) -> None:
        env = os.environ
        self.opts = opts
        self.command = command
        self.job_id = env["SLURM_JOB_ID"]
        self.ntasks = _int_opt(opts, "ntasks", "SLURM_NTASKS", "--ntasks") or 1
        self.cpus_per_task = _int_opt(opts, "cpus_per_task", "SLURM_CPUS_PER_TASK",
                                      "--cpus-per-task") or 1
        self.node = env.get("SLURMD_NODENAME") or socket.gethostname().split(".")[0]
        self.name = name or os.path.basename(command[0])
        self.acct = Accounting(self.job_id, env.get("FLEETSLURM_RUN_KEY"))
        self.step_id = 0
        self.procs: dict[int, subprocess.Popen] = {}   # pid -> task
        self.rank_of: dict[int, int] = {}
        self.status: dict[int, int] = {}               # rank -> wait status
        self.usage = [0.0, 0.0, 0]                     # user, system, max rss kB
        self.terminating = False   # srun is ending the step (its own messages said so)
        self.forced = False
        self.last_intr = 0.0
        self.last_intr_sent = 0.0
        self.kill_timer: Optional[threading.Timer] = None

    # -- set-up ---------------------------------------------------------------
    def check_resources(self) -> int:
        cpus_on_node = int(os.environ.get("SLURM_CPUS_ON_NODE") or 0)
        wanted = self.ntasks * self.cpus_per_task
        if cpus_on_node and wanted > cpus_on_node and not self.opts.get("overcommit"):
            raise UsageError(f"Unable to create step for job {self.job_id}: More processors "
                             "requested than permitted", prog=PROG)
        return cpus_on_node if (cpus_on_node and not self.opts.get("exact")) else wanted

    @property
    def step_name(self) -> str:
        return f"StepId={self.job_id}.{self.step_id}"

    def expand(self, pattern: str, rank: int) -> str:
        from ..slurm.patterns import expand_pattern

        env = os.environ
        array_job = env.get("SLURM_ARRAY_JOB_ID")
        array_task = env.get("SLURM_ARRAY_TASK_ID")
        return expand_pattern(
            pattern, job_id=int(self.job_id), step_id=self.step_id, task_id=rank,
            node=socket.gethostname(), node_index=int(env.get("SLURM_NODEID") or 0),
            user=env.get("SLURM_JOB_USER") or env.get("USER") or "",
            job_name=env.get("SLURM_JOB_NAME", ""),
            array_job_id=int(array_job) if array_job and array_job.isdigit() else None,
            array_task_id=int(array_task) if array_task and array_task.isdigit() else None)

    def task_env(self, rank: int) -> dict[str, str]:
        from ..slurm.stepenv import step_task_environment

        env = dict(os.environ)
        umask = os.umask(0)
        os.umask(umask)
        env.update(step_task_environment(
            env, step_id=self.step_id, rank=rank, ntasks=self.ntasks, node=self.node,
            umask=umask, cpus_per_task=self.cpus_per_task if self.opts.get("cpus_per_task")
            else None))
        return env

    # -- running ---------------------------------------------------------------
    def run(self) -> int:
        cpus = self.check_resources()
        modes = {
            "input": srun_io.io_mode(self.opts.get("input"), self.ntasks, "--input"),
            "output": srun_io.io_mode(self.opts.get("output"), self.ntasks, "--output"),
        }
        modes["error"] = srun_io.io_mode(self.opts.get("error"), self.ntasks, "--error") \
            if self.opts.get("error") else modes["output"]
        try:
            self.acct.begin(self.name, self.ntasks, cpus)
        except FleetError as exc:
            raise UsageError(str(exc), prog=PROG) from None
        self.step_id = self.acct.step_id if self.acct.step_id is not None \
            else local_step_id(self.job_id)
        open_mode = str(self.opts.get("open_mode") or "")
        files = srun_io.Files(append=open_mode.lower().startswith("a"),
                              cwd=os.getcwd())
        label = bool(self.opts.get("label"))
        width = len(str(self.ntasks - 1))
        lock = threading.Lock()
        relays: list[threading.Thread] = []
        feeds = []
        try:
            for sig in (signal.SIGINT, *_FORCE, *_FORWARD):
                signal.signal(sig, self.on_signal)
            # srun ignores Ctrl-Z; a handler (not SIG_IGN) so the tasks do not inherit it
            signal.signal(signal.SIGTSTP, lambda signum, frame: None)
            for rank in range(self.ntasks):
                stdin = srun_io.input_target(modes["input"], rank, self.ntasks, files,
                                             self.expand)
                out = srun_io.output_target(modes["output"], rank, files, self.expand, 1)
                err = srun_io.output_target(modes["error"], rank, files, self.expand, 2)
                dests = (out, err)
                if label:
                    out, err = (subprocess.PIPE if d not in (subprocess.DEVNULL,) else d
                                for d in dests)
                proc = self.spawn(rank, stdin, out, err)
                if isinstance(stdin, int) and stdin >= 0:
                    os.close(stdin)  # an --input file: the task has its own copy now
                if proc is None:
                    continue  # it could not start: it exited already (spawn)
                if proc.stdin is not None:
                    feeds.append(proc.stdin)
                for pipe, dest in ((proc.stdout, dests[0]), (proc.stderr, dests[1])):
                    if pipe is not None:
                        relays.append(srun_io.label_relay(pipe, int(dest), rank, width, lock))
            if feeds:
                srun_io.broadcast_stdin(feeds)
            self.wait_all()
        finally:
            for t in relays:
                t.join(timeout=5)
            files.close()
            if self.kill_timer is not None:
                self.kill_timer.cancel()
        return self.report()

    def spawn(self, rank: int, stdin: Any, out: Any, err: Any) -> Optional[subprocess.Popen]:
        """Start task ``rank``; None when its command cannot be started: as
        under slurmstepd the task then exits with the errno (2: not found, 13:
        not executable) after slurmstepd's line in its stderr (oracle)."""
        kw: dict[str, Any] = {}
        if sys.version_info >= (3, 11):
            kw["process_group"] = 0  # its own group: signals reach the task's children
        else:
            kw["preexec_fn"] = os.setpgrp
        try:
            proc = subprocess.Popen(self.command, env=self.task_env(rank), stdin=stdin,
                                    stdout=out, stderr=err, **kw)
        except OSError as exc:
            line = (f"slurmstepd-{self.node}: error: execve(): {self.command[0]}: "
                    f"{exc.strerror}\n").encode("utf-8", "surrogateescape")
            if isinstance(err, int) and err >= 0:
                os.write(err, line)
            else:
                sys.stderr.flush()
                sys.stderr.buffer.write(line)
                sys.stderr.flush()
            self.rank_of[-1 - rank] = rank  # (no process: a key no pid can be)
            self.status[rank] = min(255, exc.errno or 2) << 8  # a wait status: exited
            return None
        self.procs[proc.pid] = proc
        self.rank_of[proc.pid] = rank
        register(proc.pid, step_id=self.step_id, rank=rank)
        return proc

    def wait_all(self) -> None:
        while len(self.status) < len(self.rank_of):
            try:
                pid, status, ru = os.wait4(-1, 0)
            except ChildProcessError:
                break
            proc = self.procs.get(pid)
            if proc is None:
                continue
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
            rank = self.rank_of[pid]
            self.status[rank] = status
            register(pid, remove=True)
            self.usage[0] += ru.ru_utime
            self.usage[1] += ru.ru_stime
            self.usage[2] = max(self.usage[2], int(ru.ru_maxrss))
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0 and self.kill_on_bad_exit():
                if not self.terminating:
                    self.report_task(rank, status)
                    _info(f"launch/slurm: _step_signal: Terminating {self.step_name}")
                    self.cancel_step(signal.SIGTERM)

    def kill_on_bad_exit(self) -> bool:
        value = self.opts.get("kill_on_bad_exit")
        return value is True or (isinstance(value, str) and value not in ("", "0"))

    # -- signals ---------------------------------------------------------------
    def live_pids(self) -> list[int]:
        return [pid for pid, rank in self.rank_of.items() if rank not in self.status]

    def kill_all(self, signum: int) -> None:
        for pid in self.live_pids():
            try:
                os.killpg(pid, signum)
            except OSError:
                pass

    def stamp(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S")

    def cancel_step(self, signum: int) -> None:
        """End the step as slurmstepd does: SIGCONT, ``signum``, SIGKILL after KillWait."""
        self.terminating = True
        sys.stderr.write(f"slurmstepd-{self.node}: error: *** STEP {self.job_id}."
                         f"{self.step_id} ON {self.node} CANCELLED AT {self.stamp()} ***\n")
        sys.stderr.flush()
        self.kill_all(signal.SIGCONT)
        self.kill_all(signum)
        if self.kill_timer is None:
            self.kill_timer = threading.Timer(self.acct.kill_wait,
                                              lambda: self.kill_all(signal.SIGKILL))
            self.kill_timer.daemon = True
            self.kill_timer.start()

    def job_is_ending(self) -> bool:
        steps = os.environ.get("FLEETSLURM_STEPS_DIR")
        return bool(steps) and os.path.exists(os.path.join(os.path.dirname(steps),
                                                           STOPPING_FILE))

    def force_terminate(self) -> None:
        if self.forced:
            return
        self.forced = self.terminating = True
        _info("forcing job termination")
        _info(f"Job step aborted: Waiting up to {self.acct.kill_wait + 2} seconds for job "
              "step to finish.")
        if self.job_is_ending():
            return  # the supervisor is ending the job: the tasks got its signal
        sys.stderr.write(f"slurmstepd-{self.node}: error: *** STEP {self.job_id}."
                         f"{self.step_id} ON {self.node} CANCELLED AT {self.stamp()} ***\n")
        self.kill_all(signal.SIGKILL)

    def on_signal(self, signum: int, frame: object) -> None:
        if signum == signal.SIGINT:
            self.interrupt()
        elif signum in _FORCE:
            self.force_terminate()
        else:
            if signum == signal.SIGCONT:
                _info("got SIGCONT")
            self.kill_all(signum)

    def interrupt(self) -> None:
        now = time.monotonic()
        if self.opts.get("quit_on_interrupt"):
            self.force_terminate()
            return
        if now - self.last_intr > 1:
            _info("interrupt (abort already in progress)" if self.terminating
                  else "interrupt (one more within 1 sec to abort)")
            self.print_status()
            self.last_intr = now
            return
        if self.terminating or now - self.last_intr_sent < 1:
            self.force_terminate()
            return
        _info(f"sending Ctrl-C to {self.step_name}")
        self.last_intr_sent = now
        self.kill_all(signal.SIGINT)
        _info("forcing job termination")
        _info(f"Job step aborted: Waiting up to {self.acct.kill_wait + 2} seconds for job "
              "step to finish.")
        self.cancel_step(signal.SIGTERM)

    def print_status(self) -> None:
        running = [r for r in range(len(self.rank_of)) if r not in self.status]
        done = [r for r in self.status if os.WIFEXITED(self.status[r])
                and os.WEXITSTATUS(self.status[r]) == 0]
        bad = [r for r in self.status if r not in done]
        for ranks, what in ((running, "running"), (done, "exited"),
                            (bad, "exited abnormally")):
            if ranks:
                _info(f"{self.step_name} {_tasks(ranks)}: {what}")

    # -- the end -------------------------------------------------------------
    def report_task(self, rank: int, status: int) -> None:
        _info(f"error: {self.node}: task {rank}: Exited with exit code "
              f"{os.WEXITSTATUS(status)}")

    def oom_ranks(self) -> list[int]:
        """Tasks the job's supervisor killed because the job was over its memory."""
        killed = [r for r, st in self.status.items()
                  if os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGKILL]
        if not killed:
            return []
        groups = oom_killed()
        return sorted(r for pid, r in self.rank_of.items() if r in killed and pid in groups)

    def report_oom(self, ranks: list[int]) -> int:
        """As SLURM 22.05 reports a step the cgroup OOM killer hit: slurmstepd's
        line, srun's ``Out Of Memory``, the step OUT_OF_MEMORY 0:125, exit 1
        (task/cgroup, launch/slurm, srun.c)."""
        sys.stderr.write(f"slurmstepd-{self.node}: error: Detected {len(ranks)} oom-kill "
                         f"event(s) in {self.step_name}. Some of your processes may have been "
                         "killed by the cgroup out-of-memory handler.\n")
        _info(f"error: {self.node}: {_tasks(ranks)}: Out Of Memory")
        self.acct.end(state="OUT_OF_MEMORY", exit_code=0, exit_signal=125,
                      user_cpu=self.usage[0], system_cpu=self.usage[1],
                      max_rss_kb=self.usage[2])
        return 1

    def report(self) -> int:
        """srun's closing lines; returns its exit status."""
        oom = self.oom_ranks()
        if oom:
            return self.report_oom(oom)
        groups: dict[tuple, list[int]] = {}
        for rank in sorted(self.status):
            st = self.status[rank]
            if os.WIFSIGNALED(st):
                key: tuple = ("sig", os.WTERMSIG(st), os.WCOREDUMP(st))
            elif os.WEXITSTATUS(st):
                key = ("exit", os.WEXITSTATUS(st))
            else:
                continue
            groups.setdefault(key, []).append(rank)
        reported_bad_exit = self.kill_on_bad_exit() and self.terminating
        for key, ranks in sorted(groups.items(), key=lambda kv: kv[1][0]):
            if key[0] == "exit":
                if reported_bad_exit and len(ranks) == 1:
                    continue  # already said when it happened
                _info(f"error: {self.node}: {_tasks(ranks)}: Exited with exit code {key[1]}")
            else:
                name = signal.strsignal(key[1]) or f"Signal {key[1]}"
                _info(f"error: {self.node}: {_tasks(ranks)}: {name}"
                      f"{' (core dumped)' if key[2] else ''}")
        killed = any(k[0] == "sig" and k[1] in (signal.SIGKILL, signal.SIGTERM) for k in groups)
        if killed and not self.forced:
            _info(f"Force Terminated {self.step_name}")
        codes = [128 + os.WTERMSIG(s) if os.WIFSIGNALED(s) else os.WEXITSTATUS(s)
                 for s in self.status.values()]
        worst = max(self.status.values(), default=0, key=lambda s: (
            os.WEXITSTATUS(s) << 8 if os.WIFEXITED(s) else os.WTERMSIG(s)))
        if os.WIFSIGNALED(worst):
            exit_code, exit_signal = 0, os.WTERMSIG(worst)
        else:
            exit_code, exit_signal = os.WEXITSTATUS(worst), 0
        if self.terminating or exit_signal:
            state = "CANCELLED"
        elif exit_code:
            state = "FAILED"
        else:
            state = "COMPLETED"
        self.acct.end(state=state, exit_code=exit_code, exit_signal=exit_signal,
                      user_cpu=self.usage[0], system_cpu=self.usage[1],
                      max_rss_kb=self.usage[2])
        return max(codes, default=0)


def run_step(opts: dict, command: list[str], name: Optional[str] = None) -> int:
    """srun inside an allocation (``SLURM_JOB_ID`` set); returns srun's exit
    status. ``name``: the step's name (``-J``), else the command's."""
    return Step(opts, command, name).run()

"""The job's side of a supervisor: what runs in the job's process between
fork and exec (process group, signal dispositions, memory cgroup, umask,
identity, working directory, stdio), kept as small as possible: every page
it touches is a copy-on-write fault. Standard library only."""
from __future__ import annotations

import os
import signal

# The C module under `signal`: signal.signal() and pthread_sigmask() wrap it
# in enum conversions (an exception per non-enum handler), which costs a
# forked child hundreds of copy-on-write faults; the supervisor and the job
# child call it directly.
try:
    import _signal
except ImportError:  # pragma: no cover - not CPython
    _signal = signal  # type: ignore[assignment]

try:
    import pwd
except ImportError:  # pragma: no cover - not on Linux
    pwd = None  # type: ignore[assignment]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

from .fsio import STEPS_DIR, write_all

# plain ints for _signal (the enum members' values)
_SIG_DFL, _SIG_IGN = int(signal.SIG_DFL), int(signal.SIG_IGN)
_SIG_SETMASK = int(signal.SIG_SETMASK)
_SIGHUP, _SIGINT = int(signal.SIGHUP), int(signal.SIGINT)
_SIGCHLD, _SIGUSR1 = int(signal.SIGCHLD), int(signal.SIGUSR1)


def join_cgroup(path: str, text: str) -> None:
    """Write ``text`` into a cgroup's membership file ``path`` (one write,
    no file object: this runs in the job child, see the module's docstring)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


class SetupError(Exception):
    """The job could not be started; the text is the whole user-facing message."""


class JobChild:
    """The part of :class:`supervisor.Supervisor` that runs in the job's child."""

    jobdir: str
    key: str
    spec: Dict[str, Any]
    notify_fd: int
    changed_signals: List[int]
    cgroup: Optional[str]
    cpu_cgroups: List[str]
    job_umask: int
    script: str
    stdio_plan: List[Tuple[str, str, Tuple[str, ...]]]

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
                stage = "join cgroup %s" % self.cgroup
                join_cgroup(os.path.join(self.cgroup, "cgroup.procs"), str(os.getpid()))
            for cg in self.cpu_cgroups:
                stage = "join cgroup %s" % cg
                # cgroup v1: "0" to `tasks` moves this one thread (the whole
                # process: it has one), which the kernel does without taking
                # the global threadgroup lock; a pid to cgroup.procs takes it
                # for writing and waits for an RCU grace period (0-27 ms
                # seen here per write, on the job's critical path)
                join_cgroup(os.path.join(cg, "tasks"), "0")
            if spec["cpu_ids"]:
                # SLURM's task/affinity: bound before exec, so the job and
                # everything it starts inherit the mask
                stage = "bind to CPUs %s" % spec["cpu_ids"]
                os.sched_setaffinity(0, spec["cpu_ids"])
            os.umask(self.job_umask)
            if spec["uid"] is not None or spec["gid"] is not None:
                stage = "switch to uid %s gid %s" % (spec["uid"], spec["gid"])
                self.drop_privileges(spec["uid"], spec["gid"], spec.get("user"))
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
            if spec.get("user"):
                # the user's as on this machine, as slurmstepd sets them
                env["HOME"], env["USER"] = spec["home"], spec["user"]
                env["LOGNAME"] = spec["user"]
            env["SLURM_TASK_PID"] = str(os.getpid())
            # srun (fleetslurm's) records each step's process group here, so that
            # signals meant for job steps (scancel --signal, --signal=SIG@T) find them
            env["FLEETSLURM_STEPS_DIR"] = os.path.join(self.jobdir, STEPS_DIR)
            # srun records its steps under this run (a requeued job runs again)
            env["FLEETSLURM_RUN_KEY"] = self.key
            if spec.get("injob_socket"):
                # SLURM's commands first on PATH, talking to the controller
                # through this machine's agent (injob), whatever the
                # submitter's environment named
                env["PATH"] = spec["injob_bin"] + ":" + env.get("PATH", "/usr/bin:/bin")
                env["FLEETSLURM_CONTROLLER"] = spec["injob_socket"]
                env.pop("FLEETSLURM_CONTROLLER_HOST", None)
            stage = "exec"
            if spec.get("srun_direct"):
                self.exec_step_zero(env)
                return
            try:
                os.execve(self.script, [self.script] + spec["argv"], env)
            except OSError as exc:
                msg = "slurmstepd: error: execve(): %s: %s\n" % (self.script, os.strerror(exc.errno or 0))
                try:
                    write_all(2, msg.encode("utf-8", "surrogateescape"))
                finally:
                    write_all(err_w, msg.strip().encode("utf-8", "surrogateescape"))
                return
        except SetupError as exc:
            write_all(err_w, str(exc).encode("utf-8", "replace"))
        except BaseException as exc:  # anything here must end in _exit, never unwind
            write_all(err_w, ("could not %s: %s" % (stage, exc)).encode("utf-8", "replace"))

    def exec_step_zero(self, env: Dict[str, str]) -> None:
        """Become step 0's one task of a job srun made (``srun_direct``): the
        command itself, found on the job's PATH, its process group recorded
        as the step's (rank 0) where signals for steps look, as srun records
        its tasks. A command that cannot be started exits with the errno
        (2: not found, 13: not executable) after slurmstepd's line, as
        SLURM's task does: the job ran and failed."""
        argv = self.spec["argv"]
        steps = env["FLEETSLURM_STEPS_DIR"]
        try:
            os.mkdir(steps, 0o700)
        except OSError:
            pass  # there already (a job's directory is reused on a relaunch)
        try:
            fd = os.open(os.path.join(steps, str(os.getpid())),
                         os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            write_all(fd, b"0 0")
            os.close(fd)
        except OSError:
            pass  # signals for steps then miss it; the job's own still reach it
        try:
            self.exec_on_path(argv, env)
        except OSError as exc:
            write_all(2, ("slurmstepd-%s: error: execve(): %s: %s\n"
                          % (self.spec["node"], argv[0], os.strerror(exc.errno or 0))
                          ).encode("utf-8", "surrogateescape"))
            os._exit(min(255, exc.errno or 2))  # slurmstepd's: the errno (oracle)

    @staticmethod
    def exec_on_path(argv: List[str], env: Dict[str, str]) -> None:
        """``os.execvpe`` without its ``import warnings`` (a module load and
        its copy-on-write faults in the job child): the first of the PATH's
        directories that holds ``argv[0]``; the first error that is not
        "not there" is the one raised, as execvp does."""
        name = argv[0]
        if "/" in name:
            os.execve(name, argv, env)
        first: Optional[OSError] = None
        last: Optional[OSError] = None
        for d in (env.get("PATH") or os.defpath).split(":"):
            try:
                os.execve(os.path.join(d or ".", name), argv, env)
            except (FileNotFoundError, NotADirectoryError) as exc:
                last = exc
            except OSError as exc:
                last = exc
                if first is None:
                    first = exc
        raise first or last or FileNotFoundError(2, os.strerror(2))

    @staticmethod
    def drop_privileges(uid: Optional[int], gid: Optional[int],
                        user: Optional[str] = None) -> None:
        """Become uid/gid (only reached as root; validate_spec rejects otherwise):
        supplementary groups, then group, then user. ``user`` (looked up on
        this machine by validate_spec): its groups from this machine's group
        database, and a failure is the job's failure, never a run as root."""
        if user is not None and uid is not None and gid is not None:
            os.initgroups(user, gid)
            os.setgid(gid)
            os.setuid(uid)
            if os.getuid() != uid or os.geteuid() != uid:  # pragma: no cover - defence
                raise SetupError("could not become user %s (uid %d)" % (user, uid))
            return
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
            raise SetupError("cannot open stdin file %s: %s"
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
                raise SetupError("cannot open %s file %s: %s"
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
                plan.append((name, path, JobChild.dirs_needed(path)))
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

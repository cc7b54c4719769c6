"""The agent's requests: one ``op_<name>`` method per request of the
protocol (see ``protocol``), mixed into :class:`server.Agent`, and the
streaming of srun's standard input into a job. Standard library only."""
from __future__ import annotations

import gc
import os
import select
import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

from . import cpus, owner, protocol, sampling
from .fsio import (CANCEL_FILE, INCOMING_DIR, KEPT_DIR, LIMIT_FILE, SCRIPT_FILE, STAGE_DIR,
                   STDIN_FIFO, format_exc, log, read_result, remove_tree, write_all,
                   note_id, write_marker, write_note)
from .host import alive, machine_facts, query_gpus, signal_scope
from .jobs import Job, JobBook, StdinFeed
from .protocol import key_error
from .spec import UnknownUser, validate_spec
from .supervisor import Supervisor


class Requests(JobBook):
    """The requests :class:`server.Agent` answers (it gives them ``send``,
    ``poller``, ``own_fds`` and the rest of its state)."""

    gpus: Optional[List[Dict[str, Any]]]
    since: float
    stop: bool
    job_umask: int
    changed_signals: List[int]
    stdin_fds: Dict[int, str]
    cpu_avail: List[int]
    cpu_cursor: int
    cpu_cg: Tuple[Optional[str], Dict[str, str], str]
    samples_sent: Dict[str, float]
    load_meter: Optional[owner.LoadMeter]
    results_w: int

    def facts(self, measure: bool = False,
              activity_file: Optional[str] = None) -> Dict[str, Any]:
        """FACTS: what the scheduler needs to know about this machine."""
        if self.gpus is None:  # GPUs do not come and go; nvidia-smi is slow
            self.gpus = query_gpus()
        facts = machine_facts(self.workdir, self.jobs_dir, self.since, self.gpus)
        usage = self.gpu_probe.report(bool(self.gpus))  # per-GPU load: see gpus.py
        if usage is not None:
            facts["gpu_usage"] = usage
        facts.update(self.owner_facts(activity_file) if measure
                     else {"foreign_load": None, "owner_idle_s": None})
        return facts

    def owner_facts(self, activity_file: Optional[str]) -> Dict[str, Any]:
        """Foreign load and the owner's idle time (``owner``): every job's
        supervisor session is fleetslurm's. Only asked for by a controller
        that uses them (a workstation policy, ``spread``): it scans /proc."""
        if getattr(self, "load_meter", None) is None:
            self.load_meter = owner.LoadMeter()
        sessions = [j.sup_pid for j in self.jobs.values() if j.sup_pid and j.result is None]
        return owner.facts(self.load_meter, sessions, activity_file)

    def op_hello(self, req: Dict[str, Any], rid: Any) -> None:
        # first of all: runs the controller requeued elsewhere while it could
        # not reach us must not finish here (the job would run twice)
        for key in req.get("unwanted") or ():
            self.stop_unwanted(key)
        self.send(protocol.ev_hello(rid, os.getpid(), self.facts(),
                                    [j.info() for j in self.jobs.values()]))

    def op_facts(self, req: Dict[str, Any], rid: Any) -> None:
        af = req.get("activity_file")
        self.send(protocol.ev_facts(rid, self.facts(req.get("measure") is True,
                                                    af if isinstance(af, str) and af else None)))

    def op_status(self, req: Dict[str, Any], rid: Any) -> None:
        self.send(protocol.ev_status(rid, [j.info() for j in self.jobs.values()]))

    def op_samples(self, req: Dict[str, Any], rid: Any) -> None:
        """Each run's resource samples this agent has not sent yet (a new
        agent sends a run's whole series again: the controller keeps a point once)."""
        out: Dict[str, Any] = {}
        budget = sampling.MAX_REPLY_POINTS
        for key in sampling.series_keys(self.workdir, self.jobs):
            if budget <= 0:
                break  # the rest with the next heartbeat: one line stays small
            got = sampling.new_points(self.workdir, key,
                                      self.samples_sent.get(key, float("-inf")))
            if got is not None:
                out[key] = got
                self.samples_sent[key] = got["points"][-1][0]
                budget -= len(got["points"])
        self.send(protocol.ev_samples(rid, out))

    def op_shutdown(self, req: Dict[str, Any], rid: Any) -> None:
        self.send(protocol.ev_shutdown(rid))
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
            except UnknownUser as exc:
                # the job's fault here, and every job of its user's on this machine
                self.send(protocol.ev_launch_failed(rid, key, "job %s: %s" % (key, exc),
                                                    cause="user"))
                return
            except ValueError as exc:
                # the job's own spec is at fault, not this machine: the
                # controller fails the job and leaves the machine alone
                self.send(protocol.ev_launch_failed(rid, key, "job %s: %s" % (key, exc),
                                                    cause="job"))
                return
        if err is not None:
            self.send(protocol.ev_launch_failed(rid, key, err))
            return
        jobdir = self.jobdir(key)  # type: ignore[arg-type]
        try:
            os.mkdir(jobdir, 0o700)
        except FileExistsError:  # another agent on this workdir won the race
            self.reply_existing(self.adopt(key), rid)  # type: ignore[arg-type]
            return
        except OSError as exc:
            self.send(protocol.ev_launch_failed(rid, key,
                                                "cannot create %s: %s" % (jobdir, exc)))
            return
        pipe: Tuple[int, int] = (-1, -1)
        feed_fd = -1
        try:
            if spec["uid"] is not None and spec["uid"] != os.geteuid():
                # the job's directory is its user's (0700): its output and,
                # without a shared filesystem, its working directory
                os.chown(jobdir, spec["uid"], -1 if spec["gid"] is None else spec["gid"])
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
            self.bind_cpus(key, spec)  # type: ignore[arg-type]
            if spec["injob"]:  # SLURM's commands in the job, through us (injob)
                spec["injob_socket"] = self.injob.open_job(  # type: ignore[attr-defined]
                    key, spec["uid"], spec["gid"])
                spec["injob_bin"] = self.injob.bin_dir  # type: ignore[attr-defined]
            pipe = os.pipe()
            # built here, not in the child: objects the child allocates land on
            # pages shared with the agent, each one a copy-on-write fault there
            sup = Supervisor(self.workdir, key, jobdir, spec, pipe[1], self.job_umask,
                             self.own_fds(), self.changed_signals,
                             self.cpu_cg[:2], self.results_w)  # type: ignore[arg-type]
            pid = os.fork()
        except OSError as exc:
            for p in pipe:
                if p >= 0:
                    os.close(p)
            self.injob.close_job(key)  # type: ignore[attr-defined]
            if feed_fd >= 0:
                del self.stdin_fds[feed_fd]
                os.close(feed_fd)
            if spec.get("stdin_fd") is not None:
                os.close(spec["stdin_fd"])
            try:
                remove_tree(jobdir)
            except OSError:
                pass  # the launch_failed reply below is what matters
            self.send(protocol.ev_launch_failed(rid, key,
                                                "cannot start the supervisor: %s" % exc))
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
        job.note = (spec["stderr"], spec["node"], note_id(spec, key), spec["uid"])
        job.sup_pid = pid
        job.cpus = spec["cpu_ids"]
        job.launch_fd = pipe[0]
        if feed_fd >= 0:
            job.stdin = StdinFeed(feed_fd)
        job.waiters.append(rid)
        self.jobs[key] = job  # type: ignore[index]
        self.children[pid] = key  # type: ignore[assignment]
        self.launch_fds[pipe[0]] = key  # type: ignore[assignment]
        self.poller.register(pipe[0], select.POLLIN)

    def bind_cpus(self, key: str, spec: Dict[str, Any]) -> None:
        """Choose the job's CPU ids (``spec["cpu_ids"]``, None: unbound) and
        its CPU quota (``spec["cpu_limit"]``), and say so in its environment
        (SLURM_CPU_BIND*; FLEETSLURM_CPU_SHARING when it shares CPUs)."""
        n = spec["cpus"]
        spec["cpu_limit"], spec["cpu_ids"] = n, None
        env = spec["env"]
        if not n:
            return  # a spec from outside a SLURM job: today's behaviour
        if spec["cpu_bind"] == "none":
            for name, value in (("SLURM_CPU_BIND", "quiet,none"), ("SLURM_CPU_BIND_LIST", ""),
                                ("SLURM_CPU_BIND_TYPE", "none"),
                                ("SLURM_CPU_BIND_VERBOSE", "quiet")):
                env.setdefault(name, value)
            return
        in_use: Dict[int, int] = {}
        for job in self.jobs.values():
            if job.result is None and job.cpus:
                for i in job.cpus:
                    in_use[i] = in_use.get(i, 0) + 1
        avail = self.cpu_avail
        ids, self.cpu_cursor, shared = cpus.choose(n, avail, in_use, self.cpu_cursor)
        spec["cpu_ids"] = ids
        env.update(cpus.bind_env(ids, avail[-1] + 1,
                                 env.get("SLURM_CPU_BIND_VERBOSE") == "verbose"))
        if shared:
            # the machine declares more CPUs than it has: never a failure
            note = ("given %d CPU%s on a machine that has %d (%s): bound to CPU%s %s%s"
                    % (n, "s"[:n != 1], len(avail), cpus.format_list(avail), "s"[:len(ids) != 1],
                       cpus.format_list(ids),
                       ", shared with other running jobs in round-robin order"
                       if any(in_use.get(i) for i in ids) else ""))
            env["FLEETSLURM_CPU_SHARING"] = note
            log(self.workdir, "job %s: %s" % (key, note))

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
            self.send(protocol.ev_ended(rid, job.key, job.result))
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
            self.send(protocol.ev_ack(ev, rid, key, err))
            return None
        return job

    def op_signal(self, req: Dict[str, Any], rid: Any) -> None:
        signum = req.get("signal")
        if isinstance(signum, bool) or not isinstance(signum, int) or not 0 <= signum < signal.NSIG:
            self.send(protocol.ev_ack("signalled", rid, req.get("key"), "signal must be a number "
                                      "0..%d, got %r" % (signal.NSIG - 1, signum)))
            return
        job = self._job_for(req, rid, "signalled")
        if job is None:
            return
        err = None
        if job.pid is None and signum in (signal.SIGSTOP, signal.SIGCONT) and job.result is None:
            job.stop = signum  # suspended (or resumed) before it started: done at its start
        elif job.pid is None:
            err = "job %s has not started yet; retry shortly" % job.key
        elif not alive(job.pid, job.ticks):
            err = "job %s's batch shell has exited" % job.key
        else:
            scope = req.get("scope") or ("batch" if req.get("batch_only") else "full")
            try:
                signal_scope(job.dir, job.sup_pid, job.pid, signum, str(scope))
            except OSError as exc:
                err = "cannot signal job %s: %s" % (job.key, exc.strerror)
        self.send(protocol.ev_ack("signalled", rid, job.key, err))

    def op_cancel(self, req: Dict[str, Any], rid: Any) -> None:
        signum = req.get("signal", signal.SIGTERM)
        if isinstance(signum, bool) or not isinstance(signum, int) or not 1 <= signum < signal.NSIG:
            self.send(protocol.ev_ack("cancelling", rid, req.get("key"), "signal must be a number "
                                      "1..%d, got %r" % (signal.NSIG - 1, signum)))
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
            path, node, job_id, owner = job.note
            write_note(path, node, job_id, " DUE TO JOB REQUEUE" if req.get("requeue") else "",
                       owner)
            words.append("noted")
        err = self.tell_supervisor(job, CANCEL_FILE, " ".join(words))
        self.send(protocol.ev_ack("cancelling", rid, job.key, err))

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
            self.send(protocol.ev_ack("limit_set", rid, req.get("key"),
                                      "time_limit_s must be a non-negative integer or null"))
            return
        job = self._job_for(req, rid, "limit_set")
        if job is None:
            return
        err = self.tell_supervisor(job, LIMIT_FILE, "none" if not limit else str(limit))
        self.send(protocol.ev_ack("limit_set", rid, job.key, err))

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
            self.send(protocol.ev_stdin(rid, key, 0, True))
            return
        try:
            data = base64.b64decode(str(req.get("data") or ""), validate=True)
        except (binascii.Error, ValueError):
            self.send(protocol.ev_error(rid, "stdin data must be base64"))
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
        self.send(protocol.ev_stdin(rid, job.key, feed.written, feed.fd < 0))

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
            elif job.sup_pid is not None and self.children.get(job.sup_pid) == job.key:
                # its supervisor reported the result and is still making it
                # durable in this directory: answered when it has exited
                job.forgets.append((req, rid))
                return
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
                    self.injob.close_job(job.key)  # type: ignore[attr-defined]
                    self.adopted.discard(job.key)
                    for k in [k for k in self.samples_sent
                              if k == job.key or k.startswith(job.key + ".")]:
                        del self.samples_sent[k]
                    sampling.forget(self.workdir, job.key)
                except OSError as exc:
                    err = "cannot %s %s: %s" % ("keep" if req.get("keep") else "remove",
                                                job.dir, exc)
        if err is None and key_error(key) is None:
            try:  # files staged for a run that never launched
                remove_tree(self.incoming(key))  # type: ignore[arg-type]
            except OSError:
                pass
        # A key that is already gone counts as forgotten, so the controller may retry.
        self.send(protocol.ev_ack("forgotten", rid, key, err))

"""``srun``: run a command as job tasks.

Inside an allocation (``SLURM_JOB_ID`` set) it starts a job step on this
machine: ``-n`` tasks (else ``SLURM_NTASKS``, else one), each with its own
``SLURM_PROCID``/``SLURM_LOCALID``/``SLURM_STEP_ID``; signals sent to srun are
forwarded to the tasks; the exit status is the highest task exit status.

Outside an allocation it submits the command as a one-task job, streams its
output to the terminal while it runs (wherever it runs), and exits with the
job's exit code; Ctrl-C cancels the job.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Optional

from ..errors import UsageError

PROG = "srun"
_FORWARD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
            signal.SIGQUIT, signal.SIGCONT)


def main(argv: list[str]) -> int:
    from ..slurm.option_env import command_options

    opts, command = command_options(PROG, argv, os.environ)
    if opts.get("version"):
        sys.stdout.write("slurm 22.05.8 (fleetslurm)\n")
        return 0
    if not command:
        raise UsageError("fatal: No command given to execute.", prog=PROG)
    if os.environ.get("SLURM_JOB_ID"):
        return run_step(opts, command)
    return run_job(opts, command)


def _next_step_id(job_id: str) -> int:
    """Step ids count up per job (0, 1, ...), kept in a private counter file."""
    import fcntl
    import tempfile

    # the session id tells this run of the job from earlier ones with the same id
    path = os.path.join(tempfile.gettempdir(),
                        f"fleetslurm-{os.getuid()}-steps-{job_id}-{os.getsid(0)}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = os.read(fd, 32).decode().strip()
        step = int(data) if data.isdigit() else 0
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, str(step + 1).encode())
        return step
    finally:
        os.close(fd)


def _register(pgid: int, remove: bool = False) -> None:
    """Record (or drop) a step's process group in the job's steps directory."""
    steps = os.environ.get("FLEETSLURM_STEPS_DIR")
    if not steps:
        return
    path = os.path.join(steps, str(pgid))
    try:
        if remove:
            os.unlink(path)
        else:
            os.makedirs(steps, mode=0o700, exist_ok=True)
            open(path, "w").close()
    except OSError:
        pass  # signals then miss this step; the job itself is unaffected


def run_step(opts: dict, command: list[str]) -> int:
    from ..slurm.patterns import expand_pattern

    env = dict(os.environ)
    job_id = env["SLURM_JOB_ID"]
    try:
        ntasks = int(opts.get("ntasks") or env.get("SLURM_NTASKS") or 1)
    except ValueError:
        raise UsageError(f'Invalid numeric value "{opts.get("ntasks")}" for --ntasks.',
                         prog=PROG) from None
    if ntasks < 1:
        raise UsageError(f'Invalid numeric value "{ntasks}" for --ntasks.', prog=PROG)
    step = _next_step_id(job_id)
    node = env.get("SLURMD_NODENAME", "localhost")
    umask = os.umask(0)
    os.umask(umask)
    # as srun 22.05 sets them for each task (a step on one node: cyclic for
    # one task, block for more)
    step_env = {"SLURM_UMASK": "%04o" % umask, "SLURM_GTIDS": ",".join(map(str, range(ntasks))),
                "SLURM_DISTRIBUTION": "cyclic" if ntasks == 1 else "block"}
    if env.get("SLURM_JOB_CPUS_PER_NODE"):
        step_env["SLURM_JOB_CPUS_PER_NODE_PACK_GROUP_0"] = env["SLURM_JOB_CPUS_PER_NODE"]
    procs: list[subprocess.Popen] = []
    files = []
    for rank in range(ntasks):
        tenv = dict(env, SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank), SLURM_NODEID="0",
                    SLURM_STEP_ID=str(step), SLURM_STEPID=str(step),
                    SLURM_NTASKS=str(ntasks), SLURM_NPROCS=str(ntasks),
                    SLURM_STEP_NUM_TASKS=str(ntasks), SLURM_STEP_NUM_NODES="1",
                    SLURM_STEP_NODELIST=node, SLURM_STEP_TASKS_PER_NODE=str(ntasks), **step_env)
        if opts.get("cpus_per_task"):
            tenv["SLURM_CPUS_PER_TASK"] = str(opts["cpus_per_task"])
        # %N is the host's own name, as slurmstepd expands it
        fields = dict(job_id=int(job_id), step_id=step, task_id=rank,
                      node=socket.gethostname(),
                      user=env.get("SLURM_JOB_USER", ""),
                      job_name=env.get("SLURM_JOB_NAME", ""),
                      array_job_id=int(env["SLURM_ARRAY_JOB_ID"])
                      if env.get("SLURM_ARRAY_JOB_ID") else None,
                      array_task_id=int(env["SLURM_ARRAY_TASK_ID"])
                      if env.get("SLURM_ARRAY_TASK_ID") else None)
        out = err = None
        if opts.get("output"):
            out = open(expand_pattern(str(opts["output"]), **fields), "ab")
            files.append(out)
        if opts.get("error"):
            err = open(expand_pattern(str(opts["error"]), **fields), "ab")
            files.append(err)
        elif out is not None:
            err = subprocess.STDOUT  # type: ignore[assignment]
        try:
            # each task its own process group, registered where the job's
            # supervisor and agent look for steps to signal
            proc = subprocess.Popen(command, env=tenv, stdout=out, stderr=err,
                                    stdin=None if rank == 0 else subprocess.DEVNULL,
                                    preexec_fn=os.setpgrp)
            procs.append(proc)
            _register(proc.pid)
        except OSError as exc:
            for p in procs:
                p.kill()
            raise UsageError(f"error: execve(): {command[0]}: {exc.strerror}", prog=PROG) \
                from None

    def forward(signum: int, frame: object) -> None:
        for p in procs:
            try:
                p.send_signal(signum)
            except OSError:
                pass

    for sig in _FORWARD:
        signal.signal(sig, forward)
    codes = [p.wait() for p in procs]
    for p in procs:
        _register(p.pid, remove=True)
    for f in files:
        f.close()
    worst = 0
    for c in codes:
        worst = max(worst, 128 - c if c < 0 else c)
    return worst


def run_job(opts: dict, command: list[str]) -> int:
    import shlex
    import socket

    from ..slurm.option_tables import SBATCH
    from .common import client

    known = {o.dest for o in SBATCH}
    options = {k: v for k, v in opts.items() if k in known and k not in ("wait",)}
    options.setdefault("job_name", os.path.basename(command[0]))
    from ..paths import private_dir, state_paths

    # srun's output goes to the terminal: keep the job's files out of the user's way
    spool = private_dir(state_paths().home / "srun")
    options.setdefault("output", str(spool / "%j.out"))
    options.setdefault("error", str(spool / "%j.err"))
    script = "#!/bin/sh\n# generated by srun\nexec \"$@\"\n"
    with client() as c:
        reply = c.call("submit", options=options, script=script, script_args=command,
                       env=dict(os.environ), cwd=os.getcwd(),
                       submit_host=socket.gethostname(), script_name=command[0],
                       command=shlex.join(command))
    job_id = reply["job_id"]
    if opts.get("verbose"):
        sys.stderr.write(f"srun: job {job_id} queued and waiting for resources\n")

    cancelled = {"done": False}

    def cancel(signum: int, frame: object) -> None:
        if not cancelled["done"]:
            cancelled["done"] = True
            sys.stderr.write(f"srun: Job step aborted: Waiting up to 32 seconds for job step "
                             f"to finish.\nsrun: error: job {job_id} cancelled\n")
            with client() as cc:
                cc.call("cancel", ids=[str(job_id)])

    signal.signal(signal.SIGINT, cancel)
    signal.signal(signal.SIGTERM, cancel)
    offsets = {"stdout": 0, "stderr": 0}
    record: Optional[dict] = None
    while True:
        with client() as c:
            for which, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
                r = c.call("read_output", id=str(job_id), offset=offsets[which], which=which)
                if r["data"]:
                    stream.write(r["data"])
                    stream.flush()
                    offsets[which] = r["offset"]
            recs = c.call("jobs", ids=[str(job_id)], steps=False)
        record = recs[0] if recs else None
        if record and record["state"] not in ("PENDING", "RUNNING", "COMPLETING", "REQUEUED"):
            # one more read: output may have landed after the last poll
            with client() as c:
                for which, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
                    r = c.call("read_output", id=str(job_id), offset=offsets[which],
                               which=which)
                    stream.write(r["data"])
            break
        time.sleep(0.2)
    assert record is not None
    if record["state"] == "COMPLETED":
        return 0
    if record.get("exit_signal"):
        sys.stderr.write(f"srun: error: {record['nodes'][0] if record['nodes'] else ''}: "
                         f"task 0: {record['state'].title()}\n")
        return 128 + int(record["exit_signal"])
    if record["state"] not in ("FAILED",):
        sys.stderr.write(f"srun: error: job {job_id} ended {record['state']}\n")
    return int(record.get("exit_code") or 1)

"""The ``local`` backend's detached supervisor: ``python -m
fleetslurm.api.executor.local_run RUNDIR`` runs the batch script in RUNDIR once, or
once per array task, as SLURM would (its ``#SBATCH`` lines read with sbatch's
own parser), and records each task in ``task[_<i>].json``.

It runs tasks as their own process groups, at most as many at once as the
array's ``%N`` throttle and this machine's CPUs (by ``--cpus-per-task``)
allow; enforces ``--time`` (SIGTERM, SIGKILL 5 s later: TIMEOUT); and obeys
``cancel`` / ``cancel_<i>`` files (CANCELLED).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from typing import Optional

KILL_WAIT = 5.0
_POLL = 0.05


def _write(path: str, rec: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(rec, f)
    os.replace(tmp, path)


def _write_text(path: str, text: str) -> None:
    with open(f"{path}.tmp", "w") as f:
        f.write(text)
    os.replace(f"{path}.tmp", path)


class _Task:
    def __init__(self, index: Optional[int], rundir: str) -> None:
        self.index = index
        self.file = os.path.join(rundir, "task.json" if index is None else f"task_{index}.json")
        self.cancel_file = os.path.join(rundir, "cancel" if index is None else f"cancel_{index}")
        self.pid: Optional[int] = None
        self.start = 0.0
        self.term_at: Optional[float] = None
        self.ending: Optional[str] = None  # CANCELLED / TIMEOUT once signalled

    def record(self, **fields) -> None:
        _write(self.file, {"index": self.index, "node": socket.gethostname(), **fields})


def main(argv: list[str]) -> int:
    from ...slurm.arrays import parse_array
    from ...slurm.jobspec import build_spec
    from ...slurm.option_env import sbatch_options
    from ...slurm.patterns import expand_pattern

    rundir = argv[1]
    _write_text(os.path.join(rundir, "pid"), str(os.getpid()))
    with open(os.path.join(rundir, "spec.json")) as f:
        info = json.load(f)
    script_path = os.path.join(rundir, "script")
    with open(script_path) as f:
        script = f.read()
    opts, _, _ = sbatch_options([], script, {})
    spec = build_spec(opts, script=script, script_args=[], env={}, cwd=info["cwd"],
                      submit_host=socket.gethostname(), now=time.time())
    job_id = int(info["job_id"])
    name = spec["name"] or info.get("name") or "script"
    if spec["array"] is not None:
        indices, throttle = parse_array(spec["array"], 10**6)
        tasks = [_Task(i, rundir) for i in indices]
    else:
        tasks, throttle = [_Task(None, rundir)], None
    cpus = os.cpu_count() or 1
    slots = max(1, cpus // max(1, spec["cpus_per_task"]))
    if throttle:
        slots = min(slots, throttle)
    limit = None if spec["time_limit"] is None else spec["time_limit"] * 60.0
    pending = list(tasks)
    running: list[_Task] = []
    cancel_all = os.path.join(rundir, "cancel")

    def launch(t: _Task) -> None:
        fields = dict(job_id=job_id, array_job_id=job_id if t.index is not None else None,
                      array_task_id=t.index, node=socket.gethostname(), job_name=name,
                      user=os.environ.get("USER", ""))
        out = expand_pattern(spec["output"] or ("slurm-%A_%a.out" if t.index is not None
                                                else "slurm-%j.out"), **fields)
        err = expand_pattern(spec["error"], **fields) if spec["error"] else out
        wd = spec["workdir"]
        out, err = (p if p.startswith("/") else os.path.join(wd, p) for p in (out, err))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        env.update(SLURM_JOB_ID=str(job_id), SLURM_JOBID=str(job_id), SLURM_JOB_NAME=name,
                   SLURM_SUBMIT_DIR=info["cwd"], SLURM_CPUS_PER_TASK=str(spec["cpus_per_task"]),
                   SLURM_JOB_NODELIST=socket.gethostname(), SLURM_NTASKS="1",
                   FLEETSLURM_PYTHON=sys.executable)
        if t.index is not None:
            env.update(SLURM_ARRAY_JOB_ID=str(job_id), SLURM_ARRAY_TASK_ID=str(t.index))
        for p in {out, err}:
            os.makedirs(os.path.dirname(p) or ".", exist_ok=True)
        fo = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        fe = fo if err == out else os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        t.start = time.time()
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                os.dup2(fo, 1)
                os.dup2(fe, 2)
                null = os.open("/dev/null", os.O_RDONLY)
                os.dup2(null, 0)
                os.chdir(wd)
                os.execve(script_path, [script_path], env)
            except BaseException as exc:
                os.write(2, f"fleetslurm local: cannot run the job: {exc}\n".encode())
            os._exit(127)
        os.close(fo)
        if fe != fo:
            os.close(fe)
        t.pid = pid
        t.record(state="RUNNING", pid=pid, start=t.start)

    while pending or running:
        now = time.time()
        everyone = os.path.exists(cancel_all)
        for t in list(pending):
            if everyone or os.path.exists(t.cancel_file):
                pending.remove(t)
                t.record(state="CANCELLED", start=None, end=now, exit_code=0, signal=0)
        while pending and len(running) < slots:
            t = pending.pop(0)
            launch(t)
            running.append(t)
        for t in list(running):
            assert t.pid is not None
            if t.ending is None and (everyone or os.path.exists(t.cancel_file)):
                t.ending = "CANCELLED"
            elif t.ending is None and limit is not None and now - t.start > limit:
                t.ending = "TIMEOUT"
            if t.ending is not None and t.term_at is None:
                t.term_at = now
                _killpg(t.pid, signal.SIGTERM)
            elif t.term_at is not None and now - t.term_at > KILL_WAIT:
                _killpg(t.pid, signal.SIGKILL)
            pid, status, ru = os.wait4(t.pid, os.WNOHANG)
            if pid == 0:
                continue
            running.remove(t)
            _killpg(t.pid, signal.SIGKILL)  # what the job left behind in its group
            code = os.waitstatus_to_exitcode(status)
            exit_code, sig = (code, 0) if code >= 0 else (0, -code)
            state = t.ending or ("COMPLETED" if code == 0 else "FAILED")
            t.record(state=state, pid=t.pid, start=t.start, end=time.time(),
                     exit_code=exit_code, signal=sig, cpu=ru.ru_utime + ru.ru_stime,
                     max_rss_kb=ru.ru_maxrss)
        time.sleep(_POLL)
    return 0


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv))

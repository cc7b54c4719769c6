"""Store rows -> the records clients render (JobRecord etc.). Pure over dicts."""

from __future__ import annotations

import functools
import pwd
from typing import Any, Iterable, Optional

from .model import JobRecord

__all__ = ["job_record", "group_pending_arrays", "user_name"]

@functools.lru_cache(maxsize=256)
def user_name(uid: int) -> str:
    """The login name of ``uid`` (the number itself when it has none)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def job_record(task: dict, job: dict, steps: Iterable[dict] = (), cluster: str = "") -> JobRecord:
    """One task as a JobRecord; ``steps`` are its step rows: batch-step runs
    (newest last) and the srun steps of its runs."""
    spec: dict[str, Any] = job["spec"]
    req = task["req"]
    last: Optional[dict] = None
    srun_steps: list[dict] = []
    for s in steps:
        if s.get("step", "batch") == "batch":
            last = s
        else:
            srun_steps.append(s)
    array_job = job["job_id"] if task["array_index"] is not None else None
    rec: JobRecord = {
        "job_id": task["task_id"],
        "array_job_id": array_job,
        "array_task_id": task["array_index"],
        "array_task_str": None,
        "name": req.get("name") or spec.get("name") or "",
        "user": job["user"],
        "uid": job["uid"],
        "partition": req.get("partition", ""),
        "account": spec.get("account") or "",
        "state": task["state"],
        # a held job says how it was held (admin, user, requeuehold), as SLURM does
        "reason": (req["held_reason"] if task["held"] and req.get("held_reason")
                   and task["state"] == "PENDING" else task["reason"] or "None"),
        "submit_time": task["submit_time"],
        # a --begin time is when the job becomes eligible (SLURM shows it so)
        "eligible_time": task["eligible_time"] or (
            req.get("begin_time") if not task["held"] else None),
        "start_time": task["start_time"],
        "end_time": task["end_time"],
        "time_limit": req.get("time_limit"),
        "nodes": [task["node"]] if task["node"] else [],
        "num_nodes": 1,
        "num_tasks": spec.get("ntasks", 1),
        "cpus": task["alloc_cpus"] or req.get("cpus", 1),
        "cpus_per_task": spec.get("cpus_per_task", 1),
        "mem_mb": task["alloc_mem_mb"] if task["alloc_mem_mb"] is not None else req.get("mem_mb", 0),
        "gpus": req.get("gpus", 0),
        "gpu_ids": task["gpu_ids"],
        "exit_code": task["exit_code"],
        "exit_signal": task["exit_signal"],
        "derived_exit_code": 0 if task["exit_code"] is not None else None,
        "cancelled_by": task["cancelled_by"],
        "max_rss_kb": last["max_rss_kb"] if last else None,
        "user_cpu": last["user_cpu"] if last else None,
        "system_cpu": last["system_cpu"] if last else None,
        "total_cpu": ((last["user_cpu"] or 0) + (last["system_cpu"] or 0))
        if last and last["user_cpu"] is not None else None,
        "workdir": spec.get("workdir", ""),
        "stdout": task["stdout"] or "",
        "stderr": task["stderr"] or "",
        "stdin": spec.get("input") or "/dev/null",
        "command": spec.get("command", ""),
        "comment": spec.get("comment", ""),
        "priority": int(req.get("priority", 0)) or 1,
        "nice": req.get("nice", 0),
        "features": req.get("constraint", ""),
        "dependency": req.get("dependency", ""),
        "restart_count": task["restart_count"],
        "requeue": bool(spec.get("requeue", True)),
        "batch_host": task["node"],
        "submit_host": spec.get("submit_host", ""),
        "qos": spec.get("qos") or "normal",
        "wckey": spec.get("wckey", ""),
        "exclusive": bool(req.get("exclusive")),
        "held": bool(task["held"]),
        "cluster": cluster,
        "steps": [
            {"run_key": s["run_key"], "node": s["node"], "state": s["state"],
             "start_time": s["start_time"], "end_time": s["end_time"],
             "exit_code": s["exit_code"], "exit_signal": s["exit_signal"],
             "max_rss_kb": s["max_rss_kb"], "user_cpu": s["user_cpu"],
             "system_cpu": s["system_cpu"]}
            for s in ([last] if last else [])
        ],
        # srun steps of the current run (N.0, N.1, ...); sacct shows them
        "job_steps": _job_steps(task, srun_steps),
        # srun outside an allocation makes a job without a batch script
        "batch_flag": not spec.get("srun_job", False),
    }  # type: ignore[typeddict-unknown-key]
    if spec.get("srun_job"):
        # a job srun made ends as its step 0 did (its batch part is only srun)
        zero = [s for s in rec["job_steps"] if s["step_id"] == 0 and s["end_time"]]
        if zero and task["exit_code"] is not None and zero[0]["exit_code"] is not None:
            rec["exit_code"] = zero[0]["exit_code"]
            rec["exit_signal"] = zero[0]["exit_signal"]
    return rec


def _job_steps(task: dict, rows: list[dict]) -> list[dict]:
    """The srun steps of the task's current (or last) run, by step id. A step
    still RUNNING after the job ended was killed with it: CANCELLED then."""
    run_key = task["run_key"]
    if not run_key:
        return []
    prefix = run_key + "."
    ended = task["state"] not in ("RUNNING", "COMPLETING", "PENDING")
    out = []
    for s in rows:
        if not s["run_key"].startswith(prefix) or "." in s["run_key"][len(prefix):]:
            continue
        state, end = s["state"], s["end_time"]
        if state == "RUNNING" and ended:
            state, end = "CANCELLED", task["end_time"]
        out.append({"step_id": int(s["step"]), "name": s.get("name") or "",
                    "node": s["node"], "state": state, "start_time": s["start_time"],
                    "end_time": end, "exit_code": s["exit_code"],
                    "exit_signal": s["exit_signal"], "ntasks": s.get("ntasks") or 1,
                    "cpus": s.get("cpus") or 1, "max_rss_kb": s["max_rss_kb"],
                    "user_cpu": s["user_cpu"], "system_cpu": s["system_cpu"]})
    out.sort(key=lambda r: r["step_id"])
    return out


def group_pending_arrays(records: list[JobRecord], throttles: dict[int, Optional[int]]) -> list[JobRecord]:
    """Fold the pending tasks of each array into one ``A_[list%N]`` record, as squeue shows them."""
    from .slurm.arrays import format_array

    out: list[JobRecord] = []
    groups: dict[int, list[JobRecord]] = {}
    for r in records:
        a = r.get("array_job_id")
        if a is not None and r["state"] == "PENDING":
            if a not in groups:
                groups[a] = []
                out.append(r)  # placeholder keeps the order
            groups[a].append(r)
        else:
            out.append(r)
    result = []
    for r in out:
        a = r.get("array_job_id")
        if a is not None and r["state"] == "PENDING" and a in groups:
            members = groups.pop(a)
            if len(members) == 1:
                result.append(members[0])
                continue
            first = dict(members[0])
            idx = sorted(m["array_task_id"] for m in members)  # type: ignore[misc]
            first["array_task_str"] = format_array(idx, throttles.get(a))
            first["array_task_id"] = None
            result.append(first)  # type: ignore[arg-type]
        elif a is not None and r["state"] == "PENDING":
            continue
        else:
            result.append(r)
    return result

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
    """One task as a JobRecord; ``steps`` are its batch-step runs (newest last)."""
    spec: dict[str, Any] = job["spec"]
    req = task["req"]
    last: Optional[dict] = None
    for s in steps:
        last = s
    pending = task.get("array_pending")
    array_job = job["job_id"] if task["array_index"] is not None or pending is not None else None
    index, pending_str = task["array_index"], None
    if pending is not None:
        # an array's own record: the indices without a task yet (squeue A_[...]);
        # a single one shows as that task (A_7), as SLURM shows it
        index, pending_str = _pending_part(pending, spec)
    rec: JobRecord = {
        "job_id": task["task_id"],
        "array_job_id": array_job,
        "array_task_id": index,
        "array_task_str": pending_str,
        "name": req.get("name") or spec.get("name") or "",
        "user": job["user"],
        "uid": job["uid"],
        "partition": req.get("partition", ""),
        "account": spec.get("account") or "",
        "state": task["state"],
        "reason": task["reason"] or "None",
        "submit_time": task["submit_time"],
        "eligible_time": task["eligible_time"],
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
        # as squeue shows it (afterok:7_*(unfulfilled), "" once met); the text as
        # given until the controller has judged it
        "dependency": task["dep_shown"] if task.get("dep_shown") is not None
        else req.get("dependency", ""),
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
    }  # type: ignore[typeddict-unknown-key]
    return rec


def _pending_part(pending: str, spec: dict) -> tuple[Optional[int], Optional[str]]:
    """(index, None) for one pending index, else (None, ``0-9%2``)."""
    from .slurm.arrays import IndexSet

    indices = IndexSet.from_text(pending)
    if len(indices) == 1:
        return indices.first(), None
    return None, indices.format(spec.get("array_throttle"))


def group_pending_arrays(records: list[JobRecord], throttles: dict[int, Optional[int]],
                         pending: Optional[dict[int, str]] = None) -> list[JobRecord]:
    """Fold the pending part of each array into one ``A_[list%N]`` record, as squeue
    shows it: the array's own record (its indices without a task, ``pending``
    maps array ids to them) and its pending tasks. A lone pending index shows
    as ``A_i``, as in SLURM."""
    from .slurm.arrays import IndexSet

    pending = pending or {}
    groups: dict[int, list[JobRecord]] = {}
    for r in records:
        a = r.get("array_job_id")
        if a is not None and r["state"] == "PENDING":
            groups.setdefault(a, []).append(r)
    result: list[JobRecord] = []
    for r in records:
        a = r.get("array_job_id")
        if a is None or r["state"] != "PENDING":
            result.append(r)
            continue
        members = groups.pop(a, None)
        if members is None:
            continue  # folded into the first of its group
        indices = IndexSet.from_text(pending[a]) if a in pending else IndexSet()
        for m in members:
            if m.get("array_task_id") is not None:
                indices.add(m["array_task_id"])  # type: ignore[arg-type]
        head = next((m for m in members if m.get("array_task_str")), members[0])
        if len(indices) == 1:
            one = dict(head)
            one["array_task_id"], one["array_task_str"] = indices.first(), None
            result.append(one)  # type: ignore[arg-type]
            continue
        first = dict(head)
        first["array_task_str"] = indices.format(throttles.get(a))
        first["array_task_id"] = None
        first["job_id"] = a  # the pending part keeps the array's id, as in SLURM
        result.append(first)  # type: ignore[arg-type]
    return result

"""Store rows -> the records clients render (JobRecord etc.). Pure over dicts."""

from __future__ import annotations

import functools
import pwd
from typing import Any, Iterable, Optional

from .model import JobRecord

__all__ = ["job_record", "gpu_usage", "group_pending_arrays", "login_name", "user_name",
           "TOP_PRIORITY"]

#: SLURM's priority/basic gives each new job one less than the job before,
#: counting down from here (slurmctld's TOP_PRIORITY)
TOP_PRIORITY = 0xFFFF0000

# the reason SLURM 22.05 leaves on a job that ended this way
_END_REASONS = {"TIMEOUT": "TimeLimit", "OUT_OF_MEMORY": "OutOfMemory", "NODE_FAIL": "NodeDown",
                "DEADLINE": "DeadLine"}

def login_name(uid: int) -> str:
    """The login name of ``uid`` now (the number itself when it has none),
    read afresh: a job's owner is named by it, and a uid may have been given
    to a new user since :func:`user_name` remembered the old one."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def gpu_usage(step: Optional[dict]) -> Optional[dict]:
    """A run's GPU load from its step row (the heartbeats' readings of its
    GPUs, ``ctld.gpustats``): averages and peaks, or None without readings."""
    n = (step or {}).get("gpu_samples") or 0
    if not n:
        return None
    return {"samples": n, "util_ave": round(step["gpu_util_sum"] / n),  # type: ignore[index]
            "util_max": int(step["gpu_util_max"]),  # type: ignore[index]
            "mem_ave_mb": round(step["gpu_mem_sum_mb"] / n),  # type: ignore[index]
            "mem_max_mb": int(step["gpu_mem_max_mb"])}  # type: ignore[index]


def _suspension(task: dict) -> dict:
    """A run's suspensions by its workstation's policy, as SLURM keeps them:
    SuspendTime (of the last suspend or resume), the seconds suspended (the
    current suspension not yet counted) and SecsPreSuspend (the run time up
    to the last suspension, which squeue's TIME shows while suspended)."""
    since, held = task.get("suspend_time"), float(task.get("suspended_s") or 0.0)
    pre = None
    if since is not None and task["start_time"] is not None:
        # no run time passes between a suspend and its resume: the same sum
        # either side of a resume
        pre = max(0.0, since - task["start_time"] - held)
    return {"suspend_time": since, "suspended_s": held, "pre_sus_time": pre}


@functools.lru_cache(maxsize=256)
def user_name(uid: int) -> str:
    """The login name of ``uid`` (the number itself when it has none),
    remembered: for showing who owns what."""
    return login_name(uid)


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
        "reason": _reason(task),
        "submit_time": task["submit_time"],
        "eligible_time": _eligible_time(task, req),
        "begin_time": req.get("begin_time"),
        "start_time": task["start_time"],
        "end_time": task["end_time"],
        **_suspension(task),
        "time_limit": req.get("time_limit"),
        "nodes": [task["node"]] if task["node"] else [],
        "req_nodes": list(req.get("nodelist") or []),
        "exc_nodes": list(req.get("exclude") or []),
        "num_nodes": 1,
        "num_tasks": spec.get("ntasks", 1),
        "cpus": task["alloc_cpus"] or req.get("cpus", 1),
        "cpus_per_task": spec.get("cpus_per_task", 1),
        "mem_mb": task["alloc_mem_mb"] if task["alloc_mem_mb"] is not None else req.get("mem_mb", 0),
        "mem_per_cpu_mb": spec.get("mem_per_cpu_mb"),
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
        # the patterns as given: scontrol shows them half expanded, as SLURM does
        "stdout_pattern": spec.get("output") or (
            "slurm-%A_%a.out" if task["array_index"] is not None
            or task.get("array_pending") is not None else "slurm-%j.out"),
        "stderr_pattern": spec.get("error"),
        "stdin": spec.get("input") or "/dev/null",
        "command": spec.get("command", ""),
        "comment": spec.get("comment", ""),
        "priority": _priority(task, job["job_id"], req),
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
        # no accounting database, no QOS: SLURM without slurmdbd shows (null)
        "qos": spec.get("qos") or "",
        "wckey": spec.get("wckey", ""),
        "mail_user": spec.get("mail_user", ""),
        "mail_type": spec.get("mail_type", ""),
        "exclusive": bool(req.get("exclusive")),
        "held": bool(task["held"]),
        "cluster": cluster,
        "steps": [
            {"run_key": s["run_key"], "node": s["node"], "state": s["state"],
             "start_time": s["start_time"], "end_time": s["end_time"],
             "exit_code": s["exit_code"], "exit_signal": s["exit_signal"],
             "max_rss_kb": s["max_rss_kb"], "user_cpu": s["user_cpu"],
             "system_cpu": s["system_cpu"], "error": s["error"]}
            for s in ([last] if last else [])
        ],
        # srun steps of the current run (N.0, N.1, ...); sacct shows them
        "job_steps": _job_steps(task, srun_steps),
        # srun outside an allocation makes a job without a batch script
        "batch_flag": not spec.get("srun_job", False),
    }  # type: ignore[typeddict-unknown-key]
    usage = gpu_usage(last)
    if usage is not None:  # only GPU jobs carry it: records stay lean
        rec["gpu_usage"] = usage
    if spec.get("srun_job"):
        # a job srun made ends as its step 0 did (its batch part is only srun)
        zero = [s for s in rec["job_steps"] if s["step_id"] == 0 and s["end_time"]]
        if zero and task["exit_code"] is not None and zero[0]["exit_code"] is not None:
            rec["exit_code"] = zero[0]["exit_code"]
            rec["exit_signal"] = zero[0]["exit_signal"]
    return rec


def _reason(task: dict) -> str:
    """The stored reason, or the one SLURM gives a job that ended (FAILED:
    NonZeroExitCode, or JobLaunchFailure when a signal ended the batch
    script; TIMEOUT: TimeLimit...) or that is held."""
    reason = task["reason"] or "None"
    held_reason = task["req"].get("held_reason")
    if task["held"] and held_reason and task["state"] == "PENDING":
        # a held job says how it was held (admin, user, requeuehold), as SLURM does
        return held_reason
    if reason != "None":
        return reason
    state = task["state"]
    if state == "FAILED":
        return "JobLaunchFailure" if task["exit_signal"] else "NonZeroExitCode"
    if state == "PENDING" and task["held"]:
        return "JobHeldUser"
    return _END_REASONS.get(state, reason)


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


def _priority(task: dict, job_id: int, req: dict) -> int:
    """SLURM's priority/basic: 0 while held, else below every older job's
    (tasks share their array's), less the job's nice."""
    if task["held"]:
        return 0
    if req.get("priority"):
        return int(req["priority"])
    return max(1, TOP_PRIORITY - job_id - int(req.get("nice") or 0))


def _eligible_time(task: dict, req: dict) -> Optional[float]:
    """When the job could first start: Unknown (None) while held or waiting
    on a dependency, the --begin time, else its submission."""
    if task["eligible_time"]:
        return task["eligible_time"]
    pending = task["state"] == "PENDING"
    if pending and (task["held"] or str(task["reason"]).startswith("Dependency")):
        return None
    return max(task["submit_time"], req.get("begin_time") or 0)


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

"""``squeue --json`` and ``sinfo --json`` as SLURM 22.05 prints them.

SLURM 22.05 builds these from its OpenAPI v0.0.38 job and node parsers and
prints them with its JSON serializer: two-space indent, ``/`` escaped as
``\\/``, empty lists as ``[`` newline ``]``, no newline at the end. Keys and
their order are v0.0.38's, taken from the 22.05 binaries here
(tests_slurm/test_json.py compares them). 22.05's ``squeue --json`` lists
every job whatever filter is given (``-u``, ``-j``, ``-t`` ... are ignored),
and ``sinfo --json`` every node; so do these.

Values fleetslurm has no notion of print as SLURM prints them when unset
(``""``, ``0``, ``null``, ``[]``). Pure: no I/O except user/group name
lookups, no clock (``now`` is passed in).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Optional

from fleetslurm.slurm.hostlist import compress

__all__ = ["dumps", "squeue_json", "sinfo_json", "META"]

#: the ``meta`` block 22.05's commands print
META = {"plugin": {"type": "openapi/v0.0.38", "name": "Slurm OpenAPI v0.0.38"},
        "Slurm": {"version": {"major": 22, "micro": 8, "minor": 5}, "release": "22.05.8"}}


def dumps(value: Any) -> str:
    """SLURM's JSON text for ``value`` (no newline at the end, as 22.05)."""
    return _dump(value, 0)


def _scalar(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value).replace("/", "\\/")


def _dump(value: Any, depth: int) -> str:
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict):
        items = [f"{inner}{_scalar(str(k))}: {_dump(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + ("\n" if items else "") + pad + "}"
    if isinstance(value, (list, tuple)):
        items = [inner + _dump(v, depth + 1) for v in value]
        return "[\n" + ",\n".join(items) + ("\n" if items else "") + pad + "]"
    return _scalar(value)


def _int(value: Any) -> int:
    return int(value) if value else 0


def _names(uid: int, user: str) -> tuple[int, str]:
    """The user's primary group id and name (SLURM shows the job's group)."""
    import grp
    import pwd

    try:
        gid = pwd.getpwnam(user).pw_gid if user else pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid, str(uid)
    try:
        return gid, grp.getgrgid(gid).gr_name
    except KeyError:
        return gid, str(gid)


_DEFAULT_OUTPUTS = ("slurm-%j.out", "slurm-%A_%a.out")


def _path(pattern: Optional[str], rec: Mapping[str, Any]) -> str:
    """An output/input pattern as sbatch sends it: relative to the job's
    working directory made absolute."""
    import posixpath

    if not pattern:
        return ""
    if pattern.startswith("/"):
        return pattern
    return posixpath.join(str(rec.get("workdir") or "/"), pattern)


def _flags(rec: Mapping[str, Any], state: str, mem_set: bool) -> list[str]:
    """The job flags 22.05 shows, in its bit order: CPUs per task given,
    the job ran (while it runs), memory given."""
    flags = []
    if int(rec.get("cpus_per_task") or 1) > 1:
        flags.append("JOB_CPUS_SET")
    if state in ("RUNNING", "COMPLETING", "SUSPENDED"):
        flags.append("JOB_WAS_RUNNING")
    if mem_set:
        flags.append("JOB_MEM_SET")
    return flags


def _job(rec: Mapping[str, Any], now: float) -> dict[str, Any]:
    from fleetslurm.slurm.scontrol_fmt import _job_tres

    state = str(rec.get("state") or "PENDING")
    started = bool(rec.get("start_time")) and state != "PENDING"
    cpus = int(rec.get("cpus") or 1)
    nodes = list(rec.get("nodes") or [])
    limit = rec.get("time_limit")
    held = bool(rec.get("held"))
    gid, group = _names(int(rec.get("uid") or 0), str(rec.get("user") or ""))
    code, sig = int(rec.get("exit_code") or 0), int(rec.get("exit_signal") or 0)
    mem_per_cpu = rec.get("mem_per_cpu_mb")
    mem = int(rec.get("mem_mb") or 0)
    tres = _job_tres(rec)  # type: ignore[arg-type]
    stdout = str(rec.get("stdout_pattern") or "")
    end = rec.get("end_time")
    if not end and state == "RUNNING" and limit:
        end = float(rec["start_time"]) + int(limit) * 60  # when it will be stopped
    out: dict[str, Any] = {
        "account": rec.get("account") or "", "accrue_time": 0 if held else
        _int(rec.get("eligible_time")), "admin_comment": "",
        "array_job_id": _int(rec.get("array_job_id")), "array_task_id": rec.get("array_task_id"),
        "array_max_tasks": 0, "array_task_string": rec.get("array_task_str") or "",
        "association_id": 0, "batch_features": "", "batch_flag": bool(rec.get("batch_flag", True)),
        "batch_host": rec.get("batch_host") or "",
        "flags": _flags(rec, state, bool(mem or mem_per_cpu)),
        "burst_buffer": "", "burst_buffer_state": "", "cluster": rec.get("cluster") or "",
        "cluster_features": "", "command": rec.get("command") or "",
        "comment": rec.get("comment") or "", "container": "", "contiguous": False,
        "core_spec": None, "thread_spec": None, "cores_per_socket": None,
        "billable_tres": float(cpus) if started else None,
        "cpus_per_task": None,  # 22.05 prints null here even for -c N
        "cpu_frequency_minimum": None, "cpu_frequency_maximum": None,
        "cpu_frequency_governor": None, "cpus_per_tres": "", "deadline": 0, "delay_boot": 0,
        "dependency": rec.get("dependency") or "",
        "derived_exit_code": _int(rec.get("derived_exit_code")),
        "eligible_time": 0 if held else _int(rec.get("eligible_time")), "end_time": _int(end),
        "excluded_nodes": compress(list(rec.get("exc_nodes") or [])) if rec.get("exc_nodes")
        else "",
        "exit_code": (code << 8) | sig, "features": rec.get("features") or "",
        "federation_origin": "", "federation_siblings_active": "",
        "federation_siblings_viable": "", "gres_detail": [], "group_id": gid,
        "group_name": group, "job_id": int(rec["job_id"]),
    }
    if started:
        out["job_resources"] = {
            "nodes": compress(nodes) if nodes else "", "allocated_cores": cpus,
            "allocated_hosts": len(nodes),
            "allocated_nodes": [{"sockets": {"0": {"cores": {str(i): "allocated"
                                                             for i in range(cpus)}}},
                                 "nodename": n, "cpus_used": 0, "memory_used": 0,
                                 "memory_allocated": mem} for n in nodes]}
    out.update({
        "job_state": state, "last_sched_evaluation": int(now), "licenses": "", "max_cpus": 0,
        "max_nodes": 0, "mcs_label": "", "memory_per_tres": "", "name": rec.get("name") or "",
        "nodes": compress(nodes) if nodes else "",
        "nice": int(rec["nice"]) if rec.get("nice") else None,
        "tasks_per_core": None, "tasks_per_node": 0, "tasks_per_socket": None,
        "tasks_per_board": 0, "cpus": cpus, "node_count": int(rec.get("num_nodes") or 1),
        "tasks": int(rec.get("num_tasks") or 1), "het_job_id": 0, "het_job_id_set": "",
        "het_job_offset": 0, "partition": rec.get("partition") or "", "prefer": "",
        "memory_per_node": mem if mem and not mem_per_cpu else None,
        "memory_per_cpu": int(mem_per_cpu) if mem_per_cpu else None,
        "minimum_cpus_per_node": int(rec.get("cpus_per_task") or 1),
        "minimum_tmp_disk_per_node": 0, "preempt_time": 0, "pre_sus_time": 0,
        "priority": int(rec.get("priority") or 0), "profile": None, "qos": rec.get("qos") or "",
        "reboot": False,
        "required_nodes": compress(list(rec["req_nodes"])) if rec.get("req_nodes") else "",
        "requeue": bool(rec.get("requeue", True)), "resize_time": 0,
        "restart_cnt": int(rec.get("restart_count") or 0), "resv_name": "", "shared": None,
        "show_flags": ["SHOW_ALL", "SHOW_DETAIL", "SHOW_LOCAL"], "sockets_per_board": 0,
        "sockets_per_node": None, "start_time": _int(rec.get("start_time")),
        "state_description": "", "state_reason": rec.get("reason") or "None",
        # the patterns as sbatch sends them: made absolute, none given empty
        "standard_error": _path(rec.get("stderr_pattern"), rec),
        "standard_input": _path(rec.get("stdin"), rec) or "/dev/null",
        "standard_output": "" if stdout in _DEFAULT_OUTPUTS else _path(stdout, rec),
        "submit_time": _int(rec.get("submit_time")), "suspend_time": 0, "system_comment": "",
        "time_limit": int(limit) if limit is not None else None, "time_minimum": 0,
        "threads_per_core": None, "tres_bind": "", "tres_freq": "", "tres_per_job": "",
        "tres_per_node": f"gres:gpu:{rec['gpus']}" if rec.get("gpus") else "",
        "tres_per_socket": "", "tres_per_task": "", "tres_req_str": tres,
        "tres_alloc_str": tres if started else "", "user_id": int(rec.get("uid") or 0),
        "user_name": rec.get("user") or "", "wckey": rec.get("wckey") or "",
        "current_working_directory": rec.get("workdir") or "",
    })
    return out


def squeue_json(records: Iterable[Mapping[str, Any]], now: float) -> str:
    """``squeue --json``: every job record, in the order given."""
    return dumps({"meta": META, "errors": [], "jobs": [_job(r, now) for r in records]})


# node_state_string: base state (value & 0xF) and flag names
_BASE = {"idle": "idle", "mix": "mixed", "alloc": "allocated", "down": "down",
         "drain": "idle", "drng": "mixed", "comp": "allocated", "unk": "unknown",
         "fail": "down", "resv": "idle", "maint": "idle", "futr": "future", "plnd": "idle"}
_FLAGS = {"drain": ["DRAIN"], "drng": ["DRAIN"], "comp": ["COMPLETING"], "fail": ["FAIL"],
          "resv": ["RESERVED"], "maint": ["MAINTENANCE"], "plnd": ["PLANNED"]}


def _node(node: Mapping[str, Any]) -> dict[str, Any]:
    from fleetslurm.slurm.fmt_common import convert_whole

    compact = str(node.get("state") or "unk").lower().rstrip("*")
    flags = list(_FLAGS.get(compact, []))
    if node.get("responding") is False:
        flags.append("NOT_RESPONDING")
    cpus, mem = int(node.get("cpus") or 0), int(node.get("mem_mb") or 0)
    alloc_cpus, alloc_mem = int(node.get("alloc_cpus") or 0), int(node.get("alloc_mem_mb") or 0)
    gpus = int(node.get("gpus") or 0)
    tres = f"cpu={cpus},mem={convert_whole(mem, 'MGTPE')},billing={cpus}"
    if gpus:
        tres += f",gres/gpu={gpus}"
    used = []
    if alloc_cpus:
        used.append(f"cpu={alloc_cpus}")
    if alloc_mem:
        used.append(f"mem={convert_whole(alloc_mem, 'MGTPE')}")
    if node.get("alloc_gpus"):
        used.append(f"gres/gpu={node['alloc_gpus']}")
    features = ",".join(node.get("features") or [])
    load = node.get("cpu_load")
    return {
        "architecture": node.get("arch") or "", "burstbuffer_network_address": "",
        "boards": 1, "boot_time": _int(node.get("boot_time")),
        "comment": node.get("description") or "", "cores": 1, "cpu_binding": 0,
        "cpu_load": int(round(float(load) * 100)) if load is not None else 0, "extra": "",
        "free_memory": int(node.get("free_mem_mb") or 0), "cpus": cpus,
        "last_busy": _int(node.get("last_busy_time")), "features": features,
        "active_features": features, "gres": f"gpu:{gpus}" if gpus else "",
        "gres_drained": "N/A",
        "gres_used": f"gpu:{int(node.get('alloc_gpus') or 0)}" if gpus else "",
        "mcs_label": "", "name": node.get("name") or "", "next_state_after_reboot": "invalid",
        "address": node.get("hostname") or node.get("name") or "",
        "hostname": node.get("hostname") or node.get("name") or "",
        "state": _BASE.get(compact, "unknown"), "state_flags": flags,
        "next_state_after_reboot_flags": [], "operating_system": node.get("os") or "",
        "owner": None, "partitions": list(node.get("partitions") or []), "port": 6818,
        "real_memory": mem, "reason": node.get("reason") or "",
        "reason_changed_at": _int(node.get("reason_time")),
        "reason_set_by_user": node.get("reason_user") or None,
        "slurmd_start_time": _int(node.get("slurmd_start_time")),
        # a machine described by its CPU count only: SLURM counts each a socket
        "sockets": cpus, "threads": 1, "temporary_disk": 0,
        "weight": int(node.get("weight") or 1), "tres": tres,
        "slurmd_version": node.get("version") or "22.05.8", "alloc_memory": alloc_mem,
        "alloc_cpus": alloc_cpus, "idle_cpus": max(0, cpus - alloc_cpus),
        "tres_used": ",".join(used) if used else None, "tres_weighted": float(alloc_cpus),
    }


def sinfo_json(nodes: Iterable[Mapping[str, Any]]) -> str:
    """``sinfo --json``: one entry per machine."""
    return dumps({"meta": META, "errors": [], "nodes": [_node(n) for n in nodes]})

"""``scontrol show job|node|partition|config`` text, as SLURM 22.05 prints it.

Pure: no I/O, no clock. Key order, line breaks, trailing spaces and the
values SLURM prints for unset fields follow SchedMD/slurm
``src/api/job_info.c`` (``_sprint_job_info``), ``node_info.c``
(``slurm_sprint_node_table``), ``partition_info.c`` and
``slurm_print_ctl_conf``, checked line by line against a real scontrol 22.05
(see tests/test_formats_scontrol.py).

Multi-line records put ``"\\n   "`` between lines; ``one_liner`` (``scontrol
-o``) puts a space instead. A job record ends with ``"\\n   \\n\\n"`` (SLURM
appends one more line separator after the last line), a node or partition
record with ``"\\n\\n"``; so printing several records is plain concatenation.
"""

from __future__ import annotations

from typing import Optional, Sequence

from fleetslurm.model import JobRecord, NodeRecord, PartitionRecord
from fleetslurm.slurm.fmt_common import (PENDING_LIKE, convert_whole, end_time, features, null_str,
                                         run_time, start_time)
from fleetslurm.slurm.hostlist import compress
from fleetslurm.slurm.units import format_datetime, format_hms, format_limit_hms

__all__ = ["show_job", "show_node", "show_partition", "show_config", "gpu_usage_line"]


# ---------------------------------------------------------------- helpers

def _mem(mb: int) -> str:
    """convert_num_unit(UNIT_MEGA, CONVERT_NUM_UNIT_EXACT)."""
    return convert_whole(mb, "MGTPE")


def _record(lines: list[str], one_liner: bool) -> str:
    return (" " if one_liner else "\n   ").join(lines)


# ---------------------------------------------------------------- jobs

def _job_tres(job: JobRecord) -> str:
    nodes = job.get("num_nodes") or max(1, len(job.get("nodes") or []))
    cpus = job.get("cpus", 1)
    if job.get("alloc_mem_mb"):
        # without --mem SLURM grants (and shows) the node's whole RealMemory
        mem = int(job["alloc_mem_mb"])  # type: ignore[typeddict-item]
    elif job.get("mem_per_cpu_mb"):
        mem = int(job["mem_per_cpu_mb"]) * cpus  # type: ignore[typeddict-item]
    else:
        mem = (job.get("mem_mb") or 0) * nodes
    parts = [f"cpu={cpus}"]
    if mem:
        parts.append(f"mem={_mem(mem)}")
    parts += [f"node={nodes}", f"billing={cpus}"]
    if job.get("gpus"):
        parts.append(f"gres/gpu={job.get('gpus')}")
    return ",".join(parts)


#: what ``%a`` gives outside an array task (SLURM's NO_VAL)
_NO_VAL = 4294967294


def _std_path(job: JobRecord, which: str) -> str:
    """StdOut/StdErr as scontrol 22.05 prints them (``_fname_format`` in
    src/api/job_info.c): the job's pattern with only ``%A %a %j %u %x``
    replaced, each everywhere in turn (no ``%%``, no padding, no ``%N``,
    backslashes kept), joined to the working directory. Without a pattern
    in the record: the expanded path it holds."""
    pattern = job.get(f"{which}_pattern") or job.get("stdout_pattern")  # type: ignore[misc]
    if not pattern:
        return str(job.get(which) or job.get("stdout") or "")
    array_task = job.get("array_task_id")
    in_array = array_task is not None or bool(job.get("array_task_str"))
    values = {
        "%A": job.get("array_job_id") if in_array else job.get("job_id"),
        "%a": _NO_VAL if array_task is None else array_task,
        "%j": job.get("job_id"),
        "%u": job.get("user", ""),
        "%x": job.get("name", ""),
    }
    text = str(pattern)
    for code, value in values.items():
        text = text.replace(code, str(value))
    if text.startswith("/"):
        return text
    return f"{job.get('workdir', '')}/{text}"


def show_job(job: JobRecord, now: float, *, one_liner: bool = False) -> str:
    """One job as ``scontrol show job`` prints it (``one_liner``: ``-o``).

    Fields fleetslurm does not track print SLURM's unset values
    (``(null)``, ``N/A``, ``Unknown``, ``*``). Optional extras are read with
    ``.get()``: ``group``, ``gid``, ``alloc_sid``, ``array_max_tasks``,
    ``max_nodes``, ``mem_per_cpu_mb``, ``alloc_mem_mb``, ``req_nodes``, ``exc_nodes``,
    ``mail_user``, ``mail_type``, ``accrue_time``, ``last_sched_eval``,
    ``tres_per_node``, ``tres_per_job``.
    """
    state = job.get("state", "PENDING")
    first = f"JobId={job.get('job_id')} "
    if job.get("array_job_id") is not None:
        if job.get("array_task_str"):
            first += f"ArrayJobId={job.get('array_job_id')} ArrayTaskId={job.get('array_task_str')} "
        else:
            first += f"ArrayJobId={job.get('array_job_id')} ArrayTaskId={job.get('array_task_id')} "
        throttle = job.get("array_max_tasks")
        if throttle is None and "%" in (job.get("array_task_str") or ""):
            throttle = int(str(job.get("array_task_str")).rsplit("%", 1)[1] or 0)
        if throttle:
            first += f"ArrayTaskThrottle={throttle} "
    first += f"JobName={job.get('name', '')}"
    user, uid = job.get("user", ""), job.get("uid", 0)
    gid = job.get("gid", uid)
    lines = [
        first,
        f"UserId={user}({uid}) GroupId={job.get('group') or user}({gid}) MCS_label=N/A",
        f"Priority={job.get('priority') or 0} Nice={job.get('nice') or 0} "
        f"Account={null_str(job.get('account'))} QOS={null_str(job.get('qos'))}",
        f"JobState={state} Reason={str(job.get('reason') or 'None').replace(' ', '_')} "
        f"Dependency={null_str(job.get('dependency'))}",
        f"Requeue={int(job.get('requeue', True))} Restarts={job.get('restart_count') or 0} "
        f"BatchFlag={0 if job.get('batch_flag') is False else 1} Reboot=0 ExitCode={job.get('exit_code') or 0}:{job.get('exit_signal') or 0}",
        f"RunTime={format_hms(run_time(job, now))} "
        f"TimeLimit={format_limit_hms(job.get('time_limit'))} TimeMin=N/A",
        f"SubmitTime={format_datetime(job.get('submit_time'))} "
        f"EligibleTime={format_datetime(job.get('eligible_time'))}",
        f"AccrueTime={format_datetime(job.get('accrue_time', job.get('eligible_time')))}",
    ]
    end = end_time(job, now)
    end_text = "Unknown" if job.get("time_limit") is None and end and end > now else format_datetime(end)
    lines.append(f"StartTime={format_datetime(start_time(job))} EndTime={end_text} Deadline=N/A")
    sched_eval = job.get("last_sched_eval") or job.get("start_time") or job.get("submit_time")
    pre = job.get("pre_sus_time")
    since = job.get("suspend_time")
    lines.append(f"SuspendTime={format_datetime(since) if since else 'None'} "
                 f"SecsPreSuspend={int(pre or 0)} LastSchedEval={format_datetime(sched_eval)} "
                 "Scheduler=Main")
    lines.append(f"Partition={job.get('partition', '')} "
                 f"AllocNode:Sid={job.get('submit_host', '')}:{job.get('alloc_sid', 0)}")
    lines.append(f"ReqNodeList={null_str(compress(list(job.get('req_nodes') or [])))} "
                 f"ExcNodeList={null_str(compress(list(job.get('exc_nodes') or [])))}")
    lines.append(f"NodeList={compress(sorted(job.get('nodes') or []))}")
    if job.get("batch_host"):
        lines.append(f"BatchHost={job.get('batch_host')}")
    num_nodes = job.get("num_nodes") or max(1, len(job.get("nodes") or []))
    nodes_text = str(num_nodes)
    if state in PENDING_LIKE and job.get("max_nodes"):
        nodes_text = f"{min(num_nodes, job['max_nodes'])}-{job['max_nodes']}"  # type: ignore[typeddict-item]
    lines.append(f"NumNodes={nodes_text} NumCPUs={job.get('cpus', 1)} NumTasks={job.get('num_tasks') or 1} "
                 f"CPUs/Task={job.get('cpus_per_task') or 1} ReqB:S:C:T=0:0:*:*")
    lines.append(f"TRES={_job_tres(job)}")
    lines.append("Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*")
    if job.get("mem_per_cpu_mb"):
        mem_text = f"MinMemoryCPU={_mem(int(job['mem_per_cpu_mb']))}"  # type: ignore[typeddict-item]
    else:
        mem_text = f"MinMemoryNode={_mem(job.get('mem_mb') or 0)}"
    lines.append(f"MinCPUsNode={job.get('cpus_per_task') or 1} {mem_text} MinTmpDiskNode=0")
    lines.append(f"Features={null_str(job.get('features'))} DelayBoot=00:00:00")
    lines.append(f"OverSubscribe={'NO' if job.get('exclusive') else 'OK'} Contiguous=0 "
                 "Licenses=(null) Network=(null)")
    lines.append(f"Command={null_str(job.get('command'))}")
    lines.append(f"WorkDir={job.get('workdir', '')}")
    if job.get("comment"):
        lines.append(f"Comment={job.get('comment')} ")
    lines.append(f"StdErr={_std_path(job, 'stderr')}")
    lines.append(f"StdIn={job.get('stdin') or '/dev/null'}")
    lines.append(f"StdOut={_std_path(job, 'stdout')}")
    lines.append("Power=")
    if job.get("tres_per_job"):
        lines.append(f"TresPerJob={job.get('tres_per_job')}")
    tres_per_node = job.get("tres_per_node")
    if tres_per_node is None and job.get("gpus") and not job.get("tres_per_job"):
        tres_per_node = f"gres:gpu:{int(job['gpus']) // max(1, num_nodes)}"  # type: ignore[typeddict-item]
    if tres_per_node:
        lines.append(f"TresPerNode={tres_per_node}")
    if job.get("mail_type") and job.get("mail_user"):
        lines.append(f"MailUser={job.get('mail_user')} MailType={job.get('mail_type')}")
    lines.append("")
    return _record(lines, one_liner) + ("\n" if one_liner else "\n\n")


# ---------------------------------------------------------------- nodes

_NODE_STATES = {
    "idle": "IDLE", "mix": "MIXED", "alloc": "ALLOCATED", "down": "DOWN",
    "drain": "IDLE+DRAIN", "comp": "ALLOCATED+COMPLETING", "unk": "UNKNOWN",
    "fail": "DOWN+FAIL", "futr": "FUTURE", "resv": "IDLE+RESERVED", "maint": "IDLE+MAINTENANCE",
}


def _node_state(node: NodeRecord) -> str:
    """node_state_string_complete: IDLE, MIXED+DRAIN, DOWN+NOT_RESPONDING, ..."""
    state = str(node.get("state", "unk")).lower().rstrip("*")
    if state == "drng":
        text = "ALLOCATED+DRAIN" if node.get("alloc_cpus", 0) >= node.get("cpus", 0) else "MIXED+DRAIN"
    else:
        text = _NODE_STATES.get(state, state.upper())
    if node.get("responding") is False or str(node.get("state", "")).endswith("*"):
        text += "+NOT_RESPONDING"
    return text


def gpu_usage_line(gpus: list) -> str:
    """fleetslurm's own line in ``scontrol show node`` (SLURM has none): each
    GPU's utilization and memory used/total as nvidia-smi last reported
    them, by its index (the id CUDA_VISIBLE_DEVICES names)::

        GpuUtil=0:37%,1:0% GpuMem=0:1200M/15G,1:0M/15G
    """
    util = ",".join(f"{g.get('index')}:{g.get('util')}%" for g in gpus)
    mem = ",".join(f"{g.get('index')}:{g.get('mem_used_mb') or 0}M/"
                   f"{_mem(int(g.get('mem_total_mb') or 0))}" for g in gpus)
    return f"GpuUtil={util} GpuMem={mem}"


def show_node(node: NodeRecord, now: float, *, one_liner: bool = False) -> str:
    """One node as ``scontrol show node`` prints it.

    Extras read with ``.get()`` when present: ``version``, ``slurmd_start_time``,
    ``last_busy_time``, ``reason_user``, ``reason_time``, ``sockets``,
    ``responding``.
    """
    cpus, gpus = node.get("cpus", 0), node.get("gpus") or 0
    head = f"NodeName={node.get('name')} "
    if node.get("arch"):
        head += f"Arch={node.get('arch')} "
    lines = [head + "CoresPerSocket=1 "]
    load = node.get("cpu_load")
    lines.append(f"CPUAlloc={node.get('alloc_cpus', 0)} CPUEfctv={cpus} CPUTot={cpus} "
                 f"CPULoad={'N/A' if load is None else '%.2f' % load}")
    lines.append(f"AvailableFeatures={features(node)}")
    lines.append(f"ActiveFeatures={features(node)}")
    lines.append(f"Gres={'gpu:%d' % gpus if gpus else '(null)'}")
    if node.get("gpu_usage"):
        lines.append(gpu_usage_line(node.get("gpu_usage") or []))
    host = node.get("hostname") or node.get("name")
    addr = f"NodeAddr={host} NodeHostName={host} "
    lines.append(addr + (f"Version={node.get('version')}" if node.get("version") else ""))
    if node.get("os"):
        lines.append(f"OS={node.get('os')} ")
    free = node.get("free_mem_mb")
    lines.append(f"RealMemory={node.get('mem_mb', 0)} AllocMem={node.get('alloc_mem_mb', 0)} "
                 f"FreeMem={'N/A' if free is None else free} Sockets={node.get('sockets') or cpus} Boards=1")
    lines.append(f"State={_node_state(node)} ThreadsPerCore=1 TmpDisk=0 Weight={node.get('weight') or 1} "
                 "Owner=N/A MCS_label=N/A")
    if node.get("partitions"):
        lines.append(f"Partitions={','.join(node.get('partitions') or [])} ")
    boot = format_datetime(node.get("boot_time")) if node.get("boot_time") else "None"
    started = node.get("slurmd_start_time")
    lines.append(f"BootTime={boot} SlurmdStartTime={format_datetime(started) if started else 'None'}")
    lines.append(f"LastBusyTime={format_datetime(node.get('last_busy_time'))}")
    cfg = [f"cpu={cpus}", f"mem={_mem(node.get('mem_mb', 0))}", f"billing={cpus}"]
    if gpus:
        cfg.append(f"gres/gpu={gpus}")
    lines.append("CfgTRES=" + ",".join(cfg))
    alloc = []
    if node.get("alloc_cpus"):
        alloc.append(f"cpu={node.get('alloc_cpus')}")
    if node.get("alloc_mem_mb"):
        alloc.append(f"mem={_mem(node.get('alloc_mem_mb', 0))}")
    if node.get("alloc_gpus"):
        alloc.append(f"gres/gpu={node.get('alloc_gpus')}")
    lines.append("AllocTRES=" + ",".join(alloc))
    lines.append("CapWatts=n/a")
    lines.append("CurrentWatts=0 AveWatts=0")
    lines.append("ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s")
    reason = node.get("reason")
    if reason:
        for i, part in enumerate(str(reason).split("\n")):
            if i == 0:
                text = f"Reason={part}"
                if node.get("reason_time"):
                    when = format_datetime(node.get("reason_time"))
                    text += f" [{node.get('reason_user') or 'root'}@{when}]"
                lines.append(text)
            else:
                lines.append("       " + part)
    return _record(lines, one_liner) + ("\n" if one_liner else "\n\n")


# ---------------------------------------------------------------- partitions

def show_partition(part: PartitionRecord, *, nodes: Optional[list[NodeRecord]] = None,
                   one_liner: bool = False) -> str:
    """One partition as ``scontrol show partition`` prints it.

    ``nodes`` (the node records) give TotalCPUs and TRES; without them the
    CPU and memory totals are 0.
    """
    names = list(part.get("nodes") or [])
    members = [n for n in (nodes or []) if n.get("name") in set(names)]
    cpus = sum(n.get("cpus", 0) for n in members)
    mem = sum(n.get("mem_mb", 0) for n in members)
    gpus = sum(n.get("gpus") or 0 for n in members)
    default_time = part.get("default_time")
    max_time = part.get("max_time")
    state = str(part.get("state", "up")).upper()
    tres = [f"cpu={cpus}", f"mem={_mem(mem)}", f"node={len(names)}", f"billing={cpus}"]
    if gpus:
        tres.append(f"gres/gpu={gpus}")
    lines = [
        f"PartitionName={part.get('name')}",
        " ".join(f"{k}={','.join(part.get(f) or []) or 'ALL'}" for k, f in (
            ("AllowGroups", "allow_groups"), ("AllowAccounts", "allow_accounts"),
            ("AllowQos", "allow_qos"))),
        f"AllocNodes=ALL Default={'YES' if part.get('default') else 'NO'} QoS=N/A",
        f"DefaultTime={'NONE' if default_time is None else format_limit_hms(default_time)} "
        "DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO",
        f"MaxNodes=UNLIMITED MaxTime={format_limit_hms(max_time)} MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED",
        f"Nodes={compress(names) or '(null)'}",
        f"PriorityJobFactor={part.get('priority', 1)} "
        f"PriorityTier={part.get('priority_tier', part.get('priority', 1))} "
        "RootOnly=NO ReqResv=NO OverSubscribe=NO",
        "OverTimeLimit=NONE PreemptMode=OFF",
        f"State={state} TotalCPUs={cpus} TotalNodes={len(names)} SelectTypeParameters=NONE",
        "JobDefaults=(null)",
        "DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED",
        "TRES=" + ",".join(tres),
    ]
    return _record(lines, one_liner) + ("\n" if one_liner else "\n\n")


# ---------------------------------------------------------------- config

def show_config(items: list[tuple[str, str]], *, now: Optional[float] = None,
                footer: Sequence[str] = ()) -> str:
    """``scontrol show config``: a ``Configuration data as of`` line (when
    ``now`` is given), one ``%-23s = %s`` line per item in the given order,
    then, if ``footer`` lines are given (``Slurmctld(primary) at host is UP``),
    a blank line and those lines.
    """
    out = []
    if now is not None:
        out.append(f"Configuration data as of {format_datetime(now)}")
    out.extend("%-23s = %s" % (key, value) for key, value in items)
    if footer:
        out.append("")
        out.extend(footer)
    return "".join(line + "\n" for line in out)

"""sacct's ``-o/--format`` fields, job/step rows and output, as SLURM 22.05.

Pure: no I/O, no clock. Field table (names, order, default widths) is
SLURM 22.05's ``fields[]`` from ``src/sacct/sacct.c`` as ``sacct --helpformat``
and ``sacct -o ALL`` print it; parsing follows ``src/sacct/options.c``;
cells follow ``src/common/print_fields.c``. Checked against a real sacct
22.05 reading a private slurmdbd (see tests/test_formats_sacct.py).

Parsing quirks kept on purpose:

* a field is chosen by case-insensitive *prefix*, first match in table
  order (``j`` is JobID, ``alloc`` AllocCPUS); ``a``, ``al``, ``all`` and an
  empty name (``%20``) mean ALL fields;
* ``name%N`` sets the width: positive right-aligns, negative left-aligns;
  the width belongs to the table entry, so the last ``%N`` given for a field
  applies to every occurrence of it;
* leading blanks are skipped, trailing ones are not (``"jobid "`` is invalid);
* an empty entry (``jobid,,state``) ends the list there.

Cells (fixed mode): each cell then one space; text longer than the width is
cut with ``+`` as its last character; numbers and durations are never cut;
dates are cut without ``+``; an unset value prints blanks. ``parsable``:
``|`` after every field; ``parsable2``: ``|`` between fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from fleetslurm.errors import UsageError
from fleetslurm.model import JobRecord
from fleetslurm.slurm.fmt_common import convert_whole, job_id
from fleetslurm.slurm.hostlist import compress
from fleetslurm.slurm.units import format_cpu_parts, format_datetime, format_hms, format_limit_hms

__all__ = ["DEFAULT_FIELDS", "FIELD_NAMES", "Field", "parse_fields", "rows_for", "render",
           "tres_text", "gpu_usage_fields"]

DEFAULT_FIELDS = "JobID,JobName,Partition,Account,AllocCPUS,State,ExitCode"

# name:width[:kind]  kind: s string (default), u number, d date, t duration
_TABLE = """
Account:10 AdminComment:15 AllocCPUS:10:u AllocNodes:10 AllocTRES:10 AssocID:7:u AveCPU:10
AveCPUFreq:10 AveDiskRead:14 AveDiskWrite:14 AvePages:10 AveRSS:10 AveVMSize:10 BlockID:16
Cluster:10 Comment:14 Constraints:19 ConsumedEnergy:14 ConsumedEnergyRaw:17:u Container:19
CPUTime:10:t CPUTimeRAW:10:u DBIndex:-10:u DerivedExitCode:15 Elapsed:10:t ElapsedRaw:10:u
Eligible:19:d End:19:d ExitCode:8 Flags:19 GID:6:u Group:9 JobID:-12 JobIDRaw:-12 JobName:10
Layout:9 MaxDiskRead:12 MaxDiskReadNode:15 MaxDiskReadTask:15:u MaxDiskWrite:12
MaxDiskWriteNode:16 MaxDiskWriteTask:16:u MaxPages:8 MaxPagesNode:12 MaxPagesTask:14:u MaxRSS:10
MaxRSSNode:10 MaxRSSTask:10:u MaxVMSize:10 MaxVMSizeNode:14 MaxVMSizeTask:14:u McsLabel:12
MinCPU:10 MinCPUNode:10 MinCPUTask:10:u NCPUS:10:u NNodes:8:u NodeList:15 NTasks:8:u
Partition:10 Priority:10:u QOS:10 QOSRAW:6:u Reason:22 ReqCPUFreq:10 ReqCPUFreqGov:13
ReqCPUFreqMax:13 ReqCPUFreqMin:13 ReqCPUS:8:u ReqMem:10 ReqNodes:8 ReqTRES:10 Reservation:20
ReservationId:8:u Reserved:10:t ResvCPU:10:t ResvCPURAW:10:u Start:19:d State:10 Submit:19:d
SubmitLine:20 Suspended:10:t SystemComment:15 SystemCPU:10 Timelimit:10 TimelimitRaw:10
TotalCPU:10 TRESUsageInAve:14 TRESUsageInMax:14 TRESUsageInMaxNode:18 TRESUsageInMaxTask:18
TRESUsageInMin:14 TRESUsageInMinNode:18 TRESUsageInMinTask:18 TRESUsageInTot:14
TRESUsageOutAve:15 TRESUsageOutMax:15 TRESUsageOutMaxNode:19 TRESUsageOutMaxTask:19
TRESUsageOutMin:15 TRESUsageOutMinNode:19 TRESUsageOutMinTask:19 TRESUsageOutTot:15 UID:6:u
User:9 UserCPU:10 WCKey:10 WCKeyID:10:u WorkDir:20
"""


def _load_table() -> list[tuple[str, int, str]]:
    out = []
    for entry in _TABLE.split():
        name, width, *kind = entry.split(":")
        out.append((name, int(width), kind[0] if kind else "s"))
    return out


_FIELDS = _load_table()
#: every field name sacct 22.05 knows, in its table order (``--helpformat``)
FIELD_NAMES = [name for name, _, _ in _FIELDS]


@dataclass(frozen=True)
class Field:
    """A column: canonical ``name``, ``width`` (negative = left-aligned) and
    ``kind`` (``s`` text, ``u`` number, ``d`` date, ``t`` duration)."""

    name: str
    width: int
    kind: str = "s"


def parse_fields(spec: str) -> list[Field]:
    """Parse a ``--format`` list exactly as sacct 22.05 does.

    Raises :class:`~fleetslurm.errors.UsageError` (``prog="sacct"``) with
    SLURM's text, e.g. ``Invalid field requested: "Foo"``.
    """
    chosen: list[int] = []
    widths: dict[int, int] = {}
    for raw in (spec + ",").split(",")[:-1]:
        entry = raw.lstrip()
        if not entry:
            break  # sacct's loop stops at an empty entry
        name, pct, rest = entry.partition("%")
        new_width = _atoi(rest) if pct else None
        if name.lower() == "all"[:len(name)]:
            for i in range(len(_FIELDS)):
                chosen.append(i)
                if new_width is not None:
                    widths[i] = new_width
            continue
        low = name.lower()
        index = next((i for i, (n, _, _) in enumerate(_FIELDS) if n.lower().startswith(low)), None)
        if index is None:
            if low in ("allocgres", "reqgres"):
                kept = "AllocTRES" if low == "allocgres" else "ReqTRES"
                gone = "AllocGRES" if low == "allocgres" else "ReqGRES"
                raise UsageError(f"{gone} has been removed, please use {kept}", prog="sacct")
            raise UsageError(f'Invalid field requested: "{name}"', prog="sacct")
        chosen.append(index)
        if new_width is not None:
            widths[index] = new_width
    return [Field(_FIELDS[i][0], widths.get(i, _FIELDS[i][1]), _FIELDS[i][2]) for i in chosen]


def _atoi(text: str) -> int:
    """C atoi: optional blanks and sign, then digits; anything else stops it."""
    text = text.lstrip()
    sign, i = 1, 0
    if text[:1] in "+-" and text:
        sign, i = (-1 if text[0] == "-" else 1), 1
    digits = ""
    while i < len(text) and text[i].isdigit():
        digits += text[i]
        i += 1
    return sign * int(digits) if digits else 0


# ---------------------------------------------------------------- values

def _cpu_time(seconds: Optional[float]) -> str:
    """TotalCPU etc. from float seconds, rounded to the millisecond.

    Not :func:`~fleetslurm.slurm.units.format_cpu_time`, which drops (does not
    round) sub-millisecond digits, clamps negatives to 0 and refuses ``None``.
    """
    secs, msec = divmod(int(round((seconds or 0) * 1000)), 1000)
    return format_cpu_parts(secs, msec)


_KILLED = ("CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "DEADLINE", "BOOT_FAIL")
_STEP_STATE = {"TIMEOUT": "CANCELLED", "PREEMPTED": "CANCELLED", "COMPLETING": "RUNNING",
               "REQUEUED": "CANCELLED", "DEADLINE": "CANCELLED"}


def _tres_mem(job: JobRecord, cpus: int, num_nodes: int) -> int:
    """The job's memory as its TRES count (MB), by scontrol's rule: what it
    was given, else what it asked for (0: none reserved, no ``mem=``)."""
    if job.get("alloc_mem_mb"):
        return int(job["alloc_mem_mb"])  # type: ignore[typeddict-item]
    if job.get("mem_per_cpu_mb"):
        return int(job["mem_per_cpu_mb"]) * cpus  # type: ignore[typeddict-item]
    return int(job.get("mem_mb") or 0) * num_nodes


def tres_text(cpus: int, mem_mb: int, nodes: int, gpus: int = 0, *,
              billing: bool = True) -> str:
    """A TRES string as sacct prints it: ``name=count`` sorted by name
    (slurmdb_make_tres_string_from_simple collects them in a list that
    slurm_char_list_to_xstr sorts), memory in exact units (``mem=100M``,
    ``mem=16G``). Jobs carry ``billing`` (= CPUs, no TRESBillingWeights);
    steps do not."""
    counts = {"cpu": str(cpus), "node": str(nodes)}
    if billing:
        counts["billing"] = str(cpus)
    if mem_mb:
        counts["mem"] = convert_whole(mem_mb, "MGTPE")
    if gpus:
        counts["gres/gpu"] = str(gpus)
    return ",".join(f"{name}={counts[name]}" for name in sorted(counts))


def _account(job: JobRecord) -> Optional[str]:
    """The job's account: as given, else its user's default account (what
    SLURM with an accounting database fills in; fleetslurm's is the user's
    own, see slurm.assoc)."""
    from fleetslurm.slurm.assoc import account_of

    user = job.get("user") or ""
    return job.get("account") or (account_of(user) if user else None)


def _elapsed(job: JobRecord, now: Optional[float]) -> int:
    start, end = job.get("start_time"), job.get("end_time")
    if not start:
        return 0
    if not end:
        end = now if now is not None else start
    return max(0, int(end - start))


def rows_for(job: JobRecord, *, allocations_only: bool,
             now: Optional[float] = None) -> list[dict]:
    """The rows sacct shows for one job: the allocation, then (unless
    ``allocations_only``, i.e. ``-X``) a ``.batch`` step once the job started.

    Rows map lower-case field names to text; a missing key or ``None`` is an
    unset value (blank). ``now`` is needed for a running job's Elapsed.
    Optional extras read with ``.get()``: ``group``, ``gid``, ``req_mem_mb``,
    ``mem_per_cpu_mb``, ``alloc_mem_mb``, ``cluster``.
    """
    state = job.get("state", "PENDING")
    nodes = list(job.get("nodes") or [])
    cpus = job.get("cpus", 1)
    num_nodes = job.get("num_nodes") or max(1, len(nodes))
    elapsed = _elapsed(job, now)
    code, sig = job.get("exit_code") or 0, job.get("exit_signal") or 0
    shown_state = state
    if state == "CANCELLED" and job.get("cancelled_by") is not None:
        shown_state = f"CANCELLED by {job.get('cancelled_by')}"
    if job.get("req_mem_mb") is not None:
        req_mem = int(job["req_mem_mb"])  # type: ignore[typeddict-item]
    elif job.get("mem_per_cpu_mb"):
        req_mem = int(job["mem_per_cpu_mb"]) * cpus  # type: ignore[typeddict-item]
    elif job.get("mem_mb"):
        req_mem = int(job.get("mem_mb") or 0) * num_nodes
    else:
        # no --mem: SLURM requests (and shows) the node's whole RealMemory
        req_mem = int(job.get("alloc_mem_mb") or 0)  # type: ignore[call-overload]
    limit = job.get("time_limit")
    cluster = job.get("cluster")
    gpus = int(job.get("gpus") or 0)
    tres_mem = _tres_mem(job, cpus, num_nodes)
    started = bool(job.get("start_time")) and state not in ("PENDING", "REQUEUE_HOLD")
    base = {
        "jobid": job_id(job), "jobidraw": str(job.get("job_id", "")),
        "jobname": job.get("name", ""), "partition": job.get("partition") or None,
        "account": _account(job), "alloccpus": str(cpus), "ncpus": str(cpus),
        # a job's TRES: asked for (as SLURM keeps it, also once it ran), and
        # given (only once it started)
        "reqtres": tres_text(cpus, tres_mem, num_nodes, gpus),
        "alloctres": tres_text(cpus, tres_mem, num_nodes, gpus) if started else None,
        "state": shown_state, "exitcode": "0:0" if state in _KILLED else f"{code}:{sig}",
        "derivedexitcode": f"{job.get('derived_exit_code') or 0}:0",
        "nodelist": compress(nodes) if nodes else "None assigned",
        "elapsed": format_hms(elapsed), "elapsedraw": str(elapsed),
        "cputime": format_hms(elapsed * cpus), "cputimeraw": str(elapsed * cpus),
        "start": format_datetime(job.get("start_time")),
        "end": format_datetime(job.get("end_time")),
        "submit": format_datetime(job.get("submit_time")),
        "eligible": format_datetime(job.get("eligible_time")),
        "totalcpu": _cpu_time(job.get("total_cpu")), "usercpu": _cpu_time(job.get("user_cpu")),
        "systemcpu": _cpu_time(job.get("system_cpu")), "nnodes": str(num_nodes),
        "reqcpus": str(cpus), "reqnodes": str(num_nodes), "allocnodes": str(len(nodes)),
        "reqmem": convert_whole(req_mem, "MGTPE"), "reason": job.get("reason") or "None",
        "comment": job.get("comment") or None, "user": job.get("user") or None,
        "uid": str(job.get("uid", 0)), "gid": str(job.get("gid", job.get("uid", 0))),
        "group": job.get("group") or job.get("user") or None,
        "timelimit": format_limit_hms(limit),
        "timelimitraw": "UNLIMITED" if limit is None else str(limit),
        "priority": str(job.get("priority") or 0), "qos": job.get("qos") or None,
        "workdir": job.get("workdir") or None, "constraints": job.get("features") or None,
        "wckey": job.get("wckey") or None, "cluster": cluster,
        "suspended": format_hms(int(job.get("suspended_s") or 0)),
    }
    rows = [base]
    if allocations_only or not job.get("start_time") or state in ("PENDING", "REQUEUE_HOLD"):
        return rows
    if job.get("batch_flag") is False:
        # a job srun made has no batch step, only its srun step(s)
        return rows + step_rows(job, base, now)
    step_cpus = cpus // num_nodes if num_nodes > 1 else cpus
    step_state = _STEP_STATE.get(state, state)
    if state in _KILLED and state != "NODE_FAIL":
        step_exit = f"0:{sig or 15}"
    else:
        step_exit = f"{code}:{sig}"
    rss = job.get("max_rss_kb")
    rows.append({
        "jobid": base["jobid"] + ".batch", "jobidraw": base["jobidraw"] + ".batch",
        "jobname": "batch", "account": base["account"], "alloccpus": str(step_cpus),
        "ncpus": str(step_cpus), "state": step_state, "exitcode": step_exit,
        "nodelist": job.get("batch_host") or (nodes[0] if nodes else "None assigned"),
        "elapsed": base["elapsed"], "elapsedraw": base["elapsedraw"],
        "cputime": format_hms(elapsed * step_cpus), "cputimeraw": str(elapsed * step_cpus),
        "start": base["start"], "end": base["end"], "submit": base["start"],
        "eligible": base["start"], "totalcpu": base["totalcpu"], "usercpu": base["usercpu"],
        "systemcpu": base["systemcpu"], "nnodes": "1", "ntasks": "1", "reqcpus": str(step_cpus),
        "reqnodes": "1", "allocnodes": "1", "cluster": cluster, "suspended": "00:00:00",
        "maxrss": None if rss is None else convert_whole(int(rss) * 1024, "_KMGTPE"),
        # a step's TRES: no billing, nothing "requested" (ReqTRES is the job's only)
        "alloctres": tres_text(step_cpus, tres_mem, 1, billing=False),
        **gpu_usage_fields(job.get("gpu_usage"),
                           job.get("batch_host") or (nodes[0] if nodes else "")),
    })
    return rows + step_rows(job, base, now)


def gpu_usage_fields(usage: Optional[dict], node: str) -> dict:
    """The batch step's TRESUsageIn* items for its GPUs, in SLURM 23.02's
    names (22.05 has no GPU usage TRES): ``gres/gpuutil`` in percent summed
    over the job's GPUs, ``gres/gpumem`` in bytes as sacct converts them
    (``1200M``). fleetslurm's Ave is the mean over the heartbeats' readings
    of the job's GPUs, Max their peak (one task: SLURM's Ave/Max across
    tasks would be the same figures)."""
    if not usage:
        return {}

    def items(mem_mb: int, util: object) -> str:
        return f"gres/gpumem={convert_whole(int(mem_mb) << 20, '_KMGTPE')},gres/gpuutil={util}"

    return {"tresusageinave": items(usage["mem_ave_mb"], usage["util_ave"]),
            "tresusageinmax": items(usage["mem_max_mb"], usage["util_max"]),
            "tresusageinmaxnode": f"gres/gpumem={node},gres/gpuutil={node}",
            "tresusageinmaxtask": "gres/gpumem=0,gres/gpuutil=0"}


def step_rows(job: JobRecord, base: dict, now: Optional[float]) -> list[dict]:
    """One row per srun step (``N.0``, ``N.1``...) from ``job["job_steps"]``."""
    rows = []
    for st in job.get("job_steps") or []:
        start, end = st.get("start_time"), st.get("end_time")
        elapsed = max(0, int((end if end else (now if now is not None else start or 0))
                             - (start or 0))) if start else 0
        cpus = int(st.get("cpus") or 1)
        state = st.get("state") or "RUNNING"
        rss = st.get("max_rss_kb")
        user_cpu, sys_cpu = st.get("user_cpu"), st.get("system_cpu")
        total = None if user_cpu is None else (user_cpu or 0) + (sys_cpu or 0)
        sid = f".{st.get('step_id')}"
        mem = _tres_mem(job, int(job.get("cpus") or 1), 1)
        rows.append({
            "jobid": base["jobid"] + sid, "jobidraw": base["jobidraw"] + sid,
            "jobname": st.get("name") or "", "account": base["account"],
            "alloccpus": str(cpus), "ncpus": str(cpus), "state": state,
            "exitcode": "0:0" if state == "RUNNING" else
            f"{st.get('exit_code') or 0}:{st.get('exit_signal') or 0}",
            "nodelist": st.get("node") or "None assigned",
            "elapsed": format_hms(elapsed), "elapsedraw": str(elapsed),
            "cputime": format_hms(elapsed * cpus), "cputimeraw": str(elapsed * cpus),
            "start": format_datetime(start), "end": format_datetime(end),
            "submit": format_datetime(start), "eligible": format_datetime(start),
            "totalcpu": _cpu_time(total), "usercpu": _cpu_time(user_cpu),
            "systemcpu": _cpu_time(sys_cpu), "nnodes": "1", "ntasks": str(st.get("ntasks") or 1),
            "reqcpus": str(cpus), "reqnodes": "1", "allocnodes": "1",
            "cluster": base["cluster"], "suspended": "00:00:00", "user": None,
            "maxrss": None if rss is None else convert_whole(int(rss) * 1024, "_KMGTPE"),
            "alloctres": tres_text(cpus, mem, 1, billing=False),
        })
    return rows


# ---------------------------------------------------------------- output

def _cell(f: Field, value: Optional[str]) -> str:
    width = abs(f.width)
    left = f.width < 0
    if value is None:
        return " " * width + " "
    if f.kind in ("u", "t"):
        text = value
    elif f.kind == "d":
        text = value[:width]
    elif len(value) > width:
        text = value[:width - 1] + "+" if width else ""
    else:
        text = value
    return (text.ljust(width) if left else text.rjust(width)) + " "


def render(fields: list[Field], rows: list[dict], *,
           mode: Literal["fixed", "parsable", "parsable2"] = "fixed", header: bool = True) -> str:
    """sacct's output: header (and, in fixed mode, the dash line) then rows.

    ``rows`` as :func:`rows_for` builds them. Every line ends with a newline.
    """
    lines: list[str] = []
    if mode == "fixed":
        if header:
            lines.append("".join(
                (f.name[:abs(f.width)].ljust(abs(f.width)) if f.width < 0
                 else f.name[:abs(f.width)].rjust(abs(f.width))) + " " for f in fields))
            lines.append("".join("-" * abs(f.width) + " " for f in fields))
        for row in rows:
            lines.append("".join(_cell(f, row.get(f.name.lower())) for f in fields))
    else:
        def join(cells: list[str]) -> str:
            return "|".join(cells) + ("|" if mode == "parsable" and cells else "")
        if header:
            lines.append(join([f.name for f in fields]))
        for row in rows:
            values = [row.get(f.name.lower()) for f in fields]
            lines.append(join(["" if v is None else v for v in values]))
    return "".join(line + "\n" for line in lines)

"""sstat's fields and rows, as SLURM 22.05's sstat prints them (src/sstat:
its field table, sacct's print_fields). Pure functions: the rows come from
a run's latest resource sample and peaks (``node/agent/sampling.py``)."""

from __future__ import annotations

from typing import Any, Optional

from ..errors import UsageError
from .sacct_fmt import Field, _atoi
from .units import format_cpu_parts, format_rss_kb

__all__ = ["FIELD_NAMES", "DEFAULT_FIELDS", "parse_fields", "step_row"]

#: sstat's own table, in its order (a prefix picks the first that matches):
#: name:width (negative: left-aligned)
_TABLE = """
AveCPU:10 AveCPUFreq:10 AveDiskRead:12 AveDiskWrite:12 AvePages:10 AveRSS:10 AveVMSize:10
ConsumedEnergy:14 ConsumedEnergyRaw:17 JobID:-12 MaxDiskRead:12 MaxDiskReadNode:15
MaxDiskReadTask:15 MaxDiskWrite:12 MaxDiskWriteNode:16 MaxDiskWriteTask:16 MaxPages:8
MaxPagesNode:12 MaxPagesTask:14 MaxRSS:10 MaxRSSNode:10 MaxRSSTask:10 MaxVMSize:10
MaxVMSizeNode:14 MaxVMSizeTask:14 MinCPU:10 MinCPUNode:10 MinCPUTask:10 Nodelist:20 NTasks:8
Pids:20 ReqCPUFreq:10 ReqCPUFreqMin:13 ReqCPUFreqMax:13 ReqCPUFreqGov:13 TRESUsageInAve:14
TRESUsageInMax:14 TRESUsageInMaxNode:18 TRESUsageInMaxTask:18 TRESUsageInMin:14
TRESUsageInMinNode:18 TRESUsageInMinTask:18 TRESUsageInTot:14 TRESUsageOutAve:15
TRESUsageOutMax:15 TRESUsageOutMaxNode:19 TRESUsageOutMaxTask:19 TRESUsageOutMin:15
TRESUsageOutMinNode:19 TRESUsageOutMinTask:19 TRESUsageOutTot:15
"""
_FIELDS = [(w.split(":")[0], int(w.split(":")[1])) for w in _TABLE.split()]
FIELD_NAMES = [n for n, _ in _FIELDS]

#: what sstat prints without -o (SLURM 22.05's default, in its order)
DEFAULT_FIELDS = ("JobID,MaxVMSize,MaxVMSizeNode,MaxVMSizeTask,AveVMSize,MaxRSS,MaxRSSNode,"
                  "MaxRSSTask,AveRSS,MaxPages,MaxPagesNode,MaxPagesTask,AvePages,MinCPU,"
                  "MinCPUNode,MinCPUTask,AveCPU,NTasks,AveCPUFreq,ReqCPUFreqMin,ReqCPUFreqMax,"
                  "ReqCPUFreqGov,ConsumedEnergy,MaxDiskRead,MaxDiskReadNode,MaxDiskReadTask,"
                  "AveDiskRead,MaxDiskWrite,MaxDiskWriteNode,MaxDiskWriteTask,AveDiskWrite,"
                  "TRESUsageInAve,TRESUsageInMax,TRESUsageInMaxNode,TRESUsageInMaxTask,"
                  "TRESUsageInMin,TRESUsageInMinNode,TRESUsageInMinTask,TRESUsageInTot,"
                  "TRESUsageOutAve,TRESUsageOutMax,TRESUsageOutMaxNode,TRESUsageOutMaxTask,"
                  "TRESUsageOutMin,TRESUsageOutMinNode,TRESUsageOutMinTask,TRESUsageOutTot")


def parse_fields(spec: str) -> list[Field]:
    """A ``--format`` list as sstat takes it: names matched case-insensitively
    by prefix, ``%N`` a width (``%-N`` left-aligned). An unknown name is
    SLURM's ``Invalid field requested: "NAME"`` (UsageError)."""
    out: list[Field] = []
    for raw in (spec + ",").split(",")[:-1]:
        entry = raw.strip()
        if not entry:
            continue
        name, pct, rest = entry.partition("%")
        low = name.lower()
        found = next(((n, w) for n, w in _FIELDS if n.lower().startswith(low)), None) \
            if low else None
        if found is None:
            raise UsageError(f'error: Invalid field requested: "{name}"', prog="sstat")
        width = _atoi(rest) if pct else found[1]
        out.append(Field(found[0], width, "s"))
    return out


def _cpu(seconds: float) -> str:
    return format_cpu_parts(int(seconds), 0)


def _per_task(tasks: Any) -> list[tuple[int, float, int, int]]:
    """An srun step's tasks as (rank, CPU s, peak memory KiB, peak virtual
    KiB), by rank; [] when there are none (or they are malformed)."""
    out = []
    if isinstance(tasks, dict):
        for rank, v in tasks.items():
            try:
                out.append((int(rank), float(v[0]), int(max(v[1], v[3])), int(max(v[2], v[4]))))
            except (TypeError, ValueError, IndexError):
                return []
    return sorted(out)


def step_row(step_id: str, node: str, sample: Optional[list], max_rss_kb: Optional[int],
             max_vsize_kb: Optional[int], ntasks: int = 1, pids: str = "",
             convert: bool = True, tasks: Any = None) -> dict[str, str]:
    """One step's row (keys: field names in lower case). ``sample`` is the
    latest point [t, cpu_s, rss_kb, vsize_kb, nproc] (None: none yet, zeros
    as SLURM shows a step not yet gathered); the peaks are the step's. With
    ``tasks`` (an srun step's, rank -> [cpu_s, rss_kb, vsize_kb, max_rss_kb,
    max_vsize_kb]) the Max/Min/Ave figures are over its tasks, as SLURM's;
    without (the batch step) the step counts as one task."""
    per = _per_task(tasks)
    if not per:
        cpu = float(sample[1]) if sample else 0.0
        rss = max(int(max_rss_kb or 0), int(sample[2]) if sample else 0)
        vsize = max(int(max_vsize_kb or 0), int(sample[3]) if sample else 0)
        per = [(0, cpu, rss, vsize)]
    n = len(per)

    def mem(kb: float) -> str:
        return format_rss_kb(int(kb)) if convert else str(int(kb) * 1024)

    def extreme(column: int, pick: Any) -> tuple[int, Any]:
        best = pick(per, key=lambda t: (t[column], -t[0] if pick is max else t[0]))
        return best[0], best[column]

    max_cpu_task, max_cpu = extreme(1, max)
    min_cpu_task, min_cpu = extreme(1, min)
    max_rss_task, max_rss = extreme(2, max)
    min_rss_task, min_rss = extreme(2, min)
    max_vm_task, max_vm = extreme(3, max)
    min_vm_task, min_vm = extreme(3, min)
    tot_cpu, tot_rss, tot_vm = (sum(t[i] for t in per) for i in (1, 2, 3))
    ave_cpu, ave_rss, ave_vm = _cpu(tot_cpu / n), mem(tot_rss / n), mem(tot_vm / n)

    def tres(cpu: str, rss: str, vm: str) -> str:
        return f"cpu={cpu},energy=0,fs/disk=0,mem={rss},pages=0,vmem={vm}"

    def tres_task(cpu: int, rss: int, vm: int) -> str:
        # SLURM prints the CPU's task id as a time, as it prints CPU
        return f"cpu={_cpu(cpu)},fs/disk=0,mem={rss},pages=0,vmem={vm}"

    tres_nodes = ",".join(f"{k}={node}" for k in ("cpu", "energy", "fs/disk", "mem", "pages",
                                                 "vmem"))
    row: dict[str, Any] = {
        "jobid": step_id, "nodelist": node, "pids": pids, "ntasks": str(max(1, ntasks)),
        "maxvmsize": mem(max_vm), "maxvmsizenode": node, "maxvmsizetask": str(max_vm_task),
        "avevmsize": ave_vm, "maxrss": mem(max_rss), "maxrssnode": node,
        "maxrsstask": str(max_rss_task), "averss": ave_rss, "maxpages": "0",
        "maxpagesnode": node, "maxpagestask": "0", "avepages": "0", "mincpu": _cpu(min_cpu),
        "mincpunode": node, "mincputask": str(min_cpu_task), "avecpu": ave_cpu,
        "avecpufreq": "0", "reqcpufreq": "0", "reqcpufreqmin": "0", "reqcpufreqmax": "0",
        "reqcpufreqgov": "0", "consumedenergy": "0", "consumedenergyraw": "0",
        # disk I/O is not sampled: 0, as SLURM shows a step that did none
        "maxdiskread": "0", "maxdiskreadnode": node, "maxdiskreadtask": "0",
        "avediskread": "0", "maxdiskwrite": "0", "maxdiskwritenode": node,
        "maxdiskwritetask": "0", "avediskwrite": "0",
        "tresusageinave": tres(ave_cpu, ave_rss, ave_vm),
        "tresusageinmax": tres(_cpu(max_cpu), mem(max_rss), mem(max_vm)),
        "tresusageinmaxnode": tres_nodes,
        "tresusageinmaxtask": tres_task(max_cpu_task, max_rss_task, max_vm_task),
        "tresusageinmin": tres(_cpu(min_cpu), mem(min_rss), mem(min_vm)),
        "tresusageinminnode": tres_nodes,
        "tresusageinmintask": tres_task(min_cpu_task, min_rss_task, min_vm_task),
        "tresusageintot": tres(_cpu(tot_cpu), mem(tot_rss), mem(tot_vm)),
        "tresusageoutave": "energy=0,fs/disk=0", "tresusageoutmax": "energy=0,fs/disk=0",
        "tresusageoutmaxnode": f"energy={node},fs/disk={node}",
        "tresusageoutmaxtask": "fs/disk=0", "tresusageoutmin": "energy=0,fs/disk=0",
        "tresusageoutminnode": f"energy={node},fs/disk={node}",
        "tresusageoutmintask": "fs/disk=0", "tresusageouttot": "energy=0,fs/disk=0",
    }
    return row

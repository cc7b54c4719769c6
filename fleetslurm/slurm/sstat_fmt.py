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


def step_row(step_id: str, node: str, sample: Optional[list], max_rss_kb: Optional[int],
             max_vsize_kb: Optional[int], ntasks: int = 1, pids: str = "",
             convert: bool = True) -> dict[str, str]:
    """One step's row (keys: field names in lower case). ``sample`` is the
    latest point [t, cpu_s, rss_kb, vsize_kb, nproc] (None: none yet, zeros
    as SLURM shows a step not yet gathered); the peaks are the run's."""
    cpu = float(sample[1]) if sample else 0.0
    rss = max(int(max_rss_kb or 0), int(sample[2]) if sample else 0)
    vsize = max(int(max_vsize_kb or 0), int(sample[3]) if sample else 0)

    def mem(kb: int) -> str:
        return format_rss_kb(kb) if convert else str(kb * 1024)

    tasks = max(1, ntasks)
    ave_cpu, ave_rss, ave_vsize = _cpu(cpu / tasks), mem(rss // tasks), mem(vsize // tasks)
    tres_in = (f"cpu={ave_cpu},energy=0,fs/disk=0,mem={mem(rss)},pages=0,"
               f"vmem={mem(vsize)}")
    tres_nodes = ",".join(f"{k}={node}" for k in ("cpu", "energy", "fs/disk", "mem", "pages",
                                                 "vmem"))
    tres_task = "cpu=00:00:00,fs/disk=0,mem=0,pages=0,vmem=0"
    row: dict[str, Any] = {
        "jobid": step_id, "nodelist": node, "pids": pids, "ntasks": str(tasks),
        "maxvmsize": mem(vsize), "maxvmsizenode": node, "maxvmsizetask": "0",
        "avevmsize": ave_vsize, "maxrss": mem(rss), "maxrssnode": node, "maxrsstask": "0",
        "averss": ave_rss, "maxpages": "0", "maxpagesnode": node, "maxpagestask": "0",
        "avepages": "0", "mincpu": ave_cpu, "mincpunode": node, "mincputask": "0",
        "avecpu": ave_cpu, "avecpufreq": "0", "reqcpufreq": "0", "reqcpufreqmin": "0",
        "reqcpufreqmax": "0", "reqcpufreqgov": "0", "consumedenergy": "0",
        "consumedenergyraw": "0",
        # disk I/O is not sampled: 0, as SLURM shows a step that did none
        "maxdiskread": "0", "maxdiskreadnode": node, "maxdiskreadtask": "0",
        "avediskread": "0", "maxdiskwrite": "0", "maxdiskwritenode": node,
        "maxdiskwritetask": "0", "avediskwrite": "0",
        "tresusageinave": tres_in, "tresusageinmax": tres_in,
        "tresusageinmaxnode": tres_nodes, "tresusageinmaxtask": tres_task,
        "tresusageinmin": tres_in, "tresusageinminnode": tres_nodes,
        "tresusageinmintask": tres_task, "tresusageintot": tres_in,
        "tresusageoutave": "energy=0,fs/disk=0", "tresusageoutmax": "energy=0,fs/disk=0",
        "tresusageoutmaxnode": f"energy={node},fs/disk={node}",
        "tresusageoutmaxtask": "fs/disk=0", "tresusageoutmin": "energy=0,fs/disk=0",
        "tresusageoutminnode": f"energy={node},fs/disk={node}",
        "tresusageoutmintask": "fs/disk=0", "tresusageouttot": "energy=0,fs/disk=0",
    }
    return row

"""What the heartbeats' GPU readings (the agent's ``gpu_usage``, see
``node/agent/gpus.py``) give the controller: a machine's per-GPU
utilization and memory for its node record (sinfo, scontrol, the dashboard,
/metrics) and, for each job running there with GPUs, one sample of its GPUs
per reading, kept in its run's step row (sacct's TRESUsageInAve/Max).

A reading is counted once (its ``seq``), and only for runs that had
started when nvidia-smi took it. nvidia-smi's figures are per device: on a
GPU that fleetslurm gave to one job, they are that job's, plus whatever
the machine's owner runs on it outside fleetslurm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from .context import Context

__all__ = ["on_facts", "node_gpus"]


def node_gpus(facts: Optional[dict]) -> list[dict[str, Any]]:
    """The machine's latest per-GPU reading ({index, uuid, util, mem_used_mb,
    mem_total_mb}, by index), [] when it reports none."""
    usage = (facts or {}).get("gpu_usage")
    gpus = usage.get("gpus") if isinstance(usage, dict) else None
    if not isinstance(gpus, list):
        return []
    return sorted((g for g in gpus if _well_formed(g)), key=lambda g: g["index"])


def _well_formed(g: object) -> bool:
    """A GPU entry every reader may use as is (one that is not is left out,
    never a failed step or scrape)."""
    if not isinstance(g, dict) or not isinstance(g.get("uuid", ""), str):
        return False
    nums = [g.get(k) for k in ("index", "util", "mem_used_mb", "mem_total_mb")]
    return all(type(v) is int and v >= 0 for v in nums) and g["util"] <= 100


def on_facts(ctx: "Context", name: str, known: dict, msg: dict, now: float) -> None:
    """A heartbeat from ``name``: a new reading becomes a sample of each of
    its running GPU jobs; a heartbeat without one drops the old one from
    ``known`` (the facts kept for the machine), so no stale figure is shown."""
    usage = msg.get("gpu_usage")
    if not isinstance(usage, dict):
        known.pop("gpu_usage", None)
        return
    before = known.get("gpu_usage")
    if isinstance(before, dict) and before.get("seq") == usage.get("seq"):
        return
    gpus = {g["index"]: g for g in node_gpus(msg)}
    if not gpus:
        return
    try:
        taken = now - max(0.0, float(usage.get("age") or 0.0))
    except (TypeError, ValueError):
        taken = now
    for task in ctx.store.live_tasks_on(name):
        if task["state"] != "RUNNING" or not task["gpu_ids"] or not task["run_key"]:
            continue
        if task["start_time"] is not None and taken < task["start_time"]:
            continue  # taken before the job started: not its load
        mine = [gpus[i] for i in task["gpu_ids"] if i in gpus]
        if not mine:
            continue
        ctx.store.add_gpu_sample(task["run_key"], sum(g["util"] for g in mine),
                                 sum(g["mem_used_mb"] for g in mine))

"""/metrics in the Prometheus exposition format (prometheus_client), made
afresh for each scrape from the controller's answers: a registry of
collectors that hold no state between scrapes."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["exposition"]

_NODE_STATES = ("idle", "mix", "alloc", "down", "drain", "drng", "unk")


class _Fleet:
    """One scrape: jobs by state and partition, each machine's allocation,
    declared size, load, free memory and state."""

    def __init__(self, get: Any) -> None:
        self.get = get

    def collect(self):  # type: ignore[no-untyped-def]
        stats = self.get.history(1)
        jobs = GaugeMetricFamily("fleetslurm_jobs", "Active jobs (an array's pending "
                                 "remainder counts once, as squeue folds it)",
                                 labels=["state", "partition"])
        for state, partition, n in stats["active"]:
            jobs.add_metric([state, partition], n)
        yield jobs
        yield GaugeMetricFamily("fleetslurm_scheduler_pass_seconds",
                                "Wall time of the controller's last scheduling pass",
                                value=float(stats.get("sched_pass_seconds") or 0.0))
        passes = CounterMetricFamily("fleetslurm_scheduler_passes",
                                     "Scheduling passes since the controller started",
                                     value=float(stats.get("sched_passes") or 0))
        yield passes
        nodes = self.get.call("nodes")["nodes"]
        fams = {
            "cpus": GaugeMetricFamily("fleetslurm_node_cpus", "Declared CPUs", labels=["node"]),
            "alloc_cpus": GaugeMetricFamily("fleetslurm_node_alloc_cpus", "Allocated CPUs",
                                            labels=["node"]),
            "mem_mb": GaugeMetricFamily("fleetslurm_node_memory_bytes", "Declared memory",
                                        labels=["node"]),
            "alloc_mem_mb": GaugeMetricFamily("fleetslurm_node_alloc_memory_bytes",
                                              "Allocated memory", labels=["node"]),
            "free_mem_mb": GaugeMetricFamily("fleetslurm_node_free_memory_bytes",
                                             "Free memory the machine reports", labels=["node"]),
            "gpus": GaugeMetricFamily("fleetslurm_node_gpus", "Declared GPUs", labels=["node"]),
            "alloc_gpus": GaugeMetricFamily("fleetslurm_node_alloc_gpus", "Allocated GPUs",
                                            labels=["node"]),
            "cpu_load": GaugeMetricFamily("fleetslurm_node_load1", "1-minute load average",
                                          labels=["node"]),
        }
        state = GaugeMetricFamily("fleetslurm_node_state", "1 for the machine's state (sinfo's)",
                                  labels=["node", "state"])
        for n in nodes:
            for key, fam in fams.items():
                v = n.get(key)
                if v is None:
                    continue
                fam.add_metric([n["name"]], float(v) * (1 << 20) if key.endswith("mem_mb")
                               else float(v))
            for s in _NODE_STATES:
                state.add_metric([n["name"], s], 1.0 if n.get("state") == s else 0.0)
        yield from fams.values()
        yield state
        yield from _gpu_families(nodes)


def _gpu_families(nodes: list) -> list:
    """Each GPU's latest nvidia-smi reading (machines that report one)."""
    util = GaugeMetricFamily("fleetslurm_gpu_utilization_ratio",
                             "GPU utilization nvidia-smi last reported (0-1)",
                             labels=["node", "gpu", "uuid"])
    used = GaugeMetricFamily("fleetslurm_gpu_memory_used_bytes",
                             "GPU memory in use, as nvidia-smi last reported it",
                             labels=["node", "gpu", "uuid"])
    total = GaugeMetricFamily("fleetslurm_gpu_memory_total_bytes", "GPU memory",
                              labels=["node", "gpu", "uuid"])
    for n in nodes:
        for g in n.get("gpu_usage") or []:
            labels = [n["name"], str(g.get("index")), str(g.get("uuid") or "")]
            util.add_metric(labels, float(g.get("util") or 0) / 100)
            used.add_metric(labels, float(g.get("mem_used_mb") or 0) * (1 << 20))
            total.add_metric(labels, float(g.get("mem_total_mb") or 0) * (1 << 20))
    return [util, used, total]


def exposition(get: Any) -> tuple[bytes, str]:
    """This scrape's text: the fleet's figures, then the dashboard's own
    request timings (kept between scrapes, as a histogram must be)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Fleet(get))
    timings = getattr(get, "RPC_REGISTRY", None)
    body = generate_latest(reg) + (generate_latest(timings) if timings is not None else b"")
    return body, CONTENT_TYPE_LATEST

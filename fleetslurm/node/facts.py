"""Facts about this machine for the embedded default: CPUs and GPUs as the
node agent finds them (``agent.host``: its CPU affinity, nvidia-smi), memory
from psutil."""

from __future__ import annotations

from typing import Any

from .agent.host import query_gpus, usable_cpus

__all__ = ["local_facts", "nvidia_gpus"]

#: GPUs as nvidia-smi lists them; [] when it is absent or fails (the agent's query)
nvidia_gpus = query_gpus


def local_facts() -> dict[str, Any]:
    """CPUs (usable by this process), memory in MB and GPUs of this machine."""
    import psutil

    return {
        "cpus": usable_cpus(),
        "mem_mb": int(psutil.virtual_memory().total // (1024 * 1024)),
        "gpus": query_gpus(),
    }

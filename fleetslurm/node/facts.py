"""Facts about this machine for the embedded default (psutil; GPUs from nvidia-smi)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

__all__ = ["local_facts", "nvidia_gpus"]


def nvidia_gpus() -> list[dict[str, Any]]:
    """GPUs as nvidia-smi lists them; [] when it is absent or fails."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,name,uuid,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 4 and parts[0].isdigit():
            gpus.append({"index": int(parts[0]), "name": parts[1], "uuid": parts[2],
                         "memory_mb": int(float(parts[3])) if parts[3].replace(".", "").isdigit() else 0})
    return gpus


def local_facts() -> dict[str, Any]:
    """CPUs (usable by this process), memory in MB and GPUs of this machine."""
    import os

    import psutil

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = psutil.cpu_count() or 1
    return {
        "cpus": cpus,
        "mem_mb": int(psutil.virtual_memory().total // (1024 * 1024)),
        "gpus": nvidia_gpus(),
    }

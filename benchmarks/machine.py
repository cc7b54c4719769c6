"""What the benchmark scripts share: the machine their figures come from, a
whole-process median, and whether the real SLURM (the oracle) answers here."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def median_ms(cmd: list[str], runs: int, env: dict, cwd: "str | Path") -> float:
    """Median wall time of ``runs`` whole runs of ``cmd``, in ms."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                       cwd=cwd, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def oracle_up(command: str = "/usr/bin/srun") -> bool:
    """Whether the real one-node SLURM answers here (root, ``command`` there,
    ``sinfo`` naming localhost)."""
    if os.getuid() != 0 or not os.path.exists(command):
        return False
    try:
        proc = subprocess.run(["/usr/bin/sinfo", "-h"], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and "localhost" in proc.stdout

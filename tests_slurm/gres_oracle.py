"""A second real one-node SLURM 22.05 with two (fake) GPUs: what sinfo and
scontrol print for GRES, which the suite's main oracle (no GPUs) cannot
show. Its own cluster (``gresoracle``), ports, state and spool under
:data:`ROOT`, so it never touches the main oracle; it shares munge with it.

``gres.conf`` names two character devices made with ``mknod`` in ROOT
(SLURM only needs them to exist: ``TaskPlugin=task/none`` constrains no
devices), without ``Cores=``, as fleetslurm declares GPUs: untyped, no
topology. Started as root by :func:`ensure_gres_oracle` and left running
(like the main oracle); ``SLURM_CONF`` must name :data:`CONF` for its
commands.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Optional

from .slurm_oracle import BIN, SBIN, ensure_oracle

__all__ = ["ROOT", "CONF", "ensure_gres_oracle"]

ROOT = Path("/tmp/fleetslurm-gres-oracle")
CONF = ROOT / "slurm.conf"

_CONF = """\
ClusterName=gresoracle
SlurmctldHost=localhost
SlurmctldPort=7917
SlurmdPort=7918
FirstJobId=5000
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/none
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ReturnToService=2
MpiDefault=none
GresTypes=gpu
NodeName=localhost CPUs={cpus} RealMemory=1000 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def env() -> dict:
    """An environment whose SLURM commands talk to this SLURM."""
    return dict(os.environ, SLURM_CONF=str(CONF), LC_ALL="C")


def _answers() -> bool:
    try:
        return subprocess.run([str(BIN / "sinfo"), "-h", "-o", "%P"], env=env(),
                              capture_output=True, timeout=15).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
        return True
    except (OSError, ValueError, IndexError):
        return False


def ensure_gres_oracle() -> Optional[str]:
    """None once this SLURM answers, else why it cannot run here."""
    main = ensure_oracle()  # installs SLURM and starts munged, if need be
    if isinstance(main, str):
        return main
    if os.geteuid() != 0:
        return "the GRES oracle starts slurmctld and slurmd: run as root"
    for d in ("state", "spool", "dev"):
        (ROOT / d).mkdir(parents=True, exist_ok=True)
    for i in range(2):
        dev = ROOT / "dev" / f"nvidia{i}"
        if not dev.exists():
            os.mknod(dev, 0o600 | 0o020000, os.makedev(195, i))  # S_IFCHR
    cpus = len(os.sched_getaffinity(0))
    CONF.write_text(_CONF.format(root=ROOT, cpus=cpus))
    (ROOT / "gres.conf").write_text(f"NodeName=localhost Name=gpu File={ROOT}/dev/nvidia[0-1]\n")
    for name in ("slurmctld", "slurmd"):
        if not _alive(ROOT / f"{name}.pid"):
            subprocess.run([str(SBIN / name), "-f", str(CONF)], env=env(), capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=60)
            time.sleep(1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _answers():
            out = subprocess.run([str(BIN / "sinfo"), "-h", "-N", "-o", "%t"], env=env(),
                                 capture_output=True, text=True, timeout=15).stdout.strip()
            if out.rstrip("*") in ("idle", "mix", "alloc"):
                return None
        time.sleep(1)
    return f"the GRES oracle did not come up; see {ROOT}/slurmctld.log and slurmd.log"

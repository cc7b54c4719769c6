"""A real one-node SLURM (Debian's slurm-wlm) to judge fleetslurm against.

:func:`ensure_oracle` finds a running SLURM and reuses it as it is, or, as
root with apt reachable, installs ``slurm-wlm`` and ``munge``, writes the
one-node ``slurm.conf`` of SLURM_COMPAT.md (only when none exists) and starts
munged, slurmctld and slurmd by hand (no systemd). Whatever cannot be done is
returned as the reason to skip; nothing here raises for a missing SLURM.

The daemons it starts are left running, as ``/work/oracle/start.sh`` does,
so the next run (and anyone else on the machine) reuses them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["Oracle", "ensure_oracle", "SLURM_CONF", "BIN"]

#: where Debian's slurm-client puts the commands (never fleetslurm's shims)
BIN = Path("/usr/bin")
SLURM_CONF = Path("/etc/slurm/slurm.conf")
SBIN = Path("/usr/sbin")

ONE_NODE_CONF = """\
ClusterName=oracle
SlurmctldHost=localhost
FirstJobId=1000
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/none
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
MpiDefault=none
NodeName=localhost CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def _machine() -> tuple[int, int]:
    """CPUs and a RealMemory (MB) this machine surely has: slurmd drains a
    node that has less than slurm.conf declares. 20000 MB at most, as in
    SLURM_COMPAT.md."""
    cpus = len(os.sched_getaffinity(0))
    with open("/proc/meminfo") as f:
        total_kb = int(next(line for line in f if line.startswith("MemTotal:")).split()[1])
    return cpus, min(20000, int(total_kb / 1024 * 0.9))


@dataclass(frozen=True)
class Oracle:
    """A SLURM that answers: its names, as fleetslurm's config must mirror them."""

    cluster: str
    partition: str
    node: str
    cpus: int
    real_memory_mb: int
    version: str

    def cmd(self, name: str) -> str:
        """Absolute path of SLURM's own ``name`` (sbatch, squeue, ...)."""
        return str(BIN / name)


def _is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _run(argv: list[str], timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


def _answers() -> bool:
    if not _is_elf(BIN / "sinfo"):
        return False
    try:
        return _run([str(BIN / "sinfo"), "-h", "-o", "%P"], timeout=15).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _running(name: str) -> bool:
    return _run(["pgrep", "-x", name]).returncode == 0


def _install(log: Path) -> Optional[str]:
    """apt-get install slurm-wlm munge (with an update when the first try fails)."""
    if not shutil.which("apt-get"):
        return "SLURM is not installed and there is no apt-get to install it"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"]
    with open(log, "a") as out:
        for attempt in range(2):
            if attempt:
                subprocess.run(["apt-get", "update", "-q"], stdout=out, stderr=out,
                               stdin=subprocess.DEVNULL, env=env, timeout=600)
            done = subprocess.run(install, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                  env=env, timeout=900)
            if done.returncode == 0 and _is_elf(SBIN / "slurmctld"):
                return None
    return f"apt-get install slurm-wlm munge failed (apt unreachable?), see {log}"


def _munge_key() -> None:
    key = Path("/etc/munge/munge.key")
    if key.exists() and key.stat().st_size > 0:
        return
    if shutil.which("mungekey"):
        _run(["mungekey", "--create", "--force"])
    else:
        key.write_bytes(os.urandom(1024))
    shutil.chown(key, "munge", "munge")
    key.chmod(0o400)


def _start(log: Path) -> Optional[str]:
    for d in ("/var/spool/slurmctld", "/var/spool/slurmd", "/var/log/slurm", "/etc/slurm",
              "/run/munge"):
        Path(d).mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    os.chmod("/run/munge", 0o755)
    _munge_key()
    if not SLURM_CONF.exists():
        cpus, memory = _machine()
        SLURM_CONF.write_text(ONE_NODE_CONF.format(cpus=cpus, memory=memory))
    starts = [("munged", ["runuser", "-u", "munge", "--", str(SBIN / "munged")]),
              ("slurmctld", [str(SBIN / "slurmctld")]),
              ("slurmd", [str(SBIN / "slurmd")])]
    with open(log, "a") as out:
        for name, argv in starts:
            if not _running(name):
                # the daemons fork into the background; they stay after the tests
                subprocess.run(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, timeout=60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _answers():
            return None
        time.sleep(1)
    return ("SLURM did not answer within 60 s after starting it; see "
            "/var/log/slurm/slurmctld.log and slurmd.log")


def _resume_node() -> None:
    """A node left down by an earlier run comes back (ReturnToService=2 does
    this on registration; a node drained by hand needs the RESUME)."""
    out = _run([str(BIN / "sinfo"), "-h", "-N", "-o", "%N %t"]).stdout.split()
    for name, state in zip(out[::2], out[1::2]):
        if state.rstrip("*~#") in ("down", "drain", "drng", "fail"):
            _run([str(BIN / "scontrol"), "update", f"NodeName={name}", "State=RESUME"])


def _describe() -> "Oracle | str":
    part = _run([str(BIN / "sinfo"), "-h", "-o", "%R|%N|%c|%m"]).stdout.split()
    if not part:
        return "SLURM answers but has no partition"
    name, nodes, cpus, mem = part[0].split("|")
    cfg = _run([str(BIN / "scontrol"), "show", "config"]).stdout
    keys = dict(line.split(" = ", 1) for line in cfg.splitlines() if " = " in line)
    keys = {k.strip(): v.strip() for k, v in keys.items()}
    if "[" in nodes or "," in nodes:
        return f"SLURM's partition {name} has several nodes ({nodes}); the suite needs one"
    return Oracle(cluster=keys.get("ClusterName", ""), partition=name, node=nodes,
                  cpus=int(cpus.rstrip("+")), real_memory_mb=int(mem.rstrip("+")),
                  version=keys.get("SLURM_VERSION", ""))


def _node_unusable() -> Optional[str]:
    out = _run([str(BIN / "sinfo"), "-h", "-N", "-o", "%N %t"]).stdout.split()
    bad = [f"{n} is {t}" for n, t in zip(out[::2], out[1::2])
           if t.rstrip("*~#") in ("down", "drain", "drng", "fail")]
    return f"real SLURM's node cannot run jobs ({', '.join(bad)})" if bad else None


def ensure_oracle(log: Path = Path("/tmp/fleetslurm-oracle-setup.log")) -> "Oracle | str":
    """A running SLURM (reused as is, or installed and started), or why not.

    A SLURM that already runs is not touched: if its node is down or drained
    (someone may have done that on purpose), that is the reason to skip.
    """
    if not _answers():
        if os.geteuid() != 0:
            return "no SLURM answers here, and starting one needs root"
        if not _is_elf(SBIN / "slurmctld") or not _is_elf(BIN / "sbatch"):
            reason = _install(log)
            if reason:
                return reason
        reason = _start(log)
        if reason:
            return reason
        _resume_node()  # ours: a node left down by an earlier life comes back
    return _node_unusable() or _describe()


if __name__ == "__main__":  # .ci/run: python3 -m tests_slurm.slurm_oracle
    found = ensure_oracle()
    print(f"real SLURM: {found}" if isinstance(found, Oracle) else f"no real SLURM: {found}")

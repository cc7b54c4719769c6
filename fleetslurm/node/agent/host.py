"""Host facts: processes as /proc shows them (state, session, children,
memory), signalling a job's processes, and what the scheduler needs to know
about this machine (CPUs, memory, GPUs from nvidia-smi, ...). Standard
library only; ``fleetslurm.node.facts`` reuses :func:`query_gpus`."""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

from .fsio import STEPS_DIR, read_small
from .gpus import smi_path

_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
# /proc/PID/task/TID/children needs CONFIG_PROC_CHILDREN; without it the
# memory watchdog scans all of /proc.
HAVE_CHILDREN_FILE = os.path.exists("/proc/self/task/%d/children" % os.getpid())
# Linux >= 4.14: a process's proportional set size in one read; older kernels
# fall back to RSS
_HAVE_SMAPS_ROLLUP = os.path.exists("/proc/self/smaps_rollup")


def proc_stat(pid: int) -> Optional[Tuple[str, int, int]]:
    """(state, session id, start time in clock ticks) of ``pid``, or None."""
    try:
        data = read_small("/proc/%d/stat" % pid)
        # comm may contain spaces and parentheses: fields resume after the last ')'
        rest = data[data.rindex(b")") + 2:].split()
        return rest[0].decode(), int(rest[3]), int(rest[19])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: Optional[int], ticks: Optional[int]) -> bool:
    """True if ``pid`` runs and (when given) started at ``ticks``.

    Zombies count as dead: an orphaned supervisor whose new parent does not
    reap it (a container's PID 1) stays a zombie forever.
    """
    if not pid:
        return False
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X") and (ticks is None or st[2] == ticks)


def step_groups(jobdir: str, sid: Optional[int]) -> List[int]:
    """Process groups of the job's srun steps that still live in its session."""
    path = os.path.join(jobdir, STEPS_DIR)
    # most jobs have no steps: asked without raising (an exception is many
    # copy-on-write faults in a forked supervisor)
    if not os.access(path, os.F_OK):
        return []
    try:
        names = os.listdir(path)
    except OSError:
        return []
    groups = []
    for name in names:
        if name.isdigit():
            st = proc_stat(int(name))
            # the session check guards against a reused pid
            if st is not None and (sid is None or st[1] == sid):
                groups.append(int(name))
    return groups


def child_pids(pid: int) -> List[int]:
    """Children of ``pid`` (of every thread of it), from /proc."""
    out: List[int] = []
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            out.extend(int(c) for c in read_small("/proc/%d/task/%s/children" % (pid, tid)).split())
        except (OSError, ValueError):
            pass
    return out


def memory_kb(pid: int) -> int:
    """Memory of one process in KiB: its PSS (shared pages split between the
    processes that share them), else its RSS; 0 when it is gone."""
    if _HAVE_SMAPS_ROLLUP:
        try:
            data = read_small("/proc/%d/smaps_rollup" % pid)
            at = data.index(b"\nPss:") + 5
            return int(data[at:data.index(b"kB", at)])
        except (OSError, ValueError):
            pass  # gone, or unreadable (a setuid program): its RSS then
    try:
        return int(read_small("/proc/%d/statm" % pid).split()[1]) * _PAGE_KB
    except (OSError, ValueError, IndexError):
        return 0


def signal_scope(jobdir: str, sid: Optional[int], pid: int, signum: int, scope: str) -> None:
    """SLURM's targets: "steps" (srun steps only, scancel's default and
    --signal without B:), "batch" (the batch shell: scancel -b, --signal=B:),
    "full" (every process of the job: scancel -f)."""
    if scope == "batch":
        os.kill(pid, signum)
        return
    targets = step_groups(jobdir, sid)
    if scope == "full" and pid not in targets:
        # (a job srun made runs its task as the job itself: one group, one signal)
        targets.append(pid)
    for pgid in targets:
        try:
            os.killpg(pgid, signum)
        except OSError:
            pass


def _meminfo() -> Dict[str, int]:
    out: Dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    out[name] = int(parts[0])
    except (OSError, ValueError):
        pass
    return out


def _boot_time() -> Optional[float]:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def query_gpus() -> List[Dict[str, Any]]:
    """GPUs reported by nvidia-smi, or [] when it is absent or fails."""
    exe = smi_path()
    if exe is None:
        return []
    import subprocess  # only here: keeps the heap every fork copies small
    try:
        proc = subprocess.run(
            [exe, "--query-gpu=index,name,uuid,memory.total", "--format=csv,noheader,nounits"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            timeout=15, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4:
            continue
        try:
            gpus.append({"index": int(parts[0]), "name": parts[1], "uuid": parts[2],
                         "memory_mb": int(float(parts[3]))})
        except ValueError:
            continue
    return gpus


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_facts(workdir: str, jobs_dir: str, since: float,
                  gpus: List[Dict[str, Any]]) -> Dict[str, Any]:
    """FACTS: what the scheduler needs to know about this machine."""
    mem = _meminfo()
    cpus = usable_cpus()
    try:
        st = os.statvfs(workdir)
        disk_free = st.f_bavail * st.f_frsize // (1 << 20)
    except OSError:
        disk_free = 0
    uname = os.uname()
    return {
        "hostname": uname.nodename, "cpus": cpus,
        "mem_mb": mem.get("MemTotal", 0) // 1024,
        "free_mem_mb": mem.get("MemAvailable", mem.get("MemFree", 0)) // 1024,
        "load1": os.getloadavg()[0], "gpus": gpus,
        "python": "%d.%d.%d" % sys.version_info[:3],
        # what slurmd reports: "Linux 6.1.0-13-amd64 #1 SMP PREEMPT_DYNAMIC ..."
        "os": "%s %s %s" % (uname.sysname, uname.release, uname.version),
        "arch": uname.machine, "started": since,
        "boot_time": _boot_time(), "workdir": workdir, "disk_free_mb": disk_free,
        "workdir_writable": os.access(jobs_dir, os.W_OK | os.X_OK), "uid": os.getuid(),
    }

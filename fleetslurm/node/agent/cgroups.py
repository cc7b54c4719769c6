"""The job's cgroups, made by its supervisor and removed at its end: memory
(cgroup v2 ``memory.max``; without it the supervisor's PSS watchdog) and CPU
(``cpu.max`` and ``cpuset.cpus`` on cgroup v2, ``cpu.cfs_quota_us`` and
``cpuset.cpus`` on v1; without either, affinity only: see ``cpus``).
Standard library only."""
from __future__ import annotations

import errno
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .cpus import format_list
from .fsio import log

CGROUP_ROOT = "/sys/fs/cgroup"
#: the directory under a cgroup hierarchy that holds the jobs' cgroups
BASE = "fleetslurm"
#: the CFS period the CPU quota is a multiple of (the kernel's default, 100 ms)
PERIOD_US = 100000




def _read(path: str) -> str:
    # os-level calls, not open(): a supervisor makes its job's cgroups, and a
    # file object is six syscalls and a dozen Python objects (copy-on-write
    # faults in a process forked from the agent) where two syscalls do
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 65536).decode().strip()
    finally:
        os.close(fd)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _mkdir_under(hierarchy: str, name: str) -> Tuple[str, str]:
    """mkdir ``<hierarchy>/BASE/<name>``, making BASE first when it is not
    there yet (the usual case, BASE there, is one syscall); returns (the
    job's directory, BASE's)."""
    base = os.path.join(hierarchy, BASE)
    cg = os.path.join(base, name)
    try:
        os.mkdir(cg, 0o755)
    except FileNotFoundError:
        os.makedirs(base, exist_ok=True)
        os.mkdir(cg, 0o755)
    return cg, base


def detect_cgroups(root: str = CGROUP_ROOT) -> Tuple[Optional[str], Dict[str, str], str]:
    """What this machine allows for CPU limits: (``"v2"`` | ``"v1"`` | None,
    {controller: the hierarchy's directory}, a sentence saying why).

    v2: the unified hierarchy at ``root`` with the ``cpu`` and/or ``cpuset``
    controllers. v1: ``root/cpu`` and/or ``root/cpuset`` mounted and writable
    (a job cgroup can be made there). None: neither; affinity only."""
    try:
        controllers = _read(os.path.join(root, "cgroup.controllers")).split()
    except OSError:
        controllers = None
    if controllers is not None:
        found = {c: root for c in ("cpu", "cpuset") if c in controllers}
        if found and os.access(os.path.join(root, "cgroup.subtree_control"), os.W_OK):
            return "v2", found, "cgroup v2 at %s with %s" % (root, "+".join(sorted(found)))
        return None, {}, ("cgroup v2 at %s has no writable cpu or cpuset controller "
                          "(controllers: %s)" % (root, " ".join(controllers) or "none"))
    found = {}
    why = []
    for c, probe in (("cpu", "cpu.cfs_quota_us"), ("cpuset", "cpuset.cpus")):
        path = os.path.join(root, c)
        if not os.path.isfile(os.path.join(path, probe)):
            why.append("no cgroup v1 %s hierarchy at %s" % (c, path))
        elif not os.access(path, os.W_OK):
            why.append("%s is not writable (uid %d)" % (path, os.geteuid()))
        else:
            found[c] = path
    if found:
        return "v1", found, "cgroup v1 with %s" % "+".join(sorted(found))
    return None, {}, "; ".join(why) or "no cgroup filesystem at %s" % root


def make_v1(hierarchies: Dict[str, str], name: str, cpus: int,
            ids: Optional[Sequence[int]]) -> List[str]:
    """Job cgroups under cgroup v1's cpu and cpuset hierarchies: CFS quota
    ``cpus x period``; cpuset ``ids`` (None: no cpuset, the job is unbound).
    Returns the directories made (the job joins each); raises OSError."""
    made: List[str] = []
    try:
        cpu = hierarchies.get("cpu")
        if cpu:
            cg, _ = _mkdir_under(cpu, name)
            made.append(cg)
            # a new group's period is the kernel's default, PERIOD_US: only
            # the quota is written
            _write(os.path.join(cg, "cpu.cfs_quota_us"), str(cpus * PERIOD_US))
        cpuset = hierarchies.get("cpuset")
        if cpuset and ids:
            cg, base = _mkdir_under(cpuset, name)
            made.append(cg)
            mems = _read(os.path.join(base, "cpuset.mems"))
            if not mems:
                # v1 cpusets start empty: the base (new, as its memory nodes
                # say) takes its parent's CPUs and memory nodes, else no task
                # can join below it
                for f in ("cpuset.cpus", "cpuset.mems"):
                    if not _read(os.path.join(base, f)):
                        _write(os.path.join(base, f), _read(os.path.join(cpuset, f)))
                mems = _read(os.path.join(base, "cpuset.mems"))
            _write(os.path.join(cg, "cpuset.mems"), mems)
            _write(os.path.join(cg, "cpuset.cpus"), format_list(ids))
    except OSError:
        remove(made)
        raise
    return made


def limit_v2(cg: str, cpus: int, ids: Optional[Sequence[int]], controllers: Iterable[str]) -> None:
    """CPU limits in a job's cgroup v2 directory (made by the supervisor,
    with ``controllers`` enabled for it)."""
    if "cpu" in controllers:
        _write(os.path.join(cg, "cpu.max"), "%d %d" % (cpus * PERIOD_US, PERIOD_US))
    if "cpuset" in controllers and ids:
        _write(os.path.join(cg, "cpuset.cpus"), format_list(ids))


def remove(dirs: Iterable[str]) -> None:
    """Remove job cgroups once their processes are gone (they take a moment
    to leave after SIGKILL)."""
    for cg in dirs:
        for _ in range(50):
            try:
                os.rmdir(cg)
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    break
                time.sleep(0.02)


def left_behind(dirs: Dict[str, str], key: str, sup_pid: Optional[int]) -> List[str]:
    """The cgroups a supervisor that died may have left (named ``<key>-<its
    pid>``), for :func:`drop` to remove."""
    if not sup_pid:
        return []
    name = "%s-%d" % (key, sup_pid)
    return [os.path.join(d, BASE, name) for d in sorted(set(dirs.values()) | {CGROUP_ROOT})]


def drop(paths: List[str]) -> List[str]:
    """One try to remove each cgroup, never a wait (the agent's loop must not
    block); returns those still there: busy until their last process is
    reaped (a dead supervisor's job is reaped by init, a moment later)."""
    busy = []
    for path in paths:
        try:
            os.rmdir(path)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                busy.append(path)
    return busy


class JobCgroups:
    """The cgroup part of :class:`supervisor.Supervisor`."""

    workdir: str
    key: str
    sid: int
    spec: Dict[str, Any]
    cgroup: Optional[str]
    mem_cgroup: bool
    cpu_cgroups: List[str]
    cpu_cg_mode: Optional[str]
    cpu_cg_dirs: Dict[str, str]
    peak_kb: int

    if TYPE_CHECKING:  # Supervisor's
        def set_reason(self, reason: str) -> None: ...  # noqa: E704

        def sweep_session(self) -> None: ...  # noqa: E704

    def setup_cgroup(self, want: List[str]) -> Optional[str]:
        """Create the job's cgroup v2 child with the ``want``ed controllers
        (memory, cpu, cpuset) the machine has, or None: memory then falls
        back to the watchdog, CPUs to affinity only. A controller that cannot
        be enabled is left out; the others still hold."""
        spec = self.spec
        try:
            with open(os.path.join(CGROUP_ROOT, "cgroup.controllers")) as f:
                have = f.read().split()
        except OSError:
            return None
        want = [c for c in want if c in have]
        if not want:
            return None
        base = os.path.join(CGROUP_ROOT, "fleetslurm")
        cg = os.path.join(base, "%s-%d" % (self.key, self.sid))
        try:
            os.makedirs(base, exist_ok=True)
            # Controllers must be enabled top-down; base holds no processes,
            # so enabling them for its children is allowed.
            for parent in (CGROUP_ROOT, base):
                path = os.path.join(parent, "cgroup.subtree_control")
                with open(path) as f:
                    enabled = f.read().split()
                for c in list(want):
                    if c not in enabled:
                        try:
                            with open(path, "w") as f:
                                f.write("+" + c)
                        except OSError as exc:
                            log(self.workdir, "job %s: cannot enable the %s controller in %s: %s"
                                % (self.key, c, path, exc))
                            want.remove(c)
            if not want:
                return None
            os.mkdir(cg, 0o755)
            if "memory" in want:
                with open(os.path.join(cg, "memory.max"), "w") as f:
                    f.write(str(spec["mem_limit_mb"] << 20))
                for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                    try:
                        with open(os.path.join(cg, name), "w") as f:
                            f.write(value)
                    except OSError:
                        pass  # older kernels or no swap accounting: limit still holds
                self.mem_cgroup = True
            if spec["cpu_limit"]:
                limit_v2(cg, spec["cpu_limit"], spec["cpu_ids"], want)
            return cg
        except OSError as exc:
            log(self.workdir, "job %s: cgroup v2 unusable (%s); using the RSS watchdog and "
                "CPU affinity only" % (self.key, exc))
            self.mem_cgroup = False
            try:
                os.rmdir(cg)
            except OSError:
                pass
            return None

    def setup_cgroups(self) -> None:
        """The job's cgroups: memory (cgroup v2) when it has a memory limit,
        CPU quota and cpuset where the machine allows (see ``cpus``)."""
        spec = self.spec
        want = ["memory"] if spec["mem_limit_mb"] else []
        if spec["cpu_limit"] and self.cpu_cg_mode == "v2":
            want += sorted(self.cpu_cg_dirs)
        if want:
            self.cgroup = self.setup_cgroup(want)
        if spec["cpu_limit"] and self.cpu_cg_mode == "v1":
            try:
                self.cpu_cgroups = make_v1(self.cpu_cg_dirs, "%s-%d" % (self.key, self.sid),
                                           spec["cpu_limit"], spec["cpu_ids"])
            except OSError as exc:
                log(self.workdir, "job %s: cgroup v1 CPU limits unusable (%s); CPU affinity only"
                    % (self.key, exc))

    def finish_cgroup(self) -> None:
        """Read OOM kills and peak memory from the cgroup, then remove it."""
        assert self.cgroup is not None
        try:
            with open(os.path.join(self.cgroup, "memory.events")) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill" and int(value) > 0:
                        self.set_reason("OUT_OF_MEMORY")
        except (OSError, ValueError):
            pass
        try:
            with open(os.path.join(self.cgroup, "memory.peak")) as f:
                self.peak_kb = max(self.peak_kb, int(f.read().split()[0]) // 1024)
        except (OSError, ValueError, IndexError):
            pass
        self.sweep_session()
        for _ in range(50):
            try:
                os.rmdir(self.cgroup)
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    return
                time.sleep(0.02)  # killed processes take a moment to leave

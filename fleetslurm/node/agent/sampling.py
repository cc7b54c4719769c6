"""A job's resource use over time: the supervisor samples the job's
processes every few seconds (CPU seconds, memory as summed PSS, virtual
size, process count) into a bounded series, written to
``<workdir>/samples/<key>.json`` (the agent's own directory, never the
job's, which its user may write), and the agent sends each new point to the
controller with the heartbeat (``samples`` in ``protocol``).

Bounded (``add_point``): a sample is taken every few seconds and the last
point always is the latest, but a point is kept only ``step`` after the one
before it; when the series outgrows MAX_POINTS every other point goes and
``step`` doubles. A week-long job keeps at most MAX_POINTS points spread
evenly over the week, and its chart still moves every few seconds. Peaks are
kept apart, so thinning never loses MaxRSS or MaxVMSize. Standard library only.
"""
from __future__ import annotations

import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .fsio import STEPS_DIR, read_json, read_small, write_json_atomic
from .host import memory_kb

#: seconds between samples unless the launch spec says otherwise (``sample_s``)
SAMPLE_S = 5.0
#: the most points a run's series keeps (the controller's store keeps as many)
MAX_POINTS = 600
#: points one ``samples`` reply carries at most (about 40 bytes each): a new
#: agent beside a thousand long jobs sends their series over a few heartbeats
MAX_REPLY_POINTS = 20000
#: under the agent's workdir: one file per run, named by its key
SAMPLES_DIR = "samples"
#: a point: [time (epoch s), CPU s (user+system, all processes), memory KiB
#: (summed PSS), virtual size KiB (summed), processes]
FIELDS = ("t", "cpu_s", "rss_kb", "vsize_kb", "nproc")

_TICK = float(os.sysconf("SC_CLK_TCK"))


def add_point(points: "List[Any]", step: float, point: "List[Any]",
              max_points: int = MAX_POINTS) -> "Tuple[List[Any], float]":
    """``points`` (oldest first) with ``point`` added, within ``max_points``,
    and the spacing kept from now on. The last point is the live one: a
    point closer than ``step`` to the one before it replaces it. Over the
    bound, every other point goes (the first and the last stay) and the
    spacing becomes the kept points' average: coverage stays even over the
    whole run, at half the points, and the rate halves each time."""
    if len(points) >= 2 and point[0] - points[-2][0] < step:
        points[-1] = point
    else:
        points.append(point)
    if len(points) > max_points:
        points = points[:-1][::2] + [points[-1]]
        step = (points[-1][0] - points[0][0]) / max(1, len(points) - 1)
    return points, step


def samples_path(workdir: str, key: str) -> str:
    return os.path.join(workdir, SAMPLES_DIR, key + ".json")


def _usage(pid: int) -> "Optional[Sequence[int]]":
    """(CPU ticks of the process and of its reaped children, virtual size
    in bytes, process group) of ``pid``, or None when it is gone."""
    try:
        data = read_small("/proc/%d/stat" % pid)
        rest = data[data.rindex(b")") + 2:].split()
        # fields 14-17 (utime stime cutime cstime), 23 (vsize) and 5 (pgrp) of proc(5)
        return (int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14]), int(rest[20]),
                int(rest[2]))
    except (OSError, ValueError, IndexError):
        return None


def step_of_group(jobdir: "Optional[str]") -> "Dict[int, Tuple[str, str]]":
    """srun's task process groups in the job (``<jobdir>/steps/<pgid>``,
    each holding its step's id and its task's rank) -> (step id, rank)."""
    if jobdir is None:
        return {}
    path = os.path.join(jobdir, STEPS_DIR)
    if not os.access(path, os.F_OK):
        return {}  # most jobs have no steps: told without an exception
    out = {}
    try:
        names = os.listdir(path)
    except OSError:
        return {}
    for name in names:
        if name.isdigit():
            words = _small_text(os.path.join(path, name)).split()
            if words and all(w.isdigit() for w in words[:2]):
                # an older srun wrote the step alone: its task counts as the group
                out[int(name)] = (words[0], words[1] if len(words) > 1 else name)
    return out


def _small_text(path: str) -> str:
    """The first bytes of a regular file the job's user may have made: never
    through a link, never blocking on a FIFO; "" when it is not such a file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        return ""
    finally:
        os.close(fd)


class Series:
    """One bounded series and its peaks, in its file (see ``add_point``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.points: List[List[Any]] = []
        self.step = 0.0  # the kept points' spacing (see add_point)
        self.peak = [0, 0]  # memory KiB, virtual size KiB
        self.cpu = 0.0
        #: a step's tasks by rank: [CPU s, memory KiB, virtual KiB, peak memory,
        #: peak virtual] (sstat's per-task figures: MaxRSSTask, MinCPU...)
        self.tasks: Dict[str, List[Any]] = {}

    def note_task(self, rank: str, cpu: float, rss: int, vsize_kb: int) -> None:
        old = self.tasks.get(rank) or [0.0, 0, 0, 0, 0]
        self.tasks[rank] = [round(max(old[0], cpu), 2), rss, vsize_kb, max(old[3], rss),
                            max(old[4], vsize_kb)]

    def add(self, now: float, cpu: float, rss: int, vsize_kb: int, n: int) -> "List[Any]":
        # a process that exits unwaited-for (its parent ignores SIGCHLD) takes
        # its CPU time with it: the total never goes back
        self.cpu = max(self.cpu, cpu)
        point = [round(now, 2), round(self.cpu, 2), rss, vsize_kb, n]
        self.peak = [max(self.peak[0], rss), max(self.peak[1], vsize_kb)]
        self.points, self.step = add_point(self.points, self.step, point)
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            saved: Dict[str, Any] = {"peak": self.peak, "points": self.points}
            if self.tasks:
                saved["tasks"] = self.tasks
            write_json_atomic(self.path, saved)
        except OSError:
            pass  # a full disk: the samples wait, the job does not
        return point


class Sampler:
    """The supervisor's series of one run (all its processes), and of each
    srun step in it (the process groups srun registered under the step's
    id), as ``<key>.json`` and ``<key>.<step>.json``."""

    def __init__(self, workdir: str, key: str, interval: "Optional[float]" = None,
                 jobdir: "Optional[str]" = None) -> None:
        self.workdir, self.key, self.jobdir = workdir, key, jobdir
        self.interval = max(0.2, float(interval or SAMPLE_S))
        self.run = Series(samples_path(workdir, key))
        self.steps: Dict[str, Series] = {}

    def take(self, pids: "Iterable[int]", extra_cpu: float, now: float) -> "List[Any]":
        """One point over the processes ``pids`` (``extra_cpu``: seconds of
        processes already collected, which no live parent counts), added to
        the run's series and written out; the steps' likewise."""
        groups = step_of_group(self.jobdir)
        total = [0, 0, 0, 0]  # ticks, vsize bytes, rss KiB, processes
        per_task: Dict[Tuple[str, str], List[int]] = {}
        for pid in pids:
            u = _usage(pid)
            if u is None:
                continue
            rss = memory_kb(pid)
            sums = [total]
            if u[2] in groups:
                sums.append(per_task.setdefault(groups[u[2]], [0, 0, 0, 0]))
            for acc in sums:
                acc[0] += u[0]
                acc[1] += u[1]
                acc[2] += rss
                acc[3] += 1
        per_step: Dict[str, List[int]] = {}
        for (step_id, rank), acc in sorted(per_task.items()):
            series = self.steps.get(step_id)
            if series is None:
                series = self.steps[step_id] = Series(
                    samples_path(self.workdir, "%s.%s" % (self.key, step_id)))
            series.note_task(rank, acc[0] / _TICK, acc[2], acc[1] >> 10)
            step_acc = per_step.setdefault(step_id, [0, 0, 0, 0])
            for i in range(4):
                step_acc[i] += acc[i]
        for step_id, acc in per_step.items():
            self.steps[step_id].add(now, acc[0] / _TICK, acc[2], acc[1] >> 10, acc[3])
        return self.run.add(now, total[0] / _TICK + extra_cpu, total[2], total[1] >> 10,
                            total[3])


def new_points(workdir: str, key: str, after: float) -> "Optional[Dict[str, Any]]":
    """What the agent sends of a run or step (``key``): ``{points, peak}``
    with the points later than ``after``; None when there is no new point."""
    got = read_json(samples_path(workdir, key))
    if not got:
        return None
    points = [p for p in got.get("points") or () if isinstance(p, list) and len(p) == 5
              and isinstance(p[0], (int, float)) and p[0] > after]
    if not points:
        return None
    out = {"points": points, "peak": got.get("peak") or [0, 0]}  # type: Dict[str, Any]
    if isinstance(got.get("tasks"), dict):
        out["tasks"] = got["tasks"]
    return out


def series_keys(workdir: str, runs: "Iterable[str]") -> "List[str]":
    """The keys of the series there are of the runs ``runs``: each run's own,
    and its steps' (``<run>.<step>``)."""
    runs = set(runs)
    try:
        names = os.listdir(os.path.join(workdir, SAMPLES_DIR))
    except OSError:
        return []
    out = []
    for name in names:
        if not name.endswith(".json"):
            continue
        key = name[:-5]
        run, _, step = key.rpartition(".")
        if key in runs or (step.isdigit() and run in runs):
            out.append(key)
    return out


def forget(workdir: str, key: str) -> None:
    """Remove a run's samples and its steps' (the agent forgets the run)."""
    for k in series_keys(workdir, [key]):
        try:
            os.unlink(samples_path(workdir, k))
        except OSError:
            pass

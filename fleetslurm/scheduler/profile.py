"""A node's free resources over time, for backfill.

A :class:`Profile` is piecewise constant: ``free[k]`` is free during
``[times[k], times[k+1])``, the last segment lasting forever. It starts from
what is free now, gains what running jobs release at their expected ends, and
loses what is started or reserved. Starting a job now and reserving one for
later are the same operation, so "does this job fit now without delaying any
reservation" is just "does it fit from now for its whole time limit".
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import Optional

from fleetslurm.scheduler.policy import Vec

__all__ = ["Profile"]


class Profile:
    """Free (cpus, mem_mb, gpus) of one node from ``now`` on."""

    __slots__ = ("times", "free")

    def __init__(self, now: float, free_now: Vec) -> None:
        self.times: list[float] = [now]
        self.free: list[list[int]] = [list(free_now)]

    @classmethod
    def build(cls, now: float, free_now: Vec, releases: list[tuple[float, Vec]]) -> "Profile":
        """A profile from what is free now and what running jobs release later
        (``(time, vec)`` pairs; times not after ``now`` or infinite are ignored)."""
        prof = cls(now, free_now)
        c, m, g = free_now
        for at, vec in sorted((r for r in releases if now < r[0] < math.inf), key=lambda r: r[0]):
            c, m, g = c + vec[0], m + vec[1], g + vec[2]
            if at == prof.times[-1]:
                prof.free[-1] = [c, m, g]
            else:
                prof.times.append(at)
                prof.free.append([c, m, g])
        return prof

    @property
    def now(self) -> float:
        """The start of the profile."""
        return self.times[0]

    def _split(self, t: float) -> int:
        """Index of the segment that starts exactly at ``t`` (created if needed)."""
        times = self.times
        if t <= times[0]:
            return 0
        i = bisect_right(times, t) - 1
        if times[i] == t:
            return i
        times.insert(i + 1, t)
        self.free.insert(i + 1, list(self.free[i]))
        return i + 1

    def _add(self, start: float, end: float, vec: Vec, sign: int) -> None:
        if end <= start:
            return
        i = self._split(start)
        j = len(self.times) if end == math.inf else self._split(end)
        c, m, g = vec[0] * sign, vec[1] * sign, vec[2] * sign
        for f in self.free[i:j]:
            f[0] += c
            f[1] += m
            f[2] += g

    def release(self, at: float, vec: Vec) -> None:
        """``vec`` becomes free at ``at`` (a running job's expected end)."""
        if at != math.inf:
            self._add(at, math.inf, vec, +1)

    def take(self, start: float, duration: float, vec: Vec) -> None:
        """``vec`` is in use during ``[start, start + duration)`` (a start or a reservation)."""
        self._add(start, start + duration, vec, -1)

    def earliest(self, need: Vec, duration: float) -> Optional[float]:
        """The first time ``need`` is free for ``duration`` seconds, or None if never."""
        c, m, g = need
        times, free = self.times, self.free
        n = len(times)
        run: Optional[float] = None
        for k in range(n):
            f = free[k]
            if f[0] >= c and f[1] >= m and f[2] >= g:
                if run is None:
                    run = times[k]
                end = times[k + 1] if k + 1 < n else math.inf
                if end - run >= duration:
                    return run
            else:
                run = None
        return None

    def fits_now(self, need: Vec, duration: float) -> bool:
        """Whether ``need`` is free from now for ``duration`` seconds."""
        c, m, g = need
        times, free = self.times, self.free
        n = len(times)
        start = times[0]
        for k in range(n):
            f = free[k]
            if f[0] < c or f[1] < m or f[2] < g:
                return False
            end = times[k + 1] if k + 1 < n else math.inf
            if end - start >= duration:
                return True
        return True  # pragma: no cover - the last segment is infinite

"""Job array index specifications: ``sbatch --array=0-15:4%2``.

Parsing follows what slurm-wlm 22.05.8 accepts (the controller's
``bit_unfmt`` of the index list after sbatch strips ``%N``): comma separated
``N``, ``A-B`` and ``A-B:S`` terms (S > 0), every index below MaxArraySize,
empty terms skipped, duplicates merged. The throttle after ``%`` is read the
way SLURM's ``atoi`` reads it: leading digits (``%2x`` is 2), anything else,
``%0``, a negative number or a bare ``%`` meaning no throttle.

An array is kept as an :class:`IndexSet`: sorted, disjoint arithmetic ranges,
so ``0-999999`` costs three integers, not a million, and taking the next
index to start is O(1).

Formatting is squeue's pending remainder (``bit_fmt``): runs of consecutive
indices as ``a-b``, others listed: ``--array=0-15:4%2`` shows as
``0,4,8,12%2`` (squeue prints ``34_[0,4,8,12%2]``; it never uses ``:step``).
"""

from __future__ import annotations

import bisect
import re
from typing import Iterable, Iterator, Optional

from fleetslurm.errors import InvalidValue

__all__ = ["IndexSet", "parse_array", "parse_array_set", "format_array", "parse_throttle"]

_TERM_RE = re.compile(r"\s*([0-9]+)(?:-([0-9]+)(?::([0-9]+))?)?\s*")
_ATOI_RE = re.compile(r"\s*([+-]?[0-9]+)")

#: a range of indices: (first, last, step), last inclusive and reached by step
Range = tuple[int, int, int]


class IndexSet:
    """A set of array indices as sorted, disjoint arithmetic ranges.

    Mutable (``pop_first``, ``discard``, ``add``); :meth:`to_text` gives an
    ``--array`` string that :meth:`from_text` reads back (how the store keeps
    an array's not-yet-started indices).
    """

    __slots__ = ("_ranges", "_count")

    def __init__(self, ranges: Iterable[Range] = ()) -> None:
        self._ranges: list[Range] = _merge(sorted(ranges))
        self._count = sum((hi - lo) // step + 1 for lo, hi, step in self._ranges)

    @classmethod
    def of(cls, indices: Iterable[int]) -> "IndexSet":
        """The set of the given indices (any order, duplicates allowed)."""
        return cls(_compress(sorted(set(indices))))

    @classmethod
    def from_text(cls, text: str) -> "IndexSet":
        """Read :meth:`to_text` (any throttle-free ``--array`` spec, in fact)."""
        return cls(_terms(text, text, None))

    def to_text(self) -> str:
        """``0-99``, ``1-7:2,10``: compact, and valid ``--array`` syntax."""
        return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" if step == 1 else f"{lo}-{hi}:{step}"
                        for lo, hi, step in self._ranges)

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __iter__(self) -> Iterator[int]:
        for lo, hi, step in self._ranges:
            yield from range(lo, hi + 1, step)

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int):
            return False
        i = bisect.bisect_right(self._ranges, (index, float("inf"))) - 1
        if i < 0:
            return False
        lo, hi, step = self._ranges[i]
        return lo <= index <= hi and (index - lo) % step == 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IndexSet) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"IndexSet({self.to_text()!r})"

    def copy(self) -> "IndexSet":
        new = IndexSet()
        new._ranges, new._count = list(self._ranges), self._count
        return new

    @property
    def ranges(self) -> tuple[Range, ...]:
        return tuple(self._ranges)

    def first(self) -> int:
        """The smallest index. Raises IndexError when empty."""
        return self._ranges[0][0]

    def last(self) -> int:
        """The largest index. Raises IndexError when empty."""
        return self._ranges[-1][1]

    def step(self) -> int:
        """SLURM_ARRAY_TASK_STEP: the common step when the indices form one
        arithmetic progression, else 1."""
        merged = _merge(list(self._ranges))  # pops may have left a progression in pieces
        return merged[0][2] if len(merged) == 1 else 1

    def pop_first(self) -> int:
        """Remove and return the smallest index (O(1))."""
        lo, hi, step = self._ranges[0]
        if lo == hi:
            del self._ranges[0]
        else:
            self._ranges[0] = (lo + step, hi, step) if lo + step < hi else (hi, hi, 1)
        self._count -= 1
        return lo

    def discard(self, index: int) -> bool:
        """Remove ``index``; True if it was there."""
        if index not in self:
            return False
        i = bisect.bisect_right(self._ranges, (index, float("inf"))) - 1
        lo, hi, step = self._ranges[i]
        pieces = [r for r in (_range(lo, index - step, step), _range(index + step, hi, step)) if r]
        self._ranges[i:i + 1] = pieces
        self._count -= 1
        return True

    def add(self, index: int) -> None:
        """Insert ``index`` (no-op if present)."""
        if index in self:
            return
        self._ranges = _merge(sorted([*self._ranges, (index, index, 1)]))
        self._count += 1

    def format(self, throttle: Optional[int] = None) -> str:
        """squeue's form: ``0-3,7,9`` (runs of consecutive indices), ``%N`` when throttled."""
        return format_array(self, throttle)


def _range(lo: int, hi: int, step: int) -> Optional[Range]:
    if hi < lo:
        return None
    return (lo, hi, step) if lo != hi else (lo, lo, 1)


def _compress(ordered: list[int]) -> list[Range]:
    """Sorted unique indices -> maximal arithmetic runs, left to right."""
    out: list[Range] = []
    i, n = 0, len(ordered)
    while i < n:
        if i + 1 == n:
            out.append((ordered[i], ordered[i], 1))
            break
        step = ordered[i + 1] - ordered[i]
        j = i + 1
        while j + 1 < n and ordered[j + 1] - ordered[j] == step:
            j += 1
        out.append((ordered[i], ordered[j], step))
        i = j + 1
    return out


def _merge(ranges: list[Range]) -> list[Range]:
    """Sorted ranges -> disjoint and merged where two form one progression."""
    if not ranges:
        return []
    overlap = any(b[0] <= a[1] for a, b in zip(ranges, ranges[1:]))
    if overlap:  # rare ("1-5,3-9"): settle it by expansion
        return _compress(sorted({i for lo, hi, s in ranges for i in range(lo, hi + 1, s)}))
    out = [ranges[0]]
    for lo, hi, step in ranges[1:]:
        plo, phi, pstep = out[-1]
        gap = lo - phi
        if plo == phi and lo == hi:
            out[-1] = (plo, lo, gap)  # two singletons: a progression of two
        elif plo == phi and gap == step:
            out[-1] = (plo, hi, step)
        elif lo == hi and gap == pstep:
            out[-1] = (plo, lo, pstep)
        elif step == pstep and gap == step:
            out[-1] = (plo, hi, step)
        else:
            out.append((lo, hi, step))
    return out


def _bad(text: str, why: str) -> InvalidValue:
    return InvalidValue(f'Invalid job array specification: "{text}" ({why})')


def _terms(spec: str, text: str, max_array_size: Optional[int]) -> list[Range]:
    terms: list[Range] = []
    for term in spec.split(","):
        if not term.strip():
            continue  # SLURM skips empty terms: "1,,2" is 1 and 2
        match = _TERM_RE.fullmatch(term)
        if not match:
            raise _bad(text, f"{term.strip()!r} is not N, A-B or A-B:STEP")
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        step = int(match.group(3)) if match.group(3) is not None else 1
        if hi < lo:
            raise _bad(text, f"range {term.strip()!r} ends before it starts")
        if step < 1:
            raise _bad(text, f"step in {term.strip()!r} must be at least 1")
        if max_array_size is not None and hi >= max_array_size:
            raise _bad(text, f"index {hi} is not below MaxArraySize={max_array_size}")
        hi -= (hi - lo) % step  # the last index the step reaches
        terms.append((lo, hi, step) if lo != hi else (lo, lo, 1))
    return terms


def parse_throttle(text: str) -> Optional[int]:
    """The ``%N`` limit as SLURM reads it (``atoi``): None when absent or not positive."""
    match = _ATOI_RE.match(text)
    value = int(match.group(1)) if match else 0
    return value if value > 0 else None


def parse_array_set(text: str, max_array_size: int = 1001) -> tuple[IndexSet, Optional[int]]:
    """Parse ``-a/--array`` into (indices, throttle or None) without listing them.

    ``0-15``, ``0,6,16-32``, ``0-15:4``, ``1-3,7%2``. Every index must be below
    ``max_array_size`` (SLURM's MaxArraySize, 1001 by default).

    Raises:
        InvalidValue: ``Invalid job array specification: "5-1" (...)``.
    """
    spec, pct, limit = text.partition("%")
    throttle = parse_throttle(limit) if pct else None
    indices = IndexSet(_terms(spec, text, max_array_size))
    if not indices:
        raise _bad(text, "no array indices given")
    return indices, throttle


def parse_array(text: str, max_array_size: int = 1001) -> tuple[list[int], Optional[int]]:
    """Like :func:`parse_array_set`, with the indices listed (sorted, unique)."""
    indices, throttle = parse_array_set(text, max_array_size)
    return list(indices), throttle


def format_array(indices: "Iterable[int] | IndexSet", throttle: Optional[int] = None) -> str:
    """squeue's array index list: ``0-3,7,9`` plus ``%N`` when throttled.

    Indices are sorted and merged first; ``format_array([], None)`` is ``''``.
    Runs of consecutive indices cost O(1) each when given as an IndexSet.
    """
    ranges = indices.ranges if isinstance(indices, IndexSet) else IndexSet.of(indices).ranges
    parts: list[str] = []
    run_lo: Optional[int] = None
    run_hi = 0

    def flush() -> None:
        if run_lo is not None:
            parts.append(str(run_lo) if run_lo == run_hi else f"{run_lo}-{run_hi}")

    for lo, hi, step in ranges:
        if step == 1 or lo == hi:
            if run_lo is not None and lo == run_hi + 1:
                run_hi = hi
                continue
            flush()
            run_lo, run_hi = lo, hi
            continue
        for i in range(lo, hi + 1, step):  # bit_fmt lists a stepped range index by index
            if run_lo is not None and i == run_hi + 1:
                run_hi = i
                continue
            flush()
            run_lo, run_hi = i, i
    flush()
    body = ",".join(parts)
    return f"{body}%{throttle}" if throttle else body

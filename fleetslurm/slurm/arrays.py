"""Job array index specifications: ``sbatch --array=0-15:4%2``.

Parsing follows what slurm-wlm 22.05.8 accepts (the controller's
``bit_unfmt`` of the index list after sbatch strips ``%N``): comma separated
``N``, ``A-B`` and ``A-B:S`` terms (S > 0), every index below MaxArraySize,
empty terms skipped, duplicates merged. ``%0`` (or a bare ``%``) means no
throttle, as SLURM's ``max_run_tasks == 0`` does.

Formatting is squeue's pending remainder (``bit_fmt``): runs of consecutive
indices as ``a-b``, others listed: ``--array=0-15:4%2`` shows as
``0,4,8,12%2`` (squeue prints ``34_[0,4,8,12%2]``; it never uses ``:step``).
"""

from __future__ import annotations

import re

from fleetslurm.errors import InvalidValue

__all__ = ["parse_array", "format_array"]

_TERM_RE = re.compile(r"\s*([0-9]+)(?:-([0-9]+)(?::([0-9]+))?)?\s*")


def _bad(text: str, why: str) -> InvalidValue:
    return InvalidValue(f'Invalid job array specification: "{text}" ({why})')


def parse_array(text: str, max_array_size: int = 1001) -> tuple[list[int], int | None]:
    """Parse ``-a/--array`` into (sorted unique indices, throttle or None).

    ``0-15``, ``0,6,16-32``, ``0-15:4``, ``1-3,7%2``. Every index must be below
    ``max_array_size`` (SLURM's MaxArraySize, 1001 by default).

    Raises:
        InvalidValue: ``Invalid job array specification: "5-1" (...)``.
    """
    spec, pct, limit = text.partition("%")
    throttle: int | None = None
    if pct:
        limit = limit.strip()
        if limit and not limit.isdigit():
            raise _bad(text, f"the limit after '%' must be a whole number, not {limit!r}")
        throttle = int(limit) if limit and int(limit) > 0 else None
    indices: set[int] = set()
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
        if hi >= max_array_size:
            raise _bad(text, f"index {hi} is not below MaxArraySize={max_array_size}")
        indices.update(range(lo, hi + 1, step))
    if not indices:
        raise _bad(text, "no array indices given")
    return sorted(indices), throttle


def format_array(indices: list[int], throttle: int | None = None) -> str:
    """squeue's array index list: ``0-3,7,9`` plus ``%N`` when throttled.

    Indices are sorted and merged first; ``format_array([], None)`` is ``''``.
    """
    parts: list[str] = []
    ordered = sorted(set(indices))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    body = ",".join(parts)
    return f"{body}%{throttle}" if throttle else body

"""Pure policy helpers: priority order, node features, static fit, placement order.

Nothing here holds state; :mod:`fleetslurm.scheduler.state` and
:mod:`fleetslurm.scheduler.backfill` combine these.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Optional

from fleetslurm.errors import InvalidValue
from fleetslurm.scheduler.events import JobRequest, NodeSpec, PartitionSpec

__all__ = [
    "Vec",
    "Shape",
    "priority_key",
    "shape_of",
    "parse_constraint",
    "constraint_matches",
    "in_partition",
    "static_misfit",
    "capacity",
    "need_of",
    "duration_s",
    "placement_key",
    "compress_hostlist",
]

#: (cpus, mem_mb, gpus): an amount of node resources
Vec = tuple[int, int, int]

#: what decides which nodes could ever run a job:
#: (partition, cpus, mem_mb, gpus, nodelist, exclude, constraint, exclusive)
Shape = tuple[str, int, int, int, frozenset, frozenset, str, bool]


def priority_key(req: JobRequest, partition_priority: int, computed: int = 0) -> tuple:
    """Sort key, smallest first: partition priority desc, admin priority desc,
    multifactor priority desc (``computed``, 0 until a
    :class:`~fleetslurm.scheduler.events.PrioritiesSet` gives one), nice asc,
    submit time asc, job id asc."""
    return (-partition_priority, -req.priority, -computed, req.nice, req.submit_time, req.job_id)


def shape_of(req: JobRequest, partition: str) -> Shape:
    """The part of a request that static placement depends on (``partition`` resolved)."""
    return (partition, max(1, req.cpus), max(0, req.mem_mb), max(0, req.gpus),
            req.nodelist, req.exclude, req.constraint, req.exclusive)


_FEATURE = re.compile(r"^[A-Za-z0-9_.:\-]+$")


def parse_constraint(text: str) -> tuple[frozenset[str], ...]:
    """Parse ``a``, ``a&b``, ``a|b&c`` into alternatives (OR) of required sets (AND).

    ``&`` binds tighter than ``|``, as in SLURM. An empty string is no
    constraint (one alternative requiring nothing). Raises :class:`InvalidValue`.
    """
    text = text.strip()
    if not text:
        return (frozenset(),)
    alternatives = []
    for alt in text.split("|"):
        names = [n.strip() for n in alt.split("&")]
        for n in names:
            if not _FEATURE.match(n):
                raise InvalidValue(
                    f"invalid feature {n!r} in constraint {text!r}: use names joined by & (and) or | (or)"
                )
        alternatives.append(frozenset(names))
    return tuple(alternatives)


def constraint_matches(alternatives: tuple[frozenset[str], ...], features: frozenset[str]) -> bool:
    """Whether a node with ``features`` satisfies one of the alternatives."""
    return any(alt <= features for alt in alternatives)


def in_partition(spec: NodeSpec, partition: str, default_partition: Optional[str]) -> bool:
    """Whether the node belongs to ``partition`` (no partitions listed: the default one)."""
    if spec.partitions:
        return partition in spec.partitions
    return partition == default_partition


def capacity(spec: NodeSpec) -> Vec:
    """All of a node's resources."""
    return (spec.cpus, spec.mem_mb, len(spec.gpu_ids))


def need_of(shape: Shape, spec: NodeSpec) -> Vec:
    """What the job takes on this node: its request, or the whole node if exclusive."""
    if shape[7]:
        return capacity(spec)
    return (shape[1], shape[2], shape[3])


def static_misfit(shape: Shape, spec: NodeSpec, default_partition: Optional[str],
                  alternatives: tuple[frozenset[str], ...]) -> Optional[str]:
    """Why this node can never run a job of this shape (load and up/down ignored), or None."""
    partition, cpus, mem, gpus, nodelist, exclude, _constraint, _excl = shape
    if not in_partition(spec, partition, default_partition):
        return f"not in partition {partition}"
    if nodelist and spec.name not in nodelist:
        return "not in the job's nodelist"
    if spec.name in exclude:
        return "excluded by the job"
    if not constraint_matches(alternatives, spec.features):
        have = ",".join(sorted(spec.features)) or "none"
        return f"features ({have}) do not satisfy {shape[6]!r}"
    if cpus > spec.cpus:
        return f"has {spec.cpus} CPUs, job needs {cpus}"
    if mem > spec.mem_mb:
        return f"has {spec.mem_mb} MB, job needs {mem} MB"
    if gpus > len(spec.gpu_ids):
        return f"has {len(spec.gpu_ids)} GPUs, job needs {gpus}"
    return None


def duration_s(req: JobRequest, partition: Optional[PartitionSpec]) -> float:
    """How long the job may run, in seconds: its time limit, else the partition's
    MaxTime, else infinity (UNLIMITED)."""
    limit = req.time_limit
    if limit is None and partition is not None:
        limit = partition.max_time
    return math.inf if limit is None else float(limit) * 60.0


def placement_key(spec: NodeSpec, needs_gpus: bool, free_cpus_after: int) -> tuple:
    """Node preference, smallest first: lowest weight; for a job without GPUs a node
    without GPUs; best fit (fewest CPUs left free); name."""
    gpu_penalty = 1 if (not needs_gpus and spec.gpu_ids) else 0
    return (spec.weight, gpu_penalty, free_cpus_after, spec.name)


_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def compress_hostlist(names: Iterable[str]) -> str:
    """SLURM's hostlist form: ``node01,node02,node03,gpu`` -> ``gpu,node[01-03]``."""
    groups: dict[tuple[str, int], list[int]] = {}
    plain: list[str] = []
    for name in sorted(set(names)):
        m = _NUMBERED.match(name)
        if m:
            digits = m.group(2)
            width = len(digits) if digits.startswith("0") and len(digits) > 1 else 0
            groups.setdefault((m.group(1), width), []).append(int(digits))
        else:
            plain.append(name)
    for (prefix, width) in [k for k in groups if k[1] == 0]:
        # an unpadded number as long as a padded one belongs to its range: n09,n10 -> n[09-10]
        for n in list(groups[(prefix, 0)]):
            padded = groups.get((prefix, len(str(n))))
            if padded is not None and len(str(n)) > 1:
                padded.append(n)
                groups[(prefix, 0)].remove(n)
        if not groups[(prefix, 0)]:
            del groups[(prefix, 0)]
    parts = list(plain)
    for (prefix, width), nums in groups.items():
        nums.sort()
        if len(nums) == 1:
            parts.append(f"{prefix}{nums[0]:0{width}d}")
            continue
        ranges: list[str] = []
        lo = prev = nums[0]
        for n in nums[1:] + [None]:  # type: ignore[list-item]
            if n is not None and n == prev + 1:
                prev = n
                continue
            ranges.append(f"{lo:0{width}d}" if lo == prev else f"{lo:0{width}d}-{prev:0{width}d}")
            if n is not None:
                lo = prev = n
        parts.append(f"{prefix}[{','.join(ranges)}]")
    return ",".join(sorted(parts))

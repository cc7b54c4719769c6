"""sinfo's ``-o/--format`` language and output, as SLURM 22.05 prints it.

Pure: no I/O, no clock. Rules from SchedMD/slurm ``src/sinfo/opts.c``
(``_parse_format``: same ``strtok`` on ``%`` as squeue), ``src/sinfo/print.c``
(``_print_str``, ``_print_*``, ``_set_part_field_size``/``_set_node_field_size``),
``src/sinfo/sinfo.c`` (how nodes are grouped into lines) and ``sort.c``
(default order ``#P,-t``: partitions in configuration order, then node state
descending; ``-N``: by node name), checked against a real sinfo 22.05.

Grouping: one output line per partition and per set of nodes that agree on
every *grouping* field present in the format (state for ``%t``/``%T``, reason
for ``%E``, features ``%f``, GRES ``%G``, host name ``%n``, address ``%o``).
Numeric fields (``%c``, ``%m``, ``%O``, ``%e``, ``%w``, ``%z``) do not split
a line; they print ``min+`` or ``min-max`` instead. A partition without nodes
still gets a line (``0`` nodes, state ``n/a``).

With the built-in default format (``fmt=None``) the PARTITION column is as
wide as the longest name (plus ``*``), at least 9, and with ``-N`` the
NODELIST column is as wide as the longest node list, at least 9; a format the
user gives (``-o``, ``SINFO_FORMAT``) is taken literally.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Optional

from fleetslurm.model import NodeRecord, PartitionRecord
from fleetslurm.slurm.fmt_common import (Item, convert_whole, features, format_warnings,
                                         join_items, long_format, parse_any, print_str)
from fleetslurm.slurm.hostlist import compress
from fleetslurm.slurm.units import format_datetime, format_squeue_time

__all__ = ["DEFAULT_FORMAT", "DEFAULT_NODE_FORMAT", "LONG_FORMAT", "LONG_NODE_FORMAT",
           "SUMMARIZE_FORMAT", "REASONS_FORMAT", "LONG_REASONS_FORMAT", "LONG_NAMES", "Item",
           "parse_format", "format_warnings", "long_format", "render"]

DEFAULT_FORMAT = "%9P %.5a %.10l %.6D %.6t %N"
DEFAULT_NODE_FORMAT = "%N %.6D %.9P %6t"
# the other built-in formats (src/sinfo/opts.c): -l, -N -l, -s, -R, -R -l
LONG_FORMAT = "%9P %.5a %.10l %.10s %.4r %.8h %.10g %.6D %.11T %N"
LONG_NODE_FORMAT = "%N %.6D %.9P %.11T %4c %.8z %.6m %.8d %.6w %.8f %20E"
SUMMARIZE_FORMAT = "%9P %.5a %.10l %.16F %N"
REASONS_FORMAT = "%20E %9u %19H %N"
LONG_REASONS_FORMAT = "%20E %12U %19H %6t %N"

#: sinfo -O names (lower case) and the ``-o`` letter with the same field and
#: header, checked against sinfo 22.05
LONG_NAMES = {
    "allocnodes": "S", "available": "a", "cluster": "V", "cores": "Y", "cpus": "c",
    "cpusload": "O", "cpusstate": "C", "defaulttime": "L", "disk": "d", "features": "f",
    "features_act": "b", "freemem": "e", "gres": "G", "gresused": "gresused", "groups": "g",
    "maxcpuspernode": "B",
    "memory": "m", "nodeai": "A", "nodeaiot": "F", "nodeaddr": "o", "nodehost": "n",
    "nodelist": "N", "nodes": "D", "oversubscribe": "h", "partition": "P",
    "partitionname": "R", "preemptmode": "M", "priorityjobfactor": "I", "prioritytier": "p",
    "reason": "E", "root": "r", "size": "s", "socketcorethread": "z", "sockets": "X",
    "statecompact": "t", "statelong": "T", "threads": "Z", "time": "l", "timestamp": "H",
    "user": "u", "userlong": "U", "version": "v", "weight": "w",
}

_MIN_FIELD = 9

# node_state_string_compact / node_state_string, lower-cased by sinfo, and the
# numeric value sinfo sorts on (base state | flags).
_STATES = {
    "idle": ("idle", 2), "mix": ("mixed", 5), "alloc": ("allocated", 3),
    "down": ("down", 1), "drain": ("drained", 0x202), "drng": ("draining", 0x205),
    "comp": ("completing", 0x403), "unk": ("unknown", 0), "fail": ("fail", 0x2001),
    "resv": ("reserved", 0x22), "maint": ("maint", 0x8002), "futr": ("future", 6),
    "plnd": ("planned", 0x1000002),
}


#: what ``%all`` stands for: a-z separated by ``|``, then ``|%X `` for each of A-Z
_ALL_FORMAT = ("%a" + "".join("|%" + chr(c) for c in range(ord("b"), ord("z") + 1))
               + "".join("|%" + chr(c) + " " for c in range(ord("A"), ord("Z") + 1)))


def parse_format(fmt: str) -> list[Item]:
    """Parse a sinfo ``-o`` string as sinfo 22.05 does (never raises); a
    string made by :func:`long_format` as ``-O`` text (whose complaint says
    "job format", as sinfo's does)."""
    return parse_any(fmt, _FIELDS, _ALL_FORMAT, "Invalid node format specification: ",
                     LONG_NAMES)


@dataclass
class _Group:
    part: Optional[PartitionRecord]
    part_index: int
    nodes: list = field(default_factory=list)

    @property
    def first(self) -> Optional[NodeRecord]:
        return self.nodes[0] if self.nodes else None


# ---------------------------------------------------------------- helpers

def _num(value: int) -> str:
    """convert_num_unit(UNIT_NONE, exact): 2, 2K (=2048), ..."""
    return convert_whole(value, "_KMGTP")


def _min_max(values: list[int], suffix: bool) -> str:
    lo, hi = min(values), max(values)
    text = _num(lo) if suffix else str(lo)
    return text if lo == hi else text + "+"


def _range(values: list, fmt: Callable[[object], str]) -> str:
    known = [v for v in values if v is not None]
    if len(known) < len(values):
        lo = "N/A"
        hi = fmt(max(known)) if known else "N/A"
    else:
        lo, hi = fmt(min(known)), fmt(max(known))
    return lo if lo == hi else f"{lo}-{hi}"


def _state(node: NodeRecord) -> str:
    """Compact state with sinfo's ``*`` for a node that does not respond."""
    state = str(node.get("state", "unk")).lower().rstrip("*")
    return state + ("*" if node.get("responding") is False else "")


def _state_long(node: NodeRecord) -> str:
    compact = _state(node)
    base = compact.rstrip("*")
    return _STATES.get(base, (base, 0))[0] + compact[len(base):]


def _state_num(node: Optional[NodeRecord]) -> int:
    if node is None:
        return 0
    return _STATES.get(_state(node).rstrip("*"), ("", 0))[1] | (
        0x800 if node.get("responding") is False else 0)


def _other(node: NodeRecord) -> bool:
    base = _state(node).rstrip("*")
    return base in ("down", "drain", "drng", "fail") or base.startswith("drain")


def _cpus_aiot(nodes: list) -> str:
    alloc = idle = other = total = 0
    for n in nodes:
        cpus, used = n.get("cpus", 0), n.get("alloc_cpus", 0)
        alloc, total = alloc + used, total + cpus
        if _other(n):
            other += cpus - used
        else:
            idle += cpus - used
    return f"{alloc}/{idle}/{other}/{total}"


def _nodes_aiot(nodes: list) -> "tuple[int, int, int, int]":
    alloc = idle = other = 0
    for n in nodes:
        base = _state(n).rstrip("*")
        if base in ("alloc", "mix", "comp", "drng"):
            alloc += 1
        elif _other(n):
            other += 1
        else:
            idle += 1
    return alloc, idle, other, len(nodes)


def _gres(node: Optional[NodeRecord]) -> str:
    if node is None:
        return "(null)"
    if node.get("gres"):
        return str(node.get("gres"))
    gpus = node.get("gpus") or 0
    return f"gpu:{gpus}" if gpus else "(null)"


def _gres_used(node: Optional[NodeRecord]) -> str:
    """``-O GresUsed`` as SLURM 22.05 prints it for GPUs declared without a
    type or topology (checked against a real one: ``gpu:0`` idle, ``gpu:2``
    with two given out, ``(null)`` without GPUs)."""
    if node is None or not (node.get("gpus") or 0):
        return "(null)"
    return f"gpu:{node.get('alloc_gpus') or 0}"


def _partition_name(g: _Group, width: int) -> str:
    if g.part is None:
        return "n/a"
    name = g.part.get("name", "")
    if g.part.get("default"):
        if len(name) < width or width == 0:
            name += "*"
        elif width > 0:
            name = name[:width - 1] + "*"
    return name


def _time_limit(minutes: Optional[int], none_text: str) -> str:
    return none_text if minutes is None else format_squeue_time(minutes * 60)


def _sct(nodes: list) -> str:
    sockets = _min_max([n.get("sockets") or n.get("cpus", 1) for n in nodes], True)
    cores = _min_max([n.get("cores_per_socket") or 1 for n in nodes], True)
    threads = _min_max([n.get("threads_per_core") or 1 for n in nodes], True)
    return f"{sockets}:{cores}:{threads}"


def _reason_time(node: Optional[NodeRecord]) -> str:
    when = (node or {}).get("reason_time")
    return format_datetime(when) if when else "Unknown"


def _user_long(node: Optional[NodeRecord]) -> str:
    """``%U``: who set the reason, ``name(uid)``."""
    user = (node or {}).get("reason_user")
    return f"{user}({(node or {}).get('reason_uid')})" if user else "Unknown"


_G = Callable[[_Group], str]

# letter -> (header, header cut?, value(group), grouping key or None)
_FIELDS: dict[str, "tuple[str, bool, _G, Optional[Callable[[NodeRecord], object]]]"] = {
    "a": ("AVAIL", True, lambda g: (g.part or {}).get("state", "n/a").lower() if g.part else "n/a", None),
    "b": ("ACTIVE_FEATURES", True, lambda g: features(g.first), features),
    "c": ("CPUS", True, lambda g: _min_max([n.get("cpus", 0) for n in g.nodes], True) if g.nodes else "0", None),
    "d": ("TMP_DISK", True, lambda g: "0", None),
    "e": ("FREE_MEM", True, lambda g: _range([n.get("free_mem_mb") for n in g.nodes], str) if g.nodes else "N/A", None),
    "f": ("AVAIL_FEATURES", True, lambda g: features(g.first), features),
    "g": ("GROUPS", True, lambda g: "all" if g.part else "n/a", None),
    "h": ("OVERSUBSCRIBE", True, lambda g: "NO", None),
    "l": ("TIMELIMIT", True, lambda g: _time_limit(g.part.get("max_time"), "infinite") if g.part else "n/a", None),
    "m": ("MEMORY", True, lambda g: _min_max([n.get("mem_mb", 0) for n in g.nodes], False) if g.nodes else "0", None),
    "n": ("HOSTNAMES", False, lambda g: compress([n.get("hostname") or n.get("name") for n in g.nodes]),
          lambda n: n.get("hostname") or n.get("name")),
    "o": ("NODE_ADDR", False, lambda g: compress([n.get("hostname") or n.get("name") for n in g.nodes]),
          lambda n: n.get("hostname") or n.get("name")),
    "p": ("PRIO_TIER", True, lambda g: str((g.part or {}).get("priority", 1) or 1), None),
    "r": ("ROOT", True, lambda g: "no" if g.part else "n/a", None),
    "s": ("JOB_SIZE", True, lambda g: "1-infinite" if g.part else "n/a", None),
    "t": ("STATE", True, lambda g: _state(g.first) if g.first else "n/a", _state),
    "u": ("USER", True, lambda g: str((g.first or {}).get("reason_user") or "Unknown"),
          lambda n: n.get("reason_user")),
    "v": ("VERSION", True, lambda g: str((g.first or {}).get("version") or "N/A"), None),
    "w": ("WEIGHT", True, lambda g: _min_max([n.get("weight") or 1 for n in g.nodes], False) if g.nodes else "0", None),
    "z": ("S:C:T", True, lambda g: _sct(g.nodes) if g.nodes else "0:0:0", None),
    "A": ("NODES(A/I)", True, lambda g: "%d/%d" % _nodes_aiot(g.nodes)[:2], None),
    "B": ("MAX_CPUS_PER_NODE", True, lambda g: "UNLIMITED", None),
    "C": ("CPUS(A/I/O/T)", True, lambda g: _cpus_aiot(g.nodes), None),
    "D": ("NODES", True, lambda g: str(len(g.nodes)), None),
    "E": ("REASON", True, lambda g: str((g.first or {}).get("reason") or "none"),
          lambda n: n.get("reason") or ""),
    "F": ("NODES(A/I/O/T)", True, lambda g: "%d/%d/%d/%d" % _nodes_aiot(g.nodes), None),
    "G": ("GRES", True, lambda g: _gres(g.first), _gres),
    # -O only (no -o letter); like GRES, a different value starts a new line
    "gresused": ("GRES_USED", True, lambda g: _gres_used(g.first), _gres_used),
    "H": ("TIMESTAMP", True, lambda g: _reason_time(g.first), lambda n: n.get("reason_time")),
    "I": ("PRIO_JOB_FACTOR", True, lambda g: "1", None),
    "L": ("DEFAULTTIME", True, lambda g: _time_limit(g.part.get("default_time"), "n/a") if g.part else "n/a", None),
    "M": ("PREEMPT_MODE", True, lambda g: "OFF", None),
    "N": ("NODELIST", False, lambda g: compress([n.get("name") for n in g.nodes]), None),
    "O": ("CPU_LOAD", True, lambda g: _range([n.get("cpu_load") for n in g.nodes], lambda v: "%.2f" % v)
          if g.nodes else "N/A", None),
    "P": ("PARTITION", True, lambda g: "", None),  # needs the width: see _cell
    "R": ("PARTITION", True, lambda g: g.part.get("name", "") if g.part else "n/a", None),
    "S": ("ALLOCNODES", True, lambda g: "all" if g.part else "n/a", None),
    "T": ("STATE", True, lambda g: _state_long(g.first) if g.first else "n/a", _state),
    "U": ("USER", True, lambda g: _user_long(g.first), lambda n: n.get("reason_user")),
    "V": ("CLUSTER", True, lambda g: "N/A", None),
    "X": ("SOCKETS", True, lambda g: _min_max([n.get("sockets") or n.get("cpus", 1) for n in g.nodes], True)
          if g.nodes else "0", None),
    "Y": ("CORES", True, lambda g: _min_max([n.get("cores_per_socket") or 1 for n in g.nodes], True)
          if g.nodes else "0", None),
    "Z": ("THREADS", True, lambda g: _min_max([n.get("threads_per_core") or 1 for n in g.nodes], True)
          if g.nodes else "0", None),
}


def _groups(items: list[Item], partitions: list[PartitionRecord], nodes: list[NodeRecord],
            node_oriented: bool) -> list[_Group]:
    by_name = {n.get("name"): n for n in nodes}
    keys = [_FIELDS[it.letter][3] for it in items if it.letter and _FIELDS[it.letter][3]]
    groups: list[_Group] = []
    placed: set = set()
    for index, part in enumerate(partitions):
        members = [by_name[name] for name in part.get("nodes") or [] if name in by_name]
        placed.update(n.get("name") for n in members)
        mine: list[_Group] = []
        for node in members:
            if not node_oriented:
                sig = tuple(k(node) for k in keys)
                match = next((g for g in mine if tuple(k(g.nodes[0]) for k in keys) == sig), None)
                if match is not None:
                    match.nodes.append(node)
                    continue
            mine.append(_Group(part, index, [node]))
        groups.extend(mine or [_Group(part, index, [])])
    if node_oriented:
        groups.extend(_Group(None, len(partitions), [n]) for n in nodes if n.get("name") not in placed)
        groups.sort(key=lambda g: _natural_key(g.nodes[0].get("name", "") if g.nodes else ""))
    else:
        groups.sort(key=lambda g: (g.part_index, -_state_num(g.first)))
    return groups


def _natural_key(name: str) -> list:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p]


def _cell(it: Item, group: Optional[_Group], part_width: Optional[int],
          node_width: Optional[int]) -> str:
    header, header_cut, value, _ = _FIELDS[it.letter]  # type: ignore[index]
    width = it.width
    if it.letter in ("P", "R") and part_width is not None:
        width = part_width
    if it.letter in ("N", "n") and node_width is not None:
        width = node_width
    if group is None:
        return print_str(header, width, it.right, header_cut)
    text = _partition_name(group, width) if it.letter == "P" else value(group)
    return print_str(text, width, it.right, True)


def render(fmt: Optional[str], partitions: list[PartitionRecord], nodes: list[NodeRecord], *,
           node_oriented: bool, header: bool = True, fit: Optional[bool] = None) -> str:
    """sinfo's output. ``fmt=None`` means sinfo's built-in default for the mode.

    ``partitions`` in configuration order (the first ``default`` one gets
    ``*``); ``nodes`` in any order. Every line ends with a newline. ``fit``
    (the default for ``fmt=None``) widens the PARTITION column, and with
    ``node_oriented`` the NODELIST one, to their longest value, as sinfo does
    for its built-in formats.
    """
    default = fmt is None if fit is None else fit
    if fmt is None:
        fmt = DEFAULT_NODE_FORMAT if node_oriented else DEFAULT_FORMAT
    items = parse_format(fmt)
    groups = _groups(items, partitions, nodes, node_oriented)
    part_width = node_width = None
    if default:
        part_width = max([_MIN_FIELD] + [len(g.part.get("name", "")) + bool(g.part.get("default"))
                                         for g in groups if g.part])
        if node_oriented:
            node_width = max([_MIN_FIELD] + [len(compress([n.get("name") for n in g.nodes]))
                                             for g in groups])
    rows: list[Optional[_Group]] = ([None] if header else []) + list(groups)
    lines = [join_items(items, lambda it: _cell(it, row, part_width, node_width)) for row in rows]
    return "".join(line + "\n" for line in lines)

"""TRES limit strings as sacctmgr reads and prints them: ``cpu=4,mem=8G,gres/gpu=1``.

Only the TRES a fleet schedules are taken: ``cpu``, ``mem`` (MB; K/M/G/T
suffixes as ``--mem``) and ``gres/gpu``. ``-1`` clears a limit (sacctmgr's
way to remove one), shown as the value ``-1`` in the parsed mapping.
"""

from __future__ import annotations

from fleetslurm.errors import InvalidValue
from fleetslurm.slurm.units import format_mem, parse_mem

__all__ = ["TRES_KEYS", "parse_tres", "format_tres"]

#: in SLURM's TRES id order (cpu=1, mem=2, gres/gpu=1001), which is how it prints them
TRES_KEYS = ("cpu", "mem", "gres/gpu")
_ALIASES = {"cpu": "cpu", "cpus": "cpu", "mem": "mem", "memory": "mem", "gres/gpu": "gres/gpu",
            "gpu": "gres/gpu"}


def parse_tres(text: str, what: str = "TRES") -> dict[str, int]:
    """``cpu=4,mem=8G,gres/gpu=1`` -> ``{"cpu": 4, "mem": 8192, "gres/gpu": 1}``
    (``-1``: no limit). InvalidValue names the bad item."""
    out: dict[str, int] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        name, eq, value = item.partition("=")
        key = _ALIASES.get(name.strip().lower())
        if not eq or key is None:
            raise InvalidValue(f"invalid {what} {item!r}: use cpu=N, mem=SIZE (8G, 500M) or "
                               "gres/gpu=N, joined by commas")
        value = value.strip()
        if value == "-1":
            out[key] = -1
            continue
        try:
            out[key] = parse_mem(value, option=what) if key == "mem" else int(value, 10)
        except (InvalidValue, ValueError):
            raise InvalidValue(f"invalid {what} {item!r}: the value must be a whole number"
                               + (" with an optional K, M, G or T suffix" if key == "mem" else "")
                               + ", or -1 for no limit") from None
        if out[key] < 0:
            raise InvalidValue(f"invalid {what} {item!r}: the value must not be negative "
                               "(-1 removes the limit)")
    return out


def format_tres(limits: dict[str, int]) -> str:
    """sacctmgr's form, in TRES id order; limits of -1 or absent are left out."""
    parts = []
    for key in TRES_KEYS:
        v = limits.get(key)
        if v is None or v < 0:
            continue
        parts.append(f"{key}={format_mem(v) if key == 'mem' else v}")
    return ",".join(parts)

"""``sprio``'s formats, as SLURM 22.05's src/sprio (sprio.c, opts.c, print.c) print them.

A job is a dict of :class:`~fleetslurm.scheduler.multifactor.JobFactors`'s
fields; weights are ``{"age", "fairshare", "jobsize", "partition", "qos"}``.
Weighted columns print factor * weight rounded (``%.0f``), normalised ones
the factor with seven decimals (``%.7lf``), as print.c does. The association
and TRES factors and the site factor are 0 here (fleetslurm has no
association priority, ``PriorityWeightTRES`` or site factor plugin).

Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

__all__ = ["Item", "default_format", "LONG_FORMAT", "NORM_LONG_FORMAT", "parse_format",
           "render", "sort_jobs"]

LONG_FORMAT = "%.15i %9r %.8u %.10Y %.10S %.10A %.10B %.10F %.10J %.10P %.10Q %.11N %.20T"
NORM_LONG_FORMAT = "%.15i %9r %.8u %10y %10a %10b %10f %10j %10p %10q %20t"


def default_format(weights: dict[str, int], users: bool, normalized: bool = False) -> str:
    """sprio.c's built-in format: the columns of the factors with a weight."""
    if normalized:
        fmt = "%.15i %9r" + (" %.8u" if users else "") + " %10y"
        cols = (("age", " %10a"), ("fairshare", " %10f"), ("jobsize", " %10j"),
                ("partition", " %10p"), ("qos", " %10q"))
    else:
        fmt = "%.15i %9r" + (" %.8u" if users else "") + " %.10Y %.10S"
        cols = (("age", " %.10A"), ("fairshare", " %.10F"), ("jobsize", " %.10J"),
                ("partition", " %.10P"), ("qos", " %.10Q"))
    return fmt + "".join(c for name, c in cols if weights.get(name))


@dataclass(frozen=True)
class Item:
    """One ``%[.][size]type`` of a format, with the text before the next one."""

    type: str
    width: int
    right: bool
    suffix: str


_ITEM = re.compile(r"^(\.?)(\d*)(.)(.*)$", re.S)
_TYPES = set("aAbBcfFijJnNopPqQrSstuyYtT")


def parse_format(fmt: str) -> tuple[str, list[Item], list[str]]:
    """(prefix, items, errors): a field SLURM does not know is an error message
    (``Invalid job format specification: Z``) and left out, as opts.c does."""
    pieces = fmt.split("%")
    prefix, items, errors = pieces[0], [], []
    for piece in pieces[1:]:
        m = _ITEM.match(piece)
        if not m:
            continue
        dot, width, kind, suffix = m.groups()
        if kind not in _TYPES:
            errors.append(f"Invalid job format specification: {kind}")
            continue
        items.append(Item(kind, int(width) if width else 0, bool(dot), suffix))
    return prefix, items, errors


_HEADERS = {"a": "AGE", "A": "AGE", "b": "ASSOC", "B": "ASSOC", "c": "CLUSTER",
            "f": "FAIRSHARE", "F": "FAIRSHARE", "i": "JOBID", "j": "JOBSIZE", "J": "JOBSIZE",
            "n": "QOSNAME", "N": "NICE", "o": "ACCOUNT", "p": "PARTITION", "P": "PARTITION",
            "q": "QOS", "Q": "QOS", "r": "PARTITION", "S": "SITE", "s": "JOBID",
            "t": "TRES", "T": "TRES", "u": "USER", "y": "PRIORITY", "Y": "PRIORITY"}
_FACTOR = {"a": ("age", "age"), "f": ("fairshare", "fairshare"), "j": ("job_size", "jobsize"),
           "p": ("partition_factor", "partition"), "q": ("qos_factor", "qos")}


def _weighted(job: dict, kind: str, weights: dict[str, int]) -> float:
    field, weight = _FACTOR[kind]
    return float(job[field]) * weights.get(weight, 0)


def _value(kind: str, job: Optional[dict], weights: dict[str, int], cluster: str) -> str:
    if job is None:  # the -w line
        w = {"A": "age", "a": "age", "F": "fairshare", "f": "fairshare", "J": "jobsize",
             "j": "jobsize", "P": "partition", "p": "partition", "Q": "qos", "q": "qos"}
        if kind in w:
            return str(weights.get(w[kind], 0))
        return {"i": "Weights", "s": "Weights", "S": "1", "B": "0", "b": "0",
                "c": cluster}.get(kind, "")
    if kind in ("i", "s"):
        return str(job["job_id"])
    if kind.lower() in _FACTOR:
        if kind.isupper():
            return f"{_weighted(job, kind.lower(), weights):.0f}"
        return f"{float(job[_FACTOR[kind][0]]):.7f}"
    if kind in ("b", "B"):
        return "0.0000000" if kind == "b" else "0"
    if kind == "Y":
        return str(job["priority"])
    if kind == "y":
        return f"{job['priority'] / 0xFFFFFFFF:16.14f}"
    simple: dict[str, Callable[[], Any]] = {
        "c": lambda: cluster, "n": lambda: job["qos"], "N": lambda: job["nice"],
        "o": lambda: job["account"], "r": lambda: job["partition"], "S": lambda: 0,
        "t": lambda: "", "T": lambda: "", "u": lambda: job["user"]}
    return str(simple[kind]())


def _cell(it: Item, text: str) -> str:
    if it.width == 0:
        return text
    if it.right:
        return text.rjust(it.width)[: it.width]
    return text[: it.width].ljust(it.width)


def render(fmt: str, jobs: list[dict], weights: dict[str, int], *, header: bool = True,
           weights_line: bool = False, cluster: str = "") -> tuple[str, list[str]]:
    """(stdout text, error lines). With ``weights_line`` (``-w``) the header and one
    "Weights" line, no jobs, as print_jobs_array does."""
    prefix, items, errors = parse_format(fmt)

    def line(job: Optional[dict], head: bool) -> str:
        out = prefix
        for it in items:
            text = _HEADERS[it.type] if head else _value(it.type, job, weights, cluster)
            out += _cell(it, text) + it.suffix
        return out + "\n"

    text = line(None, True) if header else ""
    if weights_line:
        return text + line(None, False), errors
    for job in jobs:
        text += line(job, False)
    return text, errors


def sort_jobs(jobs: list[dict]) -> list[dict]:
    """sprio's default order: job id ascending (``-S i``)."""
    return sorted(jobs, key=lambda j: j["job_id"])

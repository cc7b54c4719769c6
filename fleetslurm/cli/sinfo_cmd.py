"""``sinfo``: partitions and machines."""

from __future__ import annotations

import os
import sys
import time

from ..errors import UsageError
from .common import help_or_version

PROG = "sinfo"

#: SLURM 22.05's sinfo --usage
USAGE = """\
Usage: sinfo [-abdelNRrsTv] [-i seconds] [-t states] [-p partition] [-n nodes]
             [-S fields] [-o format] [-O Format] [--federation] [--local]
"""


def main(argv: list[str]) -> int:
    from ..slurm.option_env import command_options

    opts, positionals = command_options(PROG, argv, os.environ)
    from ..slurm.option_support import refuse_unsupported

    refuse_unsupported(PROG, opts, argv=argv, environ=os.environ)
    if help_or_version(opts, USAGE):
        return 0
    if positionals:
        raise UsageError(f"Unrecognized option: {positionals[0]}", prog=PROG)
    if opts.get("json"):
        # every machine, whatever filter was given (as SLURM 22.05)
        from ..slurm.json_fmt import sinfo_json
        from .common import client as connect

        with connect() as c:
            sys.stdout.write(sinfo_json(c.call("nodes")["nodes"]))
        return 0
    from ..slurm import sinfo_fmt
    from .common import client, iterate_seconds

    fmt, fit = _format(opts)
    for text in sinfo_fmt.format_warnings(sinfo_fmt.parse_format(fmt)):
        sys.stderr.write(f"sinfo: error: {text}\n")
    iterate = iterate_seconds(opts.get("iterate"), "Error: invalid entry for --iterate={}",
                              PROG)
    while True:
        # a connection per report: the controller closes one idle for 60 s
        with client() as c:
            reply = c.call("nodes")
        sys.stdout.write(_text(opts, reply, fmt, fit, bool(iterate)))
        if iterate is None:
            return 0
        sys.stdout.write("\n")
        sys.stdout.flush()
        time.sleep(iterate)


def _text(opts: dict, reply: dict, fmt: str, fit: bool, iterating: bool) -> str:
    """One sinfo report of the controller's ``nodes`` reply."""
    from ..slurm import sinfo_fmt

    nodes, parts = reply["nodes"], reply["partitions"]
    wanted = opts.get("partition") or os.environ.get("SINFO_PARTITION")
    if wanted:
        names = set(str(wanted).split(","))
        parts = [p for p in parts if p["name"] in names]
    if opts.get("states"):
        states = {s.strip().lower() for s in str(opts["states"]).split(",")}
        nodes = [n for n in nodes if n["state"] in states or n["state"].rstrip("*") in states]
        keep = {n["name"] for n in nodes}
        parts = [dict(p, nodes=[n for n in p["nodes"] if n in keep]) for p in parts]
        parts = [p for p in parts if p["nodes"]]
    if opts.get("nodes"):
        from ..slurm.hostlist import expand

        keep = set(expand(str(opts["nodes"])))
        nodes = [n for n in nodes if n["name"] in keep]
        parts = [dict(p, nodes=[n for n in p["nodes"] if n in keep]) for p in parts]
    node_oriented = bool(opts.get("node_oriented")) and not opts.get("summarize")
    reasons = bool(opts.get("list_reasons")) and not (opts.get("summarize") or node_oriented)
    if opts.get("list_reasons"):
        # -R: the machines that are down, drained or failing, whatever the
        # format, and those a workstation policy keeps new jobs off ("busy")
        nodes = [n for n in nodes if n["state"].rstrip("*~#%$@^-") in _REASON_STATES
                 or n.get("busy")]
        keep = {n["name"] for n in nodes}
        parts = [dict(p, nodes=[n for n in p["nodes"] if n in keep]) for p in parts]
        if reasons and not {it.letter for it in sinfo_fmt.parse_format(fmt)} & {"P", "R"}:
            # one line per reason, not one per partition and reason
            parts = [{"name": "", "nodes": sorted(keep)}] if keep else []
    header = not opts.get("noheader")
    # -l and -i print the time first, above the header (none with -h)
    dated = header and (opts.get("long") or iterating)
    return (time.strftime("%a %b %d %H:%M:%S %Y\n") if dated else "") + sinfo_fmt.render(
        fmt, parts, nodes, node_oriented=node_oriented, header=header, fit=fit)


#: node states sinfo -R lists (down, drained, draining, failing)
_REASON_STATES = frozenset({"down", "drain", "drng", "drained", "draining", "fail", "failg"})


def _format(opts: dict) -> "tuple[str, bool]":
    """sinfo's format and whether its PARTITION and NODELIST columns widen to
    fit (built-in formats only), in sinfo's order: ``-O``, ``-o``, ``-s``,
    ``-N``, ``-R`` (each ``-l`` where it has one), ``SINFO_FORMAT``, the
    default."""
    from ..slurm import sinfo_fmt

    long = bool(opts.get("long"))
    if opts.get("format_long"):
        return sinfo_fmt.long_format(str(opts["format_long"])), False
    if opts.get("format"):  # -o, or SINFO_FORMAT when none of -s -N -R is given
        return str(opts["format"]), False
    if opts.get("summarize"):
        return sinfo_fmt.SUMMARIZE_FORMAT, True
    if opts.get("node_oriented"):
        return (sinfo_fmt.LONG_NODE_FORMAT if long else sinfo_fmt.DEFAULT_NODE_FORMAT), True
    if opts.get("list_reasons"):
        return (sinfo_fmt.LONG_REASONS_FORMAT if long else sinfo_fmt.REASONS_FORMAT), False
    return (sinfo_fmt.LONG_FORMAT if long else sinfo_fmt.DEFAULT_FORMAT), True


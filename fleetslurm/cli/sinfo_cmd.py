"""``sinfo``: partitions and machines."""

from __future__ import annotations

import os
import sys

from ..errors import UsageError

PROG = "sinfo"


def main(argv: list[str]) -> int:
    from ..slurm.option_env import command_options

    opts, positionals = command_options(PROG, argv, os.environ)
    if opts.get("version"):
        sys.stdout.write("slurm 22.05.8 (fleetslurm)\n")
        return 0
    if positionals:
        raise UsageError(f"Unrecognized option: {positionals[0]}", prog=PROG)
    from .common import client

    with client() as c:
        reply = c.call("nodes")
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
    from ..slurm import sinfo_fmt

    node_oriented = bool(opts.get("node_oriented"))
    fmt = opts.get("format") or None  # None: sinfo's own default, widened to fit names
    if fmt is not None:
        for text in sinfo_fmt.format_warnings(sinfo_fmt.parse_format(str(fmt))):
            sys.stderr.write(text + "\n")
    sys.stdout.write(sinfo_fmt.render(None if fmt is None else str(fmt), parts, nodes,
                                      node_oriented=node_oriented,
                                      header=not opts.get("noheader")))
    return 0

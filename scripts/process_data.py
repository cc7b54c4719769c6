#!/usr/bin/env python3
"""Aggregate a CSV file by a key column: per group, the count, sum and mean
of a value column. Writes the table to ``--output`` (a CSV file in the
working directory) and prints a JSON summary on stdout.

DataBench's single-job example::

    DataBenchSLURM().submit_data_processing_job(
        "scripts/process_data.py", partition="debug", cpus=1, memory="256M",
        time_limit="5:00", args=["sales.csv", "--group-by", "region", "--value", "amount",
                                 "--output", "by_region.csv"], outputs=["by_region.csv"])

The input file travels to the machine and ``by_region.csv`` comes back, also
where the machines share no filesystem. Standard library only.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import sys


def aggregate(path: str, key: str, value: str) -> dict[str, dict[str, float]]:
    groups: dict[str, dict[str, float]] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        names = reader.fieldnames or []
        for col in (key, value):
            if col not in names:
                raise ValueError(f"no column {col!r} (columns: {', '.join(names)})")
        for lineno, row in enumerate(reader, start=2):
            try:
                amount = float(row[value])
            except (TypeError, ValueError):
                raise ValueError(f"line {lineno}: {value}={row[value]!r} is not a number") \
                    from None
            g = groups.setdefault(row[key], {"count": 0, "sum": 0.0})
            g["count"] += 1
            g["sum"] += amount
    for g in groups.values():
        g["mean"] = round(g["sum"] / g["count"], 6)
        g["sum"] = round(g["sum"], 6)
    return dict(sorted(groups.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="a CSV file with a header line")
    parser.add_argument("--group-by", required=True, help="the key column")
    parser.add_argument("--value", required=True, help="the numeric column to aggregate")
    parser.add_argument("--output", help="write the table here (CSV)")
    args = parser.parse_args(argv)
    try:
        groups = aggregate(args.input, args.group_by, args.value)
    except (OSError, ValueError, csv.Error) as exc:
        print(f"process_data.py: error: {args.input}: {exc}", file=sys.stderr)
        return 1
    if args.output:
        tmp = args.output + ".tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow([args.group_by, "count", "sum", "mean"])
            for name, g in groups.items():
                w.writerow([name, g["count"], g["sum"], g["mean"]])
        os.replace(tmp, args.output)
    print(json.dumps({"input": os.path.basename(args.input), "groups": groups,
                      "output": args.output, "host": socket.gethostname()}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

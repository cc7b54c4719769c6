#!/usr/bin/env python3
"""Summarise one CSV file: rows, columns, and count/mean/min/max/stdev of
every numeric column, printed as one JSON object on stdout.

DataBench's batch example: ``DataBenchSLURM().submit_batch_processing(files,
"scripts/process_file.py")`` runs it once per file, each in its own task of
one job array. Standard library only, so any machine with python3 runs it.

    python3 scripts/process_file.py data.csv [--columns price,volume]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import socket
import sys


def numeric_columns(rows: list[dict], names: list[str]) -> dict[str, list[float]]:
    """The columns whose every non-empty cell is a number, as floats."""
    out: dict[str, list[float]] = {}
    for name in names:
        values = []
        for row in rows:
            cell = (row.get(name) or "").strip()
            if not cell:
                continue
            try:
                value = float(cell)
            except ValueError:
                break
            if math.isfinite(value):
                values.append(value)
        else:
            if values:
                out[name] = values
    return out


def stats(values: list[float]) -> dict[str, float]:
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return {"count": n, "mean": round(mean, 6), "min": min(values), "max": max(values),
            "stdev": round(math.sqrt(var), 6)}


def summarise(path: str, columns: list[str] | None = None) -> dict:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise ValueError("it has no header line")
        names = list(reader.fieldnames)
        rows = list(reader)
    if columns:
        unknown = [c for c in columns if c not in names]
        if unknown:
            raise ValueError(f"no column {', '.join(unknown)} (columns: {', '.join(names)})")
        names = columns
    numeric = numeric_columns(rows, names)
    return {"file": os.path.basename(path), "rows": len(rows), "columns": names,
            "stats": {name: stats(vals) for name, vals in numeric.items()},
            "host": socket.gethostname(),
            "task": os.environ.get("SLURM_ARRAY_TASK_ID")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="a CSV file with a header line")
    parser.add_argument("--columns", help="comma-separated columns to summarise (default all)")
    args = parser.parse_args(argv)
    try:
        result = summarise(args.file, args.columns.split(",") if args.columns else None)
    except (OSError, ValueError, csv.Error) as exc:
        print(f"process_file.py: error: {args.file}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Read one symbol's price CSV and print it as one JSON object.

Input: a CSV file with a header row. The ``date`` column (when present) is
kept as text; every other column must hold numbers (an empty cell is NaN).
Prints ``{"symbol": ..., "rows": N, "columns": {"date": [...], "close":
[...], ...}}`` in the file's column order.

This is DataBench's built-in analysis type ``import_prices``::

    bench = DataBenchSLURM()           # data_dir: where <SYMBOL>.csv files are
    ids = bench.submit_parallel_analysis(["AAPL", "MSFT"], "import_prices")
    bench.wait_for_jobs(ids)           # then: bench.prices.load("/prices/AAPL")

Each task runs ``python3 import_prices.py SYMBOL DATA_DIR/SYMBOL.csv`` on a
machine (the file travels with it where no filesystem is shared); the
DataBench that submitted them writes each completed task's columns into its
ObjectSerializer store as the entry ``/prices/SYMBOL`` (numeric columns as
float64 arrays) when it waits for them. Standard library only.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys


def read_prices(path: str) -> dict[str, list]:
    """The file's columns by name, in file order; ValueError naming the
    line and column of a cell that is not a number."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise ValueError("no header row (expected e.g. date,close)")
        names = [h.strip() for h in header]
        if len(set(names)) != len(names) or "" in names:
            raise ValueError(f"header {','.join(header)!r}: column names must be "
                             "non-empty and distinct")
        columns: dict[str, list] = {n: [] for n in names}
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(names):
                raise ValueError(f"line {lineno}: {len(row)} cells, the header has "
                                 f"{len(names)}")
            for name, cell in zip(names, row):
                if name == "date":
                    columns[name].append(cell.strip())
                    continue
                text = cell.strip()
                try:
                    columns[name].append(float(text) if text else math.nan)
                except ValueError:
                    raise ValueError(f"line {lineno}: {name}={cell!r} is not a number") \
                        from None
    if not columns[names[0]]:
        raise ValueError("no rows after the header")
    return columns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("symbol")
    parser.add_argument("prices", help="CSV with a header row (date, close, ...)")
    args = parser.parse_args(argv)
    try:
        columns = read_prices(args.prices)
    except (OSError, ValueError, csv.Error) as exc:
        print(f"import_prices.py: error: {args.symbol}: {args.prices}: {exc}", file=sys.stderr)
        return 1
    rows = len(next(iter(columns.values())))
    # NaN is not JSON: empty cells travel as null
    out = {n: [None if isinstance(v, float) and math.isnan(v) else v for v in vals]
           for n, vals in columns.items()}
    print(json.dumps({"symbol": args.symbol, "rows": rows, "columns": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

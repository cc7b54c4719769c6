#!/usr/bin/env python3
"""Backtest a moving-average crossover strategy on one symbol's prices.

Input: a CSV file with ``date`` and ``close`` columns (oldest first). The
strategy holds the symbol while the fast moving average is above the slow
one. Prints one JSON object: the strategy's total return, buy-and-hold's,
the number of trades, the maximum drawdown and an annualised Sharpe ratio.

As a DataBench analysis type (a script analysis)::

    bench.register_analysis("backtest", "scripts/backtest.py")
    bench.submit_parallel_analysis(["AAPL", "MSFT"], "backtest", data="prices/")

which runs ``python3 backtest.py SYMBOL prices/SYMBOL.csv`` per symbol, each
in its own task of one job array. Standard library only.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import socket
import sys


def read_closes(path: str) -> list[float]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if "close" not in (reader.fieldnames or []):
            raise ValueError(f"no 'close' column (columns: {', '.join(reader.fieldnames or [])})")
        closes = []
        for lineno, row in enumerate(reader, start=2):
            try:
                closes.append(float(row["close"]))
            except ValueError:
                raise ValueError(f"line {lineno}: close={row['close']!r} is not a number") \
                    from None
    if len(closes) < 2:
        raise ValueError("fewer than two prices")
    return closes


def moving_average(values: list[float], window: int) -> list[float | None]:
    out: list[float | None] = [None] * len(values)
    total = 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        if i >= window - 1:
            out[i] = total / window
    return out


def backtest(symbol: str, closes: list[float], fast: int = 5, slow: int = 20) -> dict:
    """Positions are decided on day t's close and earn day t+1's return."""
    if not 0 < fast < slow:
        raise ValueError(f"need 0 < fast < slow, got fast={fast} slow={slow}")
    f_ma, s_ma = moving_average(closes, fast), moving_average(closes, slow)
    equity, peak, max_dd, trades, held = 1.0, 1.0, 0.0, 0, False
    daily = []
    for t in range(len(closes) - 1):
        want = f_ma[t] is not None and s_ma[t] is not None and f_ma[t] > s_ma[t]
        if want != held:
            trades += 1
            held = want
        r = closes[t + 1] / closes[t] - 1 if held else 0.0
        daily.append(r)
        equity *= 1 + r
        peak = max(peak, equity)
        max_dd = max(max_dd, 1 - equity / peak)
    mean = sum(daily) / len(daily)
    sd = math.sqrt(sum((r - mean) ** 2 for r in daily) / max(1, len(daily) - 1))
    return {"symbol": symbol, "days": len(closes), "trades": trades,
            "total_return": round(equity - 1, 6),
            "buy_and_hold": round(closes[-1] / closes[0] - 1, 6),
            "max_drawdown": round(max_dd, 6),
            "sharpe": round(mean / sd * math.sqrt(252), 4) if sd > 0 else 0.0,
            "fast": fast, "slow": slow}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("symbol")
    parser.add_argument("prices", help="CSV with date and close columns")
    parser.add_argument("--fast", type=int, default=5)
    parser.add_argument("--slow", type=int, default=20)
    args = parser.parse_args(argv)
    try:
        result = backtest(args.symbol, read_closes(args.prices), args.fast, args.slow)
    except (OSError, ValueError, csv.Error) as exc:
        print(f"backtest.py: error: {args.symbol}: {args.prices}: {exc}", file=sys.stderr)
        return 1
    result["host"] = socket.gethostname()
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

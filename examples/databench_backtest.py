"""DataBench: backtest a moving-average crossover strategy on many symbols.

    python examples/databench_backtest.py [WORKDIR]

It generates a year of daily prices per symbol (a random walk with drift)
as CSV files, registers scripts/backtest.py as the analysis type
"backtest", and runs it for every symbol and two parameter sets, each as
one job array. Then it ranks the symbols by the strategy's Sharpe ratio.
"""

import csv
import math
import random
import sys
import tempfile
from pathlib import Path

from fleetslurm.databench import DataBenchSLURM

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
SYMBOLS = ["ALFA", "BRVO", "CHRL", "DLTA", "ECHO", "FXTR", "GOLF", "HTEL"]


def generate_prices(directory: Path, days: int = 252) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for k, sym in enumerate(SYMBOLS):
        rng = random.Random(1000 + k)
        price, drift = 50.0 + 10 * k, 0.0004 * (k - 3)
        with open(directory / f"{sym}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["date", "close"])
            for day in range(days):
                price *= math.exp(rng.gauss(drift, 0.015))
                w.writerow([f"2024-{1 + day // 21:02d}-{1 + day % 21:02d}", round(price, 4)])


def main(workdir: Path) -> int:
    generate_prices(workdir / "prices")
    bench = DataBenchSLURM(output_dir=workdir / "out")
    bench.register_analysis("backtest", SCRIPTS / "backtest.py")
    runs = {}
    for fast, slow in ((5, 20), (10, 50)):
        runs[(fast, slow)] = bench.submit_parallel_analysis(
            SYMBOLS, "backtest", cpus_per_job=1, memory_per_job="100M", time_limit=10,
            data=workdir / "prices", args=["--fast", str(fast), "--slow", str(slow)])
    every = [i for ids in runs.values() for i in ids]
    print(f"submitted {len(every)} backtests as {len(runs)} job arrays")
    states = bench.wait_for_jobs(every, timeout=600)
    if set(states.values()) != {"COMPLETED"}:
        print("some backtests did not complete:", states, file=sys.stderr)
        return 1
    rows = []
    for (fast, slow), ids in runs.items():
        for r in bench.get_results(ids).values():
            rows.append((r["sharpe"], r["symbol"], fast, slow, r["total_return"],
                         r["buy_and_hold"], r["trades"], r["host"]))
    rows.sort(reverse=True)
    print(f"{'symbol':<6} {'fast':>4} {'slow':>4} {'sharpe':>7} {'return':>8} {'hold':>8} "
          f"{'trades':>6}  host")
    for sharpe, sym, fast, slow, ret, hold, trades, host in rows:
        print(f"{sym:<6} {fast:>4} {slow:>4} {sharpe:>7.2f} {ret:>8.2%} {hold:>8.2%} "
              f"{trades:>6}  {host}")
    return 0


if __name__ == "__main__":
    # outputs go to WORKDIR, else a new temporary directory (never the current one)
    workdir = (Path(sys.argv[1]).absolute() if len(sys.argv) > 1
               else Path(tempfile.mkdtemp(prefix="fleetslurm-databench_backtest-")))
    code = main(workdir)
    print(f"databench_backtest: outputs in {workdir}", file=sys.stderr)
    sys.exit(code)

"""DataBench: parallel analyses of many symbols, as Python functions.

    python examples/databench_parallel.py [WORKDIR]

Two analysis types are registered with ``@bench.analysis(NAME)``; each runs
once per symbol in its own task of one job array, on whichever machine has
room, with the symbol's price file carried along. Results come back as
Python objects.
"""

import csv
import math
import random
import sys
import tempfile
from pathlib import Path

from fleetslurm.databench import DataBenchSLURM

bench = DataBenchSLURM()
SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA"]


@bench.analysis("volatility")
def volatility(symbol, prices_csv):
    """Annualised volatility of daily log returns."""
    with open(prices_csv) as f:
        closes = [float(r["close"]) for r in csv.DictReader(f)]
    rets = [math.log(b / a) for a, b in zip(closes, closes[1:])]
    mean = sum(rets) / len(rets)
    var = sum((r - mean) ** 2 for r in rets) / (len(rets) - 1)
    return {"symbol": symbol, "volatility": math.sqrt(var * 252)}


@bench.analysis("momentum")
def momentum(symbol, prices_csv, lookback=60):
    """Return over the last ``lookback`` days."""
    with open(prices_csv) as f:
        closes = [float(r["close"]) for r in csv.DictReader(f)]
    return {"symbol": symbol, "momentum": closes[-1] / closes[-lookback] - 1}


def make_prices(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for k, sym in enumerate(SYMBOLS):
        rng = random.Random(k)
        price = 100.0
        with open(directory / f"{sym}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["date", "close"])
            for day in range(250):
                price *= math.exp(rng.gauss(0.0003 * (k - 2), 0.01 + 0.004 * k))
                w.writerow([f"day{day:03d}", round(price, 4)])


def main(workdir: Path) -> int:
    make_prices(workdir / "prices")
    vol = bench.submit_parallel_analysis(SYMBOLS, "volatility", cpus_per_job=1,
                                         memory_per_job="200M", data=workdir / "prices")
    mom = bench.submit_parallel_analysis(SYMBOLS, "momentum", cpus_per_job=1,
                                         memory_per_job="200M", data=workdir / "prices",
                                         args=[20])
    print(f"submitted {len(vol) + len(mom)} analyses as 2 job arrays")
    states = bench.wait_for_jobs(vol + mom, timeout=600)
    if set(states.values()) != {"COMPLETED"}:
        print("some analyses did not complete:", states, file=sys.stderr)
        return 1
    v = bench.get_results(vol)
    m = bench.get_results(mom)
    print(f"{'symbol':<6} {'volatility':>10} {'momentum':>9}")
    for a, b in zip(vol, mom):
        print(f"{v[a]['symbol']:<6} {v[a]['volatility']:>10.3f} {m[b]['momentum']:>9.3%}")
    return 0


if __name__ == "__main__":
    # outputs go to WORKDIR, else a new temporary directory (never the current one)
    workdir = (Path(sys.argv[1]).absolute() if len(sys.argv) > 1
               else Path(tempfile.mkdtemp(prefix="fleetslurm-databench_parallel-")))
    code = main(workdir)
    print(f"databench_parallel: outputs in {workdir}", file=sys.stderr)
    sys.exit(code)

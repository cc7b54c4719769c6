"""DataBench's built-in analysis types, registered in every DataBenchSLURM.

- ``backtest``: ``backtest.py SYMBOL CSV`` (``scripts/backtest.py`` in the
  repository is this file), a moving-average crossover backtest; prints JSON.
- ``import_prices``: ``import_prices.py SYMBOL CSV`` reads the symbol's
  price CSV on a machine and prints its columns; the DataBench that
  submitted it writes them into its price store (an ObjectSerializer file)
  as ``/prices/SYMBOL`` when it waits for the tasks.

Both read ``<SYMBOL>.csv`` from the bench's data directory when the
submission gives no ``data``. The scripts are standard library only (any
machine's python3 runs them) and live inside the package so that an
installed fleetslurm has them.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["BUILTIN_DIR", "BUILTINS", "DATA_DIR_ENV", "STORE_ENV", "default_data_dir",
           "default_store", "store_prices"]

BUILTIN_DIR = Path(__file__).resolve().parent

#: name -> (script, description)
BUILTINS: dict[str, tuple[Path, str]] = {
    "backtest": (BUILTIN_DIR / "backtest.py",
                 "moving-average crossover backtest of <SYMBOL>.csv (date, close)"),
    "import_prices": (BUILTIN_DIR / "import_prices.py",
                      "import <SYMBOL>.csv into the price store as /prices/<SYMBOL>"),
}

#: the data directory of the built-in analyses, when DataBenchSLURM(data_dir=) is not given
DATA_DIR_ENV = "FLEETSLURM_DATA_DIR"
#: the price store (an ObjectSerializer file), when DataBenchSLURM(store=) is not given
STORE_ENV = "FLEETSLURM_PRICE_STORE"


def default_data_dir() -> Path:
    """``$FLEETSLURM_DATA_DIR``, else ``data/prices`` under the current directory."""
    return Path(os.environ.get(DATA_DIR_ENV) or os.path.join("data", "prices")).expanduser() \
        .absolute()


def default_store() -> Path:
    """``$FLEETSLURM_PRICE_STORE``, else ``data/prices.h5`` under the current directory."""
    return Path(os.environ.get(STORE_ENV) or os.path.join("data", "prices.h5")).expanduser() \
        .absolute()


def store_prices(store: Path, symbol: str, printed: str) -> str:
    """Write what ``import_prices.py`` printed for ``symbol`` into ``store``
    as ``/prices/<symbol>``: numeric columns as float64 arrays (null -> NaN),
    ``date`` as a list of text. Returns the entry's path. ValueError when the
    text is not the script's output."""
    import numpy as np

    from ...objser import ObjectSerializer

    line = printed.strip().splitlines()[-1] if printed.strip() else ""
    try:
        data: Any = json.loads(line)
        columns = data["columns"]
        if data["symbol"] != symbol or not isinstance(columns, dict):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"import_prices {symbol}: its output is not import_prices.py's "
                         f"JSON: {printed[:200]!r}") from None
    entry: dict[str, Any] = {}
    for name, values in columns.items():
        if name == "date":
            entry[name] = [str(v) for v in values]
        else:
            entry[name] = np.array([math.nan if v is None else float(v) for v in values],
                                   dtype=np.float64)
    store.parent.mkdir(parents=True, exist_ok=True)
    path = f"/prices/{symbol}"
    ObjectSerializer(store).serialize(entry, path)
    return path

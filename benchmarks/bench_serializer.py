"""ObjectSerializer (HDF5 + Blosc2) next to np.save/np.load and pickle, in one run.

For a float64 array of ``--size-mb`` MiB (default 1024: 1 GiB), compressible
(a smooth ``linspace``) and random (uniform in [0, 1)), each method writes
the array to a file (ending with fsync, as ObjectSerializer's atomic write
does itself), reads it back, and the script prints write and read throughput
(MB/s of array data, 1 MB = 10**6 bytes) and the size on disk. Reads come
from the page cache (the file was just written), for every method alike.
The best of ``--repeat`` runs is shown.

Run: ``python benchmarks/bench_serializer.py [--size-mb 1024] [--repeat 1]
[--cname lz4] [--clevel 5] [--dir DIR]``. It needs about three times the
array's size in free memory and once its size on disk.
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fleetslurm.api.objser.serializer import ObjectSerializer  # noqa: E402
from machine import cpu_model  # noqa: E402  (benchmarks/, this script's directory)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def methods(cname: str, clevel: int) -> dict[str, tuple[Callable, Callable]]:
    """name -> (write(array, path), read(path) -> array)."""

    def ours_write(arr: np.ndarray, path: Path) -> None:
        ObjectSerializer(path, cname=cname, clevel=clevel).serialize(arr, "/a")

    def ours_read(path: Path) -> np.ndarray:
        return ObjectSerializer(path).load("/a")

    def npy_write(arr: np.ndarray, path: Path) -> None:
        with open(path, "wb") as f:
            np.save(f, arr)
        _fsync(path)

    def pickle_write(arr: np.ndarray, path: Path) -> None:
        with open(path, "wb") as f:
            pickle.dump(arr, f, protocol=5)
        _fsync(path)

    def pickle_read(path: Path) -> Any:
        with open(path, "rb") as f:
            return pickle.load(f)

    return {
        f"ObjectSerializer (Blosc2 {cname} {clevel})": (ours_write, ours_read),
        "np.save / np.load": (npy_write, np.load),
        "pickle (protocol 5)": (pickle_write, pickle_read),
    }


def measure(arr: np.ndarray, write: Callable, read: Callable, path: Path,
            repeat: int) -> tuple[float, float, int]:
    """Best write and read seconds over ``repeat`` runs, and the file's size."""
    best_w = best_r = float("inf")
    size = 0
    for _ in range(repeat):
        path.unlink(missing_ok=True)
        t0 = time.perf_counter()
        write(arr, path)
        best_w = min(best_w, time.perf_counter() - t0)
        size = path.stat().st_size
        t0 = time.perf_counter()
        back = read(path)
        best_r = min(best_r, time.perf_counter() - t0)
        if not (back.dtype == arr.dtype and back.shape == arr.shape
                and np.array_equal(back, arr)):
            raise SystemExit(f"round trip of {path.name} changed the array")
        del back
    path.unlink(missing_ok=True)
    return best_w, best_r, size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024, help="array size in MiB")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--cname", default="lz4", help="Blosc2 codec (lz4, zstd, blosclz...)")
    ap.add_argument("--clevel", type=int, default=5)
    ap.add_argument("--dir", default=None, help="where to write the files (default: a temp dir)")
    opts = ap.parse_args()

    n = opts.size_mb * 1024 * 1024 // 8
    print(f"# {opts.size_mb} MiB float64 arrays ({n:,} values); {os.cpu_count()} CPUs, "
          f"{cpu_model()}; Python {platform.python_version()}, numpy {np.__version__}")
    arrays = {
        "compressible (linspace)": lambda: np.linspace(0.0, 1000.0, n),
        "random (uniform)": lambda: np.random.default_rng(0).random(n),
    }
    workdir = Path(tempfile.mkdtemp(prefix="bench-ser-", dir=opts.dir))
    try:
        print(f"{'array':<25} {'method':<32} {'write MB/s':>10} {'read MB/s':>10} "
              f"{'on disk MB':>11} {'ratio':>6}")
        for label, make in arrays.items():
            arr = make()
            for name, (write, read) in methods(opts.cname, opts.clevel).items():
                w, r, size = measure(arr, write, read, workdir / "bench.file", opts.repeat)
                print(f"{label:<25} {name:<32} {arr.nbytes / w / 1e6:>10.0f} "
                      f"{arr.nbytes / r / 1e6:>10.0f} {size / 1e6:>11.1f} "
                      f"{arr.nbytes / size:>6.2f}", flush=True)
            del arr
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""ObjectSerializer: Python objects in one HDF5 file, arrays compressed with Blosc2.

    python examples/objectserializer_example.py [FILE]
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

from fleetslurm import ObjectSerializer, Serializer

# FILE, else a file in a new temporary directory (never the current one: the
# store also keeps its lock file, .NAME.lock, beside it)
path = (Path(sys.argv[1]).absolute() if len(sys.argv) > 1
        else Path(tempfile.mkdtemp(prefix="fleetslurm-objectserializer_example-"))
        / "objectserializer_example.h5")
print(f"objectserializer_example: store in {path}", file=sys.stderr)
path.unlink(missing_ok=True)
store = ObjectSerializer(path)

signal = np.sin(np.linspace(0, 100, 1_000_000))           # compresses well
noise = np.random.default_rng(0).standard_normal(200_000)  # does not
store.serialize({"signal": signal, "noise": noise, "meta": {"rate_hz": 1000}}, "/run1/data")
store.serialize(["any", "picklable", {"object": (1, 2)}], "/run1/notes")
store.serialize(np.arange(10), "/scratch")

print("entries:", store.list())
data = store.load("/run1/data")
assert np.array_equal(data["signal"], signal) and data["meta"] == {"rate_hz": 1000}
info = store.info("/run1/data")
print(f"/run1/data: {info.kind}")
store.delete("/scratch")
print("after delete:", store.list())

Serializer.serialize_to_file({"weights": np.ones((3, 3))}, path.with_suffix(".one.h5"))
print("Serializer round trip:", Serializer.deserialize_from_file(path.with_suffix(".one.h5")))
print(f"file size: {path.stat().st_size / 1e6:.2f} MB for "
      f"{(signal.nbytes + noise.nbytes) / 1e6:.1f} MB of arrays")

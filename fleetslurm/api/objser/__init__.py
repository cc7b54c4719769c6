"""ObjectSerializer: Python objects in HDF5 files (:mod:`.serializer`; the
file layout in :mod:`.format`, file access and locking in :mod:`.files`).

Standard library and fleetslurm.errors only at import time; shipped to
nodes as ``fleetslurm_objser.zip`` (:mod:`fleetslurm.api.executor.bigdata`).
"""

from typing import Any as _Any

#: the names of the former module ``fleetslurm.api.objser``, now in :mod:`.serializer`
_FORMER = ("ObjectSerializer", "Serializer", "EntryInfo", "DEFAULT_ENTRY")


def __getattr__(name: str) -> _Any:
    if name in _FORMER:
        from . import serializer

        return getattr(serializer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Calls and results holding large numpy arrays go through ObjectSerializer
(HDF5, Blosc2-compressed, chunked) instead of one pickle.

A call whose arguments hold at least :data:`runner.ARRAY_BYTES` of numpy
arrays is written as ``call_<i>.pkl`` of kind ``H`` (the pickled function and
the name of its data file) plus ``call_<i>.h5`` (entries ``/args`` and
``/kwargs``); a memmap argument is streamed chunk by chunk, never loaded
whole here. A result holding such arrays comes back as ``result_<i>.h5`` the
same way. Nodes have no fleetslurm: the ObjectSerializer modules go with the
runner as ``fleetslurm_objser.zip`` (a private package name, so it cannot
clash with anything the job imports); the job's python needs h5py,
hdf5plugin and numpy for them, and says so when it has not.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import os
import zipfile
from typing import Any, Callable, Mapping, Sequence

from ...errors import SerializationError, SubmitError
from . import runner

__all__ = ["available", "holds_big_arrays", "objser_zip", "write_call_h5", "ZIP_NAME"]

ZIP_NAME = runner.OBJSER_ZIP
_PACKAGE = runner.OBJSER_PACKAGE


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Can this host write ObjectSerializer files (h5py, hdf5plugin, numpy)?"""
    return all(importlib.util.find_spec(m) is not None for m in ("h5py", "hdf5plugin", "numpy"))


def holds_big_arrays(objs: Sequence[Any]) -> bool:
    """Do these objects hold (at the top, or in dicts/lists/tuples) numpy
    arrays of :data:`runner.ARRAY_BYTES` or more in all? numpy is not imported
    for a caller that has not."""
    return runner.array_bytes(objs) >= runner.ARRAY_BYTES


@functools.lru_cache(maxsize=1)
def objser_zip() -> bytes:
    """ObjectSerializer's modules (and the errors they raise) as a zip the
    runner can import as ``_fleetslurm_objser.api.objser.serializer``."""
    api = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    objser = os.path.join(api, "objser")
    files = {
        f"{_PACKAGE}/__init__.py": b"",
        f"{_PACKAGE}/errors.py": os.path.join(os.path.dirname(api), "errors.py"),
        f"{_PACKAGE}/api/__init__.py": b"",
    }
    for name in ("__init__.py", "serializer.py", "files.py", "format.py"):
        files[f"{_PACKAGE}/api/objser/{name}"] = os.path.join(objser, name)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for arcname, src in files.items():
            if isinstance(src, bytes):
                data = src
            else:
                with open(src, "rb") as f:
                    data = f.read()
            # a fixed timestamp: the same modules give the same bytes
            z.writestr(zipfile.ZipInfo(arcname, (2020, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def write_call_h5(call_path: str, fn: Callable, args: Sequence[Any],
                  kwargs: Mapping[str, Any], limit: "int | None") -> None:
    """Write a kind-H call: ``call_path`` (the pickled function and the data
    file's name) and the data file beside it. Raises SerializationError for
    what cannot be stored, SubmitError over ``limit`` bytes in all."""
    from ..objser.serializer import ObjectSerializer
    from .payload import _by_value, _culprit, _name, describe_size, dumps_with_sources

    h5_path = call_path[:-len(".pkl")] + ".h5"
    store = ObjectSerializer(h5_path)
    with _by_value(fn, args, kwargs):
        try:
            head = dumps_with_sources(lambda sources: (fn, os.path.basename(h5_path), sources))
        except Exception as exc:
            raise SerializationError(_culprit(fn, (), {}, exc)) from exc
        try:
            store.serialize(tuple(args), "/args")
            store.serialize(dict(kwargs), "/kwargs")
        except SerializationError as exc:
            raise SerializationError(f"cannot store the arguments of {_name(fn)}: {exc}") \
                from exc
    runner.write_atomic(call_path, runner.header(runner.CALL_MAGIC, b"H") + head)
    size = os.path.getsize(h5_path) + len(head)
    if limit is not None and size > limit:
        raise SubmitError(
            f"the call of {_name(fn)} is {describe_size(size)} stored (compressed), over the "
            f"payload limit of {describe_size(limit)} (Executor(max_payload_bytes=...)); pass "
            "a path to the data instead of the data, or raise the limit")


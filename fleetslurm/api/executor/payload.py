"""Payloads on the submit side: the pickled call going out, the result coming
back. The file format is the runner's (:mod:`fleetslurm.api.executor.runner`, which
nodes run without fleetslurm installed): a magic, a format version and a
kind, then the body. A mismatch raises :class:`SerializationError`.
"""

from __future__ import annotations

import collections
import contextlib
import dis
import functools
import io
import json
import linecache
import os
import types
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

from ...errors import RemoteJobError, SerializationError, SubmitError
from . import runner

__all__ = ["dump_call", "write_call", "read_result", "describe_size", "RESULT_KINDS"]

#: result kinds: V a pickled value, H a value in an HDF5 file beside, E a failure as JSON text
RESULT_KINDS = (b"V", b"H", b"E")


def describe_size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _name(fn: Callable) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def dump_call(fn: Callable, args: Sequence[Any], kwargs: Mapping[str, Any],
              limit: Optional[int] = None) -> bytes:
    """The call file's bytes for ``fn(*args, **kwargs)`` (cloudpickle: lambdas,
    closures and functions defined in ``__main__`` or a notebook travel by
    value). Raises SerializationError naming the part that cannot be pickled,
    SubmitError when the payload is over ``limit`` bytes."""
    if not callable(fn):
        raise SubmitError(f"submit() needs a function to run, got {type(fn).__name__} "
                          f"{fn!r:.60}")
    with _by_value(fn, args, kwargs):
        try:
            body = dumps_with_sources(lambda sources: (fn, tuple(args), dict(kwargs), sources))
        except Exception as exc:
            raise SerializationError(_culprit(fn, args, kwargs, exc)) from exc
    data = runner.header(runner.CALL_MAGIC, b"C") + body
    if limit is not None and len(data) > limit:
        raise SubmitError(
            f"the pickled call of {_name(fn)} is {describe_size(len(data))}, over the payload "
            f"limit of {describe_size(limit)} (Executor(max_payload_bytes=...)); pass a "
            "path to the data (or a smaller slice of it) instead of the data, or raise the "
            "limit")
    return data


#: source lines shipped with a call: a file's lines over this size are left
#: out, and no more than this in all (a traceback without a line beats a
#: huge payload)
SOURCE_FILE_LIMIT = 1 << 20
SOURCE_TOTAL_LIMIT = 4 << 20
_DYNAMIC = "<dynamic-code>"


class _Sources:
    """Stands for the sources while a call is pickled: its reducer runs after
    the parts before it were pickled, so it knows every file they came from."""


def dumps_with_sources(build: Callable[[Any], tuple]) -> bytes:
    """``cloudpickle.dumps(build(sources))`` where code pickled by value keeps
    its file name and ``sources`` (put last in the tuple) becomes those
    files' lines as :mod:`linecache` entries, for the runner to register on
    the machine, so a remote traceback shows the caller's lines.

    cloudpickle 3.x renames every code object it pickles by value to
    ``<dynamic-code>``; 2.x keeps the name but the machine may not have the
    file. One pass: the sources are pickled after the call's code."""
    import cloudpickle

    files: dict[str, set[int]] = {}
    base = cloudpickle.CloudPickler
    reduce_code = base.dispatch_table[types.CodeType]

    def keep_filename(code: types.CodeType):
        # the lines a traceback through this code can show: its own (nested
        # code objects come through here too), not the whole file
        lines = files.setdefault(code.co_filename, set())
        lines.add(code.co_firstlineno)
        lines.update(line for _, line in dis.findlinestarts(code) if line)
        rebuild, fields = reduce_code(code)
        if code.co_filename != _DYNAMIC:
            fields = tuple(code.co_filename if type(f) is str and f == _DYNAMIC else f
                           for f in fields)
        return rebuild, fields

    class Pickler(base):  # type: ignore[misc, valid-type]
        # the C pickler reads dispatch_table once, from the class, at __init__
        dispatch_table = collections.ChainMap(
            {types.CodeType: keep_filename, _Sources: lambda _: (dict, (_sources(files),))},
            base.dispatch_table)

    buf = io.BytesIO()
    Pickler(buf, protocol=cloudpickle.DEFAULT_PROTOCOL).dump(build(_Sources()))
    return buf.getvalue()


def _sources(files: dict[str, set[int]]) -> dict[str, tuple]:
    """linecache entries ``(size, None, lines, name)`` holding the given lines
    of each file (the others blank; a ``None`` mtime: the machine's linecache
    never checks them against its disk)."""
    entries: dict[str, tuple] = {}
    total = 0
    for name in sorted(files):
        text = linecache.getlines(name)
        wanted = sorted(n for n in files[name] if 0 < n <= len(text))
        if not wanted:
            continue
        lines = ["\n"] * wanted[-1]
        for n in wanted:
            lines[n - 1] = text[n - 1]
        size = sum(len(line) for line in lines)
        if size > SOURCE_FILE_LIMIT or total + size > SOURCE_TOTAL_LIMIT:
            continue
        total += size
        entries[name] = (size, None, lines, name)
    return entries


@functools.lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    """Directories of installed code (the standard library, site-packages)."""
    import site
    import sysconfig

    paths = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib",
                                                      "platlib")}
    try:
        paths.update(site.getsitepackages())
        paths.add(site.getusersitepackages())
    except AttributeError:  # a virtualenv's old site.py
        pass
    return tuple(os.path.realpath(p) + os.sep for p in paths if p)


def _ships_by_value(name: str) -> bool:
    """Is module ``name`` the user's own code (or fleetslurm), which the job's
    python cannot import? Such modules are pickled by value, as __main__ is."""
    import sys

    mod = sys.modules.get(name)
    if mod is None or name == "__main__" or name in sys.builtin_module_names:
        return False
    if name.split(".")[0] == "fleetslurm":
        return True  # nodes do not have fleetslurm installed
    path = getattr(mod, "__file__", None)
    if not path:
        return False
    return not os.path.realpath(path).startswith(_installed_roots())


@contextlib.contextmanager
def _by_value(fn: Callable, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Iterator[None]:
    """Pickle the call's own modules by value while it is dumped: a job on a
    machine without the submit host's files cannot import them."""
    import sys

    import cloudpickle

    names = {getattr(fn, "__module__", None)}
    names |= {type(v).__module__ for v in (*args, *kwargs.values())}
    registered = getattr(cloudpickle.cloudpickle, "_PICKLE_BY_VALUE_MODULES", set())
    added = []
    for name in names:
        if name and name not in registered and _ships_by_value(name):
            cloudpickle.register_pickle_by_value(sys.modules[name])
            added.append(sys.modules[name])
    try:
        yield
    finally:
        for mod in added:
            cloudpickle.unregister_pickle_by_value(mod)


def _culprit(fn: Callable, args: Sequence[Any], kwargs: Mapping[str, Any],
             exc: BaseException) -> str:
    """Which part of a call could not be pickled, in words."""
    import cloudpickle

    parts: list[tuple[str, Any]] = [(f"the function {_name(fn)}", fn)]
    parts += [(f"argument {i} of {_name(fn)}", a) for i, a in enumerate(args)]
    parts += [(f"keyword argument {k!r} of {_name(fn)}", v) for k, v in kwargs.items()]
    for what, value in parts:
        try:
            cloudpickle.dumps(value)
        except Exception as inner:
            return (f"cannot pickle {what} (a {type(value).__name__}): "
                    f"{type(inner).__name__}: {inner}; jobs get their function and "
                    "arguments by pickle: pass plain data (or a path) instead")
    return f"cannot pickle the call of {_name(fn)}: {type(exc).__name__}: {exc}"


def write_call(path: str, data: bytes) -> None:
    """A private (0600) call file, written whole."""
    runner.write_atomic(path, data)


def read_result(path: str, job_id: str) -> Any:
    """The value a job returned. Raises RemoteJobError (with the remote
    traceback as text) when the call failed, SerializationError when the file
    is not a result of this format, FileNotFoundError when there is none."""
    with open(path, "rb") as f:
        data = f.read()
    size = runner._HEADER.size
    if len(data) < size:
        raise SerializationError(f"job {job_id}: result file {path} is truncated "
                                 f"({len(data)} bytes); rerun the job")
    magic, version, kind = runner._HEADER.unpack_from(data)
    if magic != runner.RESULT_MAGIC or kind not in RESULT_KINDS:
        raise SerializationError(f"job {job_id}: {path} is not a fleetslurm result file "
                                 f"(magic {magic!r}); was it overwritten?")
    if version != runner.VERSION:
        raise SerializationError(
            f"job {job_id}: result file {path} has format version {version}, this "
            f"fleetslurm reads version {runner.VERSION}; read it with the fleetslurm "
            "version that submitted the job")
    body = memoryview(data)[size:]
    if kind == b"E":
        err = json.loads(bytes(body).decode("utf-8"))
        raise RemoteJobError.from_failure(job_id, "FAILED", err)
    if kind == b"H":
        from ..objser.serializer import ObjectSerializer

        name = json.loads(bytes(body).decode("utf-8"))["file"]
        # the submit side's ObjectSerializer reads the entry of the job's data file
        h5 = os.path.join(os.path.dirname(path), os.path.basename(name))
        return ObjectSerializer(h5).load("/result")
    import cloudpickle  # noqa: F401  (values pickled by value need it importable)
    import pickle

    try:
        return pickle.loads(body)
    except Exception as exc:
        raise SerializationError(
            f"job {job_id}: its result cannot be unpickled here: {type(exc).__name__}: "
            f"{exc}; this python needs the libraries the job's result uses") from exc


def remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass

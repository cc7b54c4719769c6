"""The files under ObjectSerializer: opening and checking them, and replacing
them atomically.

A file is never changed in place. A writer takes an flock on ``.<name>.lock``
beside the file (writers take turns; readers need no lock), builds the new
file as a private temporary ``.<name>.<random>.tmp`` in the same directory,
fsyncs it and renames it over the old one, then fsyncs the directory. A
writer killed at any point leaves the old file whole (and a temporary that
the next writer removes); a reader that opened the old file goes on reading
it whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from ...errors import SerializationError
from . import format as fmt

#: HDF5's chunk cache per open dataset when reading
READ_CACHE_BYTES = 8 << 20


@functools.lru_cache(maxsize=None)
def libs() -> fmt.Libs:
    """Import the heavy modules on first use (``import fleetslurm`` stays light)."""
    import cloudpickle
    import h5py
    import hdf5plugin  # registers the Blosc2 filter with HDF5
    import numpy

    return fmt.Libs(np=numpy, h5py=h5py, hdf5plugin=hdf5plugin, cloudpickle=cloudpickle)


def is_entry(node: Any) -> bool:
    """True for a node written by one ``serialize`` call."""
    # the root carries the magic too, but no kind; items inside entries a kind only
    return fmt.A_MAGIC in node.attrs and fmt.A_KIND in node.attrs


@contextlib.contextmanager
def open_checked(file: Path) -> Iterator[Any]:
    """Open ``file`` read-only and check it is ours, in a version we read."""
    h5py = libs().h5py
    if file.is_dir():
        raise SerializationError(f"{file} is a directory; give the path of an HDF5 file "
                                 "(e.g. results.h5)")
    if not file.exists():
        raise SerializationError(f"no such file: {file}; check the path (nothing has been "
                                 "serialized there)")
    try:
        # no HDF5 file locks: files are only ever replaced, never changed in place;
        # a chunk cache of a few chunks, so that reads of a few rows at a time
        # (iter_blocks) do not decompress a chunk once per read
        f = h5py.File(file, "r", locking=False, rdcc_nbytes=READ_CACHE_BYTES)
    except OSError as exc:
        raise SerializationError(
            f"{file} is not an HDF5 file, so not a fleetslurm object file ({exc}); check "
            "the path (a damaged object file: move it away and write it again)") from exc
    with f:
        check_version(f, str(file))
        yield f


def check_version(node: Any, what: str) -> None:
    """Raise SerializationError unless ``node`` has our magic and format version."""
    try:
        magic = fmt.attr(node, fmt.A_MAGIC)
    except KeyError:
        magic = None
    if magic != fmt.MAGIC:
        found = "" if magic is None else f", found {magic!r}"
        raise SerializationError(
            f"{what} is not a fleetslurm object (no {fmt.A_MAGIC}={fmt.MAGIC!r} attribute"
            f"{found}); it was not written by ObjectSerializer: read it with h5py, or write "
            "a new file")
    try:
        version = int(fmt.attr(node, fmt.A_FORMAT))
    except (KeyError, ValueError, TypeError):
        version = None
    if version != fmt.FORMAT_VERSION:
        hint = ("upgrade fleetslurm here (pip install -U fleetslurm)"
                if version is not None and version > fmt.FORMAT_VERSION
                else "read it with the fleetslurm that wrote it, or write it again")
        raise SerializationError(
            f"{what} has format version {version}, and this fleetslurm reads version "
            f"{fmt.FORMAT_VERSION}: {hint}")


def mark(node: Any) -> None:
    """Give ``node`` (the root or an entry) the magic and the format version."""
    node.attrs[fmt.A_MAGIC] = fmt.MAGIC
    node.attrs[fmt.A_FORMAT] = fmt.FORMAT_VERSION


def atomic_rewrite(file: Path, fill: Callable[[Any], None]) -> None:
    """Replace ``file`` by a new HDF5 file that ``fill(new_file)`` writes;
    ``fill`` may read the old file. On any error the old file stays."""
    with _locked(file):
        _remove_stale_temps(file)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
        os.close(fd)  # mkstemp made it 0600; HDF5 truncates it and keeps the mode
        try:
            with libs().h5py.File(tmp, "w", locking=False) as dst:
                mark(dst)
                fill(dst)
            _fsync(tmp)
            os.replace(tmp, file)
            _fsync(file.parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


@contextlib.contextmanager
def _locked(file: Path) -> Iterator[None]:
    lock = file.parent / f".{file.name}.lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise SerializationError(f"cannot write {file}: {exc.strerror} ({lock}); check the "
                                 "directory exists and is writable") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _remove_stale_temps(file: Path) -> None:
    # every writer holds the lock while its temporary exists: any left now
    # belongs to a writer that died
    for stale in file.parent.glob(f".{file.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


def copy_except(src: Any, dst: Any, skip: str) -> None:
    """Copy every node of ``src`` but ``skip`` (and what is under it) to ``dst``,
    dropping namespace groups left empty. HDF5's object copy moves compressed
    chunks as they are, chunk by chunk."""
    h5py = libs().h5py

    def walk(group: Any) -> None:
        for name, child in group.items():
            path = child.name
            if path == skip or path.startswith(skip + "/"):
                continue
            if isinstance(child, h5py.Group) and not is_entry(child):
                walk(child)
                continue
            parent = dst.require_group(group.name) if group.name != "/" else dst
            src.copy(child, parent, name=name)

    walk(src)


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

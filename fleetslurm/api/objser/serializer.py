"""Python objects in an HDF5 file, numpy arrays compressed with Blosc2.

``ObjectSerializer(file)`` keeps named *entries* in one HDF5 file::

    store = ObjectSerializer("results.h5")
    store.serialize({"x": big_array, "meta": {"n": 3}}, "/run1/data")
    store.load("/run1/data")                    # -> the dict, arrays as numpy
    store.list("/run1")                         # -> ["/run1/data"]
    store.delete("/run1/data")

- numpy arrays (bool, int, uint, float, complex; ndarray or memmap) become
  chunked datasets compressed with Blosc2; they are written and read one
  chunk at a time, so a memmap much larger than memory goes through in
  bounded memory; so does an *iterator* of arrays (a generator, say), stored
  as their concatenation along axis 0. ``load(path, out=memmap)`` and
  ``iter_blocks(path)`` read an array back in bounded memory.
- ``dict``, ``list`` and ``tuple`` (exact types) holding arrays at any depth
  become groups, so each array inside is a dataset of its own; the round trip
  keeps the container types, the order, and dict keys of type str, int,
  float, bool, None and bytes. A dict with other keys, a container holding a
  cycle, or one without arrays is pickled whole. Shared sub-containers come
  back as copies.
- anything else is pickled with cloudpickle (protocol 5: numpy arrays inside
  arbitrary objects are stored beside the pickle as compressed datasets).
  Loading unpickles: load only files you trust, as with pickle.
- any iterator (a generator, ``map``, ``iter(list)``...) is read as a stream
  of arrays; to store other items, pass a list.

The file and every entry carry a magic and a format version, checked on
load. Every change rewrites the file into a private temporary beside it and
renames it into place (after fsync), so a crash never leaves a half-written
entry or file, and readers always see a whole file; writers to one file take
turns through an flock on ``.<name>.lock`` beside it. Files are created 0600.
The rewrite copies the other entries' compressed chunks as they are (no
recompression), so a write costs time in proportion to the whole file: keep
large independent objects in separate files. The layout is in
``fleetslurm.api.objser.format``.

``Serializer`` is the seed's one-object-per-file facade over it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import InvalidValue, SerializationError
from . import files
from . import format as fmt

__all__ = ["ObjectSerializer", "Serializer", "EntryInfo", "DEFAULT_ENTRY"]

#: the Blosc2 codecs ``ObjectSerializer(cname=...)`` accepts
CODECS = ("blosclz", "lz4", "lz4hc", "zlib", "zstd")
#: the entry ``Serializer`` uses, and the default of ``ObjectSerializer``'s methods
DEFAULT_ENTRY = "/object"


def _normalize(path: str) -> str:
    """``"a/b"``, ``"/a/b"`` -> ``"/a/b"``; reject empty, ``.``/``..`` and ``//``."""
    if not isinstance(path, str):
        raise InvalidValue(f"entry path must be a string like '/group/name', not "
                           f"{type(path).__name__}")
    parts = path.strip("/").split("/")
    if not path.strip("/") or any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise InvalidValue(f"invalid entry path {path!r}: write it as '/group/name' (names "
                           "not empty, not '.' or '..', no NUL)")
    return "/" + "/".join(parts)


@dataclass(frozen=True)
class EntryInfo:
    """What ``ObjectSerializer.info`` reports about an entry or an item in one.

    ``shape``, ``dtype``, ``nbytes`` (in memory) and ``stored_bytes`` (on
    disk) are set for arrays only."""

    path: str
    kind: str
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    nbytes: int | None = None
    stored_bytes: int | None = None


class ObjectSerializer:
    """Named entries of Python objects in one HDF5 file (see the module doc).

    ``file`` is the HDF5 file's path; it need not exist before the first
    ``serialize``. The object holds no open file (each call opens and closes
    it), so it can be pickled and shared between processes. ``cname``,
    ``clevel`` and ``chunk_bytes`` set the Blosc2 codec, the level and the
    chunk size for arrays written through this object.
    """

    def __init__(self, file: str | os.PathLike, *, cname: str = "lz4", clevel: int = 5,
                 chunk_bytes: int = 1 << 20):
        self.file = Path(file)
        if cname not in CODECS:
            raise InvalidValue(f"unknown Blosc2 codec {cname!r}; valid codecs are: "
                               f"{', '.join(CODECS)}")
        if not 0 <= clevel <= 9:
            raise InvalidValue(f"clevel {clevel} is out of range: use 0 (no compression) to 9")
        if chunk_bytes < 1024:
            raise InvalidValue(f"chunk_bytes {chunk_bytes} is too small: use at least 1024")
        self.codec = fmt.Codec(cname=cname, clevel=clevel, chunk_bytes=chunk_bytes)

    def __repr__(self) -> str:
        return f"ObjectSerializer({str(self.file)!r})"

    # -- writing ------------------------------------------------------------
    def serialize(self, obj: Any, path: str = DEFAULT_ENTRY) -> str:
        """Store ``obj`` as the entry ``path`` (``"/group/name"``), replacing
        an entry of that name; return the normalized path.

        ``obj`` may be a numpy array or memmap, an iterator of arrays (stored
        as their concatenation along axis 0), a dict/list/tuple of those, or
        any picklable object. Raises SerializationError when ``obj`` cannot
        be pickled, or when ``path`` lies inside another entry or names a
        group holding entries; the file is then unchanged.
        """
        path = _normalize(path)
        self._rewrite(replace=path, obj=obj, keep_others=True)
        return path

    def __setitem__(self, path: str, obj: Any) -> None:
        self.serialize(obj, path)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        """Remove the entry ``path``; with ``recursive=True`` ``path`` may also
        be a group, whose entries are all removed. Space is reclaimed."""
        path = _normalize(path)
        self._rewrite(replace=path, obj=None, keep_others=True, delete=True,
                      recursive=recursive)

    def __delitem__(self, path: str) -> None:
        self.delete(path)

    # -- reading ------------------------------------------------------------
    def load(self, path: str = DEFAULT_ENTRY, *, out: Any = None) -> Any:
        """Return the object stored as ``path``.

        ``path`` names an entry, or an item inside a dict/list/tuple entry by
        its HDF5 name (``/entry/key`` for a plain string key, ``/entry/0``
        for a list item). With ``out`` (a C-contiguous writable numpy array
        or memmap of the entry's shape and dtype, or a wider int or float
        dtype) an array is read into ``out`` one chunk at a time and ``out``
        is returned: memory stays bounded by the chunk size.
        """
        path = _normalize(path)
        libs = files.libs()
        with self._reading() as f:
            node = self._item(f, path)
            if out is not None:
                return self._read_into(node, path, out)
            try:
                return fmt.Reader(libs).read(node, path)
            except fmt.NodeError as exc:
                raise self._node_error(path, exc) from exc
            except OSError as exc:  # HDF5 could not read or decompress a chunk
                raise self._corrupt(path, exc) from exc

    def __getitem__(self, path: str) -> Any:
        return self.load(path)

    def iter_blocks(self, path: str = DEFAULT_ENTRY, rows: int | None = None) -> Iterator[Any]:
        """Yield an array entry as consecutive blocks along axis 0 (``rows``
        rows each; default: the rows of one stored chunk), so an array larger
        than memory can be processed piece by piece. The blocks concatenate
        to the array; an iterator of them can be passed to ``serialize``."""
        path = _normalize(path)
        if rows is not None and rows < 1:
            raise InvalidValue(f"rows must be at least 1, not {rows}")
        with self._reading() as f:  # errors now, not at the first next()
            ds = self._array(f, path)
            if ds.ndim == 0:
                raise SerializationError(f"{path!r} in {self.file} is a 0-d array: load it "
                                         "with load()")
            step = rows or (ds.chunks[0] if ds.chunks else max(1, ds.shape[0]))
        return self._blocks(path, step)

    def _blocks(self, path: str, step: int) -> Iterator[Any]:
        # the file stays open while the caller iterates: a concurrent writer
        # renames a new file into place and this one reads the old one whole
        with self._reading() as f:
            ds = self._array(f, path)
            try:
                for start in range(0, ds.shape[0], step):
                    yield ds[start:start + step]
            except OSError as exc:
                raise self._corrupt(path, exc) from exc

    def info(self, path: str = DEFAULT_ENTRY) -> EntryInfo:
        """The kind of ``path`` (an entry or an item in one) and, for an array,
        its shape, dtype, size in memory and size on disk, without loading it."""
        path = _normalize(path)
        with self._reading() as f:
            node = self._item(f, path)
            kind = fmt.attr(node, fmt.A_KIND)
            if kind != "array":
                return EntryInfo(path, kind)
            return EntryInfo(path, kind, tuple(node.shape), str(node.dtype),
                             int(node.size * node.dtype.itemsize), int(node.id.get_storage_size()))

    def list(self, prefix: str = "/") -> list[str]:
        """The entry paths under ``prefix`` (a group, or an entry itself), sorted.
        Items inside an entry are not listed."""
        with self._reading() as f:
            if prefix.strip("/") == "":
                return sorted(self._entries_in(f, "/"))
            prefix = _normalize(prefix)
            if prefix not in f:
                return []
            return sorted(self._entries_in(f, prefix))

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self.list())

    def __contains__(self, path: object) -> bool:
        """True when ``path`` is an entry; False also when the file does not
        exist or ``path`` is malformed. A file not ours raises SerializationError."""
        if not isinstance(path, str) or not self.file.exists():
            return False
        try:
            path = _normalize(path)
        except InvalidValue:
            return False
        with self._reading() as f:
            node = f.get(path)
            return node is not None and files.is_entry(node)

    # -- lookups ------------------------------------------------------------
    def _reading(self) -> contextlib.AbstractContextManager[Any]:
        return files.open_checked(self.file)

    def _lookup(self, f: Any, path: str) -> Any:
        node = f.get(path)
        if node is None:
            entries = self._entries_in(f, "/")
            raise SerializationError(
                f"{self.file} has no entry {path!r}; "
                + (f"its entries: {self._summary(entries)}" if entries else "it has no entries"))
        return node

    def _classify(self, f: Any, path: str) -> tuple[str, Any]:
        """("entry" | "namespace" | "item" (inside an entry) | "foreign", node)."""
        node = self._lookup(f, path)
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            ancestor = f["/" + "/".join(parts[:depth])]
            if files.is_entry(ancestor):
                files.check_version(ancestor, f"entry {ancestor.name!r} in {self.file}")
                return ("entry" if depth == len(parts) else "item"), node
        return ("namespace" if isinstance(node, files.libs().h5py.Group) else "foreign"), node

    def _item(self, f: Any, path: str) -> Any:
        """The entry ``path``, or an item inside an entry, version-checked."""
        role, node = self._classify(f, path)
        if role == "namespace":
            raise SerializationError(
                f"{path!r} in {self.file} is a group of entries, not an entry; load one of: "
                f"{self._summary(self._entries_in(f, path)) or '(none)'}")
        if role == "foreign":
            raise SerializationError(f"{path!r} in {self.file} was not written by "
                                     "ObjectSerializer (no fleetslurm attributes); read it "
                                     "with h5py")
        return node

    def _array(self, f: Any, path: str) -> Any:
        node = self._item(f, path)
        kind = fmt.attr(node, fmt.A_KIND)
        if kind != "array":
            raise SerializationError(f"{path!r} in {self.file} is a {kind}, not an array; "
                                     "load it with load() (without out=)")
        return node

    def _read_into(self, node: Any, path: str, out: Any) -> Any:
        np = files.libs().np
        if fmt.attr(node, fmt.A_KIND) != "array":
            raise SerializationError(f"{path!r} in {self.file} is a "
                                     f"{fmt.attr(node, fmt.A_KIND)}, not an array; out= is "
                                     "for arrays: call load() without it")
        # HDF5 converts between integer and float types, not to or from complex
        castable = isinstance(out, np.ndarray) and (
            out.dtype == node.dtype or (out.dtype.kind in "iuf" and node.dtype.kind in "biuf"
                                        and np.can_cast(node.dtype, out.dtype, "safe")))
        if (not castable or out.shape != node.shape
                or not out.flags.c_contiguous or not out.flags.writeable):
            raise SerializationError(
                f"out= for {path!r} in {self.file} must be a C-contiguous writable numpy "
                f"array of shape {node.shape} and dtype {node.dtype} (or one it casts to "
                f"safely), not {type(out).__name__} {getattr(out, 'shape', '')} "
                f"{getattr(out, 'dtype', '')}")
        try:
            for sel in node.iter_chunks() if node.chunks else [()]:
                node.read_direct(out, sel, sel)
        except OSError as exc:
            raise self._corrupt(path, exc) from exc
        return out

    def _entries_in(self, f: Any, path: str) -> list[str]:
        node = f[path]
        h5py = files.libs().h5py
        if files.is_entry(node):
            return [node.name]
        if not isinstance(node, h5py.Group):
            return []
        found: list[str] = []

        def walk(group: Any) -> None:
            for child in group.values():
                if files.is_entry(child):
                    found.append(child.name)
                elif isinstance(child, h5py.Group):
                    walk(child)

        walk(node)
        return found

    @staticmethod
    def _summary(entries: list[str], limit: int = 10) -> str:
        shown = ", ".join(sorted(entries)[:limit])
        return shown + (f" and {len(entries) - limit} more" if len(entries) > limit else "")

    def _node_error(self, entry: str, exc: fmt.NodeError) -> SerializationError:
        verb = "cannot load" if exc.load else "cannot serialize"
        prep = "from" if exc.load else "into"
        where = "" if exc.where == entry else f" at {exc.where}"
        return SerializationError(f"{verb} entry {entry!r} {prep} {self.file}{where}: "
                                  f"{exc.message}" + ("" if exc.load else
                                                      "; nothing was written"))

    def _corrupt(self, path: str, exc: Exception) -> SerializationError:
        return SerializationError(
            f"entry {path!r} in {self.file} cannot be read ({exc}): the file is damaged, or "
            "HDF5 lacks the Blosc2 filter (pip install hdf5plugin); write it again")

    # -- the atomic rewrite --------------------------------------------------
    def _rewrite(self, *, replace: str, obj: Any, keep_others: bool, delete: bool = False,
                 recursive: bool = False) -> None:
        """Write a new file holding the kept entries plus ``obj`` at ``replace``
        (none with ``delete``) and rename it over the old one. The checks run
        under the writers' lock, on the file being replaced."""

        def fill(dst: Any) -> None:
            if keep_others and (delete or self.file.exists()):  # delete: the file must exist
                with self._reading() as src:
                    if delete:
                        self._check_delete(src, replace, recursive)
                    else:
                        self._check_target(src, replace)
                    files.copy_except(src, dst, replace)
            if not delete:
                self._write_entry(dst, replace, obj)

        files.atomic_rewrite(self.file, fill)

    def _check_delete(self, src: Any, path: str, recursive: bool) -> None:
        role, _ = self._classify(src, path)
        if role == "namespace" and not recursive:
            raise SerializationError(
                f"{path!r} in {self.file} is a group of entries "
                f"({self._summary(self._entries_in(src, path))}), not an entry; "
                "pass recursive=True to delete them all")
        if role == "item":
            raise SerializationError(
                f"{path!r} in {self.file} is an item inside an entry; delete the entry "
                "or serialize it again without that item")

    def _check_target(self, src: Any, path: str) -> None:
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            ancestor = "/" + "/".join(parts[:depth])
            if ancestor in src and files.is_entry(src[ancestor]):
                raise SerializationError(
                    f"cannot put {path!r} in {self.file}: {ancestor!r} is an entry, which "
                    f"holds no entries; delete {ancestor!r} first or choose another path")
        if path in src and not files.is_entry(src[path]):
            raise SerializationError(
                f"cannot serialize {path!r} into {self.file}: it is a group holding entries "
                f"({self._summary(self._entries_in(src, path))}); delete it "
                "(delete(path, recursive=True)) first or choose another path")

    def _write_entry(self, dst: Any, path: str, obj: Any) -> None:
        parent, _, name = path.rpartition("/")
        group = dst.require_group(parent) if parent else dst
        try:
            node = fmt.Writer(files.libs(), self.codec).write(group, name, obj, path)
        except fmt.NodeError as exc:
            raise self._node_error(path, exc) from exc
        files.mark(node)


class Serializer:
    """One object per file (the seed's API), on top of ObjectSerializer.

    Both call styles work: ``Serializer.serialize_to_file(obj, path)`` and
    ``Serializer().serialize_to_file(obj, path)``. The object is stored as the
    entry ``/object``; ``ObjectSerializer(path)`` reads the same file.
    """

    @staticmethod
    def serialize_to_file(obj: Any, path: str | os.PathLike) -> None:
        """Write ``obj`` to ``path``, replacing the file as a whole (atomically)."""
        ObjectSerializer(path)._rewrite(replace=DEFAULT_ENTRY, obj=obj, keep_others=False)

    @staticmethod
    def deserialize_from_file(path: str | os.PathLike) -> Any:
        """Return the object ``serialize_to_file`` wrote to ``path``."""
        store = ObjectSerializer(path)
        if DEFAULT_ENTRY not in store:
            store.list()  # raises the clear error for a missing or foreign file
            raise SerializationError(
                f"{path} has no entry {DEFAULT_ENTRY!r} (it was not written by "
                f"Serializer.serialize_to_file); its entries: {store.list() or 'none'}; load "
                "one with ObjectSerializer(path).load(entry)")
        return store.load(DEFAULT_ENTRY)

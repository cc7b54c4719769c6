"""The HDF5 layout of ObjectSerializer files (format version 1), node by node.

This module turns one Python object into HDF5 nodes under a group and back;
``objser`` owns the files (atomic rewrite, locking, entry paths, errors about
files). numpy, h5py, hdf5plugin and cloudpickle are imported by the caller and
handed in as ``Libs``, so importing this module costs nothing.

Layout (``fleetslurm.*`` are HDF5 attributes):

- The root group carries ``fleetslurm.magic`` = ``MAGIC`` and
  ``fleetslurm.format`` = ``FORMAT_VERSION``; so does every *entry* (the
  node written by one ``serialize`` call), which also carries
  ``fleetslurm.kind``. Groups without a kind are namespaces (``/group`` in
  ``/group/name``).
- kind ``array``: a dataset holding a numpy array (dtype kinds b, i, u, f, c).
  Arrays of at least ``Codec.min_compress_bytes`` are chunked (about
  ``Codec.chunk_bytes`` per chunk, whole trailing rows when a row fits) and
  compressed with the Blosc2 HDF5 filter (filter id 32026, from hdf5plugin:
  ``import hdf5plugin`` before reading such a file with plain h5py); smaller
  ones are stored contiguous and uncompressed.
- kind ``dict`` / ``list`` / ``tuple``: a group with ``fleetslurm.length``;
  list and tuple items are named ``0``..``n-1``; a dict item is named by its
  key when the key is a plain string (no ``/``, not ``.`` or ``..``, not
  starting with ``~``, at most 255 characters), otherwise ``~<position>``, and carries
  ``fleetslurm.key_type`` (str, int, float, bool, none, bytes, or str-hex
  for a string HDF5 text cannot hold), ``fleetslurm.key`` (the key as text:
  decimal, ``float.hex``, hex of bytes or of UTF-8)
  and ``fleetslurm.pos`` (its position, so the order survives).
- kind ``pickle``: a uint8 dataset holding a cloudpickle (protocol 5).
- kind ``pickle-oob``: a group with the pickle in dataset ``pickle`` and its
  large out-of-band buffers (numpy arrays inside arbitrary objects) in
  datasets ``buffer-0``.. (compressed like arrays), so they are not copied
  into the pickle bytes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

MAGIC = "fleetslurm-objser"
FORMAT_VERSION = 1

A_MAGIC = "fleetslurm.magic"
A_FORMAT = "fleetslurm.format"
A_KIND = "fleetslurm.kind"
A_LENGTH = "fleetslurm.length"
A_KEY = "fleetslurm.key"
A_KEY_TYPE = "fleetslurm.key_type"
A_POS = "fleetslurm.pos"

KINDS = ("array", "pickle", "pickle-oob", "dict", "list", "tuple")
#: out-of-band pickle buffers smaller than this stay inside the pickle bytes
OOB_MIN_BYTES = 64 * 1024
_KEY_TYPES = {str: "str", int: "int", float: "float", bool: "bool", type(None): "none",
              bytes: "bytes"}


@dataclass(frozen=True)
class Codec:
    """How arrays are chunked and compressed (Blosc2 through hdf5plugin)."""

    cname: str = "lz4"
    clevel: int = 5
    chunk_bytes: int = 1 << 20
    min_compress_bytes: int = 64 * 1024


@dataclass(frozen=True)
class Libs:
    """The heavy modules, imported once by the caller."""

    np: Any
    h5py: Any
    hdf5plugin: Any
    cloudpickle: Any


class NodeError(Exception):
    """Raised by this module with the location inside the entry; ``objser``
    turns it into a SerializationError naming the file and the entry."""

    def __init__(self, where: str, message: str, load: bool):
        super().__init__(message)
        self.where = where
        self.message = message
        self.load = load


def is_array(libs: Libs, obj: Any) -> bool:
    """True for numpy arrays stored as datasets (memmaps included)."""
    np = libs.np
    return (isinstance(obj, np.ndarray) and type(obj) in (np.ndarray, np.memmap)
            and obj.dtype.kind in "biufc")


def is_stream(obj: Any) -> bool:
    """An iterator (a generator...) is a stream of array blocks along axis 0."""
    return isinstance(obj, Iterator)


def _container_kind(obj: Any) -> str | None:
    kind = {dict: "dict", list: "list", tuple: "tuple"}.get(type(obj))
    if kind == "dict" and not all(type(k) in _KEY_TYPES for k in obj):
        return None  # such a dict is pickled whole
    return kind


def _children(obj: Any) -> Any:
    return obj.values() if type(obj) is dict else obj


class _Cycle(Exception):
    pass


def chunk_shape(shape: tuple[int, ...], itemsize: int, target: int) -> tuple[int, ...]:
    """Chunk dims of about ``target`` bytes: whole trailing dims while they fit,
    then as many as fit of the next one (at least 1 along every axis)."""
    chunk = list(shape)
    size = itemsize
    for axis in range(len(shape) - 1, -1, -1):
        if size * shape[axis] <= target:
            size *= shape[axis]
            continue
        chunk[axis] = max(1, target // size)
        for outer in range(axis):
            chunk[outer] = 1
        break
    return tuple(max(1, c) for c in chunk)


class Writer:
    """Writes one object as nodes of an open h5py file."""

    def __init__(self, libs: Libs, codec: Codec):
        self.libs = libs
        self.codec = codec
        self._has_array: dict[int, Any] = {}  # id -> bool, or _Cycle

    # -- which containers become groups ------------------------------------
    def _contains_array(self, obj: Any, active: set[int]) -> bool:
        """Whether ``obj`` holds an array at any depth; raise _Cycle if it
        holds a cycle (every child is visited: a cycle after an array counts)."""
        if is_array(self.libs, obj) or is_stream(obj):
            return True
        if _container_kind(obj) is None:
            return False
        key = id(obj)
        if key in active or self._has_array.get(key) is _Cycle:
            raise _Cycle
        if key not in self._has_array:
            active.add(key)
            try:
                found = [self._contains_array(v, active) for v in _children(obj)]
            except _Cycle:
                self._has_array[key] = _Cycle
                raise
            finally:
                active.discard(key)
            self._has_array[key] = any(found)
        return bool(self._has_array[key])

    def _as_group(self, obj: Any) -> bool:
        """A dict/list/tuple holding arrays (at any depth) becomes a group;
        one holding none, or holding a cycle, is pickled whole."""
        if _container_kind(obj) is None:
            return False
        try:
            return self._contains_array(obj, set())
        except _Cycle:
            return False

    # -- writing ------------------------------------------------------------
    def write(self, group: Any, name: str, obj: Any, where: str) -> Any:
        """Write ``obj`` as ``group[name]``; return the new node."""
        if is_array(self.libs, obj):
            node = self._write_array(group, name, obj)
            kind = "array"
        elif is_stream(obj):
            node = self._write_stream(group, name, obj, where)
            kind = "array"
        elif self._as_group(obj):
            kind = _container_kind(obj)
            node = group.create_group(name)
            node.attrs[A_LENGTH] = len(obj)
            if kind == "dict":
                self._write_dict(node, obj, where)
            else:
                for i, item in enumerate(obj):
                    self.write(node, str(i), item, f"{where}[{i}]")
        else:
            node, kind = self._write_pickle(group, name, obj, where)
        node.attrs[A_KIND] = kind
        return node

    def _write_dict(self, node: Any, obj: dict, where: str) -> None:
        for pos, (key, value) in enumerate(obj.items()):
            key_type, text = _encode_key(key)
            child = self.write(node, _item_name(key, pos), value, f"{where}[{key!r}]")
            child.attrs[A_KEY_TYPE] = key_type
            child.attrs[A_KEY] = text
            child.attrs[A_POS] = pos

    def _filter(self, itemsize: int) -> dict:
        h5p = self.libs.hdf5plugin
        return dict(h5p.Blosc2(cname=self.codec.cname, clevel=self.codec.clevel,
                               filters=h5p.Blosc2.SHUFFLE if itemsize > 1 else h5p.Blosc2.NOFILTER))

    def _write_array(self, group: Any, name: str, arr: Any) -> Any:
        if arr.ndim == 0 or arr.size == 0 or arr.nbytes < self.codec.min_compress_bytes:
            return group.create_dataset(name, data=arr)
        chunks = chunk_shape(arr.shape, arr.itemsize, self.codec.chunk_bytes)
        ds = group.create_dataset(name, shape=arr.shape, dtype=arr.dtype, chunks=chunks,
                                  **self._filter(arr.itemsize))
        # one chunk at a time: a memmap is paged in chunk by chunk, never whole
        for sel in ds.iter_chunks():
            ds[sel] = arr[sel]
        return ds

    def _write_stream(self, group: Any, name: str, blocks: Iterator, where: str) -> Any:
        """Concatenate a stream of arrays along axis 0, holding at most one
        block and one chunk in memory."""
        np = self.libs.np
        first = next(blocks, None)
        if first is None:
            raise NodeError(where, "the iterator yielded no array, so its dtype and shape "
                            "are unknown; pass an empty numpy array instead", load=False)
        self._check_block(first, None, where)
        row_shape, dtype = first.shape[1:], first.dtype
        row_bytes = math.prod(row_shape) * dtype.itemsize
        if row_bytes == 0:  # rows of zero size: only the row count matters
            total = len(first)
            for block in blocks:
                self._check_block(block, first, where)
                total += len(block)
            return group.create_dataset(name, shape=(total, *row_shape), dtype=dtype)
        chunks = chunk_shape((1 << 62, *row_shape), dtype.itemsize, self.codec.chunk_bytes)
        ds = group.create_dataset(name, shape=(0, *row_shape), maxshape=(None, *row_shape),
                                  dtype=dtype, chunks=chunks, **self._filter(dtype.itemsize))
        rows = chunks[0]
        buf = np.empty((rows, *row_shape), dtype=dtype)
        fill = 0

        def flush(data: Any) -> None:
            start = ds.shape[0]
            ds.resize(start + len(data), axis=0)
            ds[start:start + len(data)] = data

        # chunk-aligned writes only: a misaligned one would compress a chunk twice
        for block in itertools.chain([first], blocks):
            self._check_block(block, first, where)
            pos, n = 0, len(block)
            while pos < n:
                if fill == 0 and n - pos >= rows:
                    whole = (n - pos) // rows * rows
                    flush(block[pos:pos + whole])
                    pos += whole
                    continue
                take = min(rows - fill, n - pos)
                buf[fill:fill + take] = block[pos:pos + take]
                fill += take
                pos += take
                if fill == rows:
                    flush(buf)
                    fill = 0
        if fill:
            flush(buf[:fill])
        return ds

    def _check_block(self, block: Any, first: Any, where: str) -> None:
        if not is_array(self.libs, block) or block.ndim == 0:
            what = type(block).__name__
            if hasattr(block, "dtype"):
                what += f" of dtype {block.dtype}"
            raise NodeError(where, f"the iterator yielded an item of type {what}; an iterator "
                            "is stored as a stream of numeric numpy arrays of at least one "
                            "dimension, concatenated along axis 0 (put other items in a list)",
                            load=False)
        if first is not None and (block.dtype != first.dtype
                                  or block.shape[1:] != first.shape[1:]):
            raise NodeError(where, f"the iterator yielded blocks of different dtypes or row "
                            f"shapes ({first.dtype} {first.shape[1:]}, then {block.dtype} "
                            f"{block.shape[1:]}); yield blocks that differ only along axis 0",
                            load=False)

    def _write_pickle(self, group: Any, name: str, obj: Any, where: str) -> tuple[Any, str]:
        np = self.libs.np
        buffers: list[tuple[memoryview, int]] = []

        def out_of_band(buffer: Any) -> bool:
            """Keep large buffers out of the pickle bytes (return False)."""
            try:
                raw = buffer.raw()  # bytes of a C- or F-contiguous buffer
            except BufferError:
                return True
            if raw.nbytes < OOB_MIN_BYTES:
                return True
            buffers.append((raw, memoryview(buffer).itemsize))
            return False

        try:
            data = self.libs.cloudpickle.dumps(obj, protocol=5, buffer_callback=out_of_band)
        except Exception as exc:  # pickling raises many types: TypeError, PicklingError...
            raise NodeError(where, f"an object of type {type(obj).__qualname__!r} cannot be "
                            f"pickled ({type(exc).__name__}: {exc}); make it picklable by "
                            "cloudpickle or leave it out", load=False) from exc
        raw = np.frombuffer(data, dtype=np.uint8)
        if not buffers:
            return self._write_bytes(group, name, raw), "pickle"
        node = group.create_group(name)
        self._write_bytes(node, "pickle", raw)
        for i, (raw, itemsize) in enumerate(buffers):
            # keep the item size, so that Blosc2's shuffle works on it
            size = itemsize if itemsize in (2, 4, 8) and raw.nbytes % itemsize == 0 else 1
            flat = np.frombuffer(raw, dtype=np.uint8).view(f"u{size}")
            self._write_array(node, f"buffer-{i}", flat)
        node.attrs[A_LENGTH] = len(buffers)
        return node, "pickle-oob"

    def _write_bytes(self, group: Any, name: str, raw: Any) -> Any:
        if raw.nbytes < self.codec.min_compress_bytes:
            return group.create_dataset(name, data=raw)
        return self._write_array(group, name, raw)


def _item_name(key: Any, pos: int) -> str:
    if (type(key) is str and key not in ("", ".", "..") and "/" not in key and "\0" not in key
            and not key.startswith("~") and len(key) <= 255 and _utf8(key)):
        return key
    return f"~{pos}"


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _encode_key(key: Any) -> tuple[str, str]:
    """(key type, the key as text HDF5 can hold)."""
    key_type = _KEY_TYPES[type(key)]
    if key_type == "str":
        if "\0" in key or not _utf8(key):  # text HDF5 cannot hold goes as hex
            return "str-hex", key.encode("utf-8", "surrogatepass").hex()
        return "str", key
    if key_type in ("float", "bytes"):
        return key_type, key.hex()
    return key_type, "" if key is None else str(key)


def _decode_key(text: str, key_type: str) -> Any:
    decoders: dict[str, Callable[[str], Any]] = {
        "str": lambda t: t,
        "str-hex": lambda t: bytes.fromhex(t).decode("utf-8", "surrogatepass"),
        "int": int,
        "float": float.fromhex,
        "bool": lambda t: {"True": True, "False": False}[t],
        "none": lambda t: None,
        "bytes": bytes.fromhex,
    }
    return decoders[key_type](text)


class Reader:
    """Reads nodes written by ``Writer`` back into Python objects."""

    def __init__(self, libs: Libs):
        self.libs = libs

    def read(self, node: Any, where: str) -> Any:
        kind = attr(node, A_KIND)
        if kind == "array":
            return node[...] if node.ndim == 0 else node[()]  # [()] gives a 0-d one as a scalar
        if kind == "pickle":
            return self._unpickle(node[()], [], where)
        if kind == "pickle-oob":
            count = self._length(node, where)
            buffers = [node[f"buffer-{i}"][()].view(self.libs.np.uint8) for i in range(count)]
            return self._unpickle(node["pickle"][()], buffers, where)
        if kind in ("list", "tuple"):
            count = self._length(node, where)
            items = [self.read(self._child(node, str(i), where), f"{where}[{i}]")
                     for i in range(count)]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            return self._read_dict(node, where)
        raise NodeError(where, f"has kind {kind!r}, which this fleetslurm does not know "
                        f"(known: {', '.join(KINDS)}); it was written by a newer fleetslurm: "
                        "upgrade fleetslurm here", load=True)

    def _read_dict(self, node: Any, where: str) -> dict:
        count = self._length(node, where)
        items = []
        for name, child in node.items():
            try:
                key = _decode_key(attr(child, A_KEY), attr(child, A_KEY_TYPE))
                pos = int(attr(child, A_POS))
            except (KeyError, ValueError, TypeError) as exc:
                raise NodeError(where, f"item {name!r} has a missing or bad key ({exc})",
                                load=True) from exc
            items.append((pos, key, child))
        if sorted(pos for pos, _, _ in items) != list(range(count)):
            raise NodeError(where, f"holds {len(items)} items at positions that do not "
                            f"match its length {count}", load=True)
        items.sort(key=lambda item: item[0])
        return {key: self.read(child, f"{where}[{key!r}]") for _, key, child in items}

    def _length(self, node: Any, where: str) -> int:
        try:
            return int(attr(node, A_LENGTH))
        except (KeyError, ValueError, TypeError) as exc:
            raise NodeError(where, f"has no valid {A_LENGTH} attribute", load=True) from exc

    def _child(self, node: Any, name: str, where: str) -> Any:
        try:
            return node[name]
        except KeyError as exc:
            raise NodeError(where, f"misses its item {name!r}", load=True) from exc

    def _unpickle(self, raw: Any, buffers: list, where: str) -> Any:
        try:
            return self.libs.cloudpickle.loads(raw.tobytes(), buffers=buffers)
        except Exception as exc:  # unpickling raises anything the pickled code raises
            raise NodeError(where, f"cannot be unpickled ({type(exc).__name__}: {exc}); "
                            "install the modules it needs here, in the versions of the "
                            "machine that wrote it", load=True) from exc


def attr(node: Any, name: str) -> Any:
    """An attribute as a Python value (h5py returns numpy scalars)."""
    value = node.attrs[name]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value.item() if hasattr(value, "item") else value

"""ObjectSerializer and Serializer: round trips, entries, errors, atomic files,
bounded memory (real HDF5 files, real subprocesses)."""

from __future__ import annotations

import collections
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fleetslurm
from fleetslurm.api.objser import format as fmt
from fleetslurm.api.objser.serializer import ObjectSerializer, Serializer
from fleetslurm.errors import InvalidValue, SerializationError


@pytest.fixture
def store(tmp_path: Path) -> ObjectSerializer:
    return ObjectSerializer(tmp_path / "store.h5")


def same(a, b) -> bool:
    """Deep equality that compares arrays by dtype, shape and values."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (type(b) is np.ndarray and a.dtype == b.dtype and a.shape == b.shape
                and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return ([(type(k), k) for k in a] == [(type(k), k) for k in b]  # 1 is not True
                and all(same(a[k], b[k]) for k in a))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


# -- arrays ------------------------------------------------------------------

ARRAYS = {
    "bool": np.arange(100_000) % 3 == 0,
    "int8": np.arange(-50, 50, dtype=np.int8),
    "uint16": np.arange(70_000, dtype=np.uint32).astype(np.uint16),
    "int64": np.arange(300_000, dtype=np.int64).reshape(1000, 300),
    "float32": np.linspace(0, 1, 50_000, dtype=np.float32),
    "float64 random": np.random.default_rng(1).random((300, 400)),
    "big-endian": np.arange(40_000, dtype=">f8"),
    "complex": (np.arange(20_000) * (1 + 2j)).astype(np.complex128),
    "nan inf": np.array([np.nan, np.inf, -np.inf, 0.0] * 30_000),
    "0-d": np.array(3.5),
    "empty": np.zeros((0,)),
    "empty rows": np.zeros((0, 7), dtype=np.int32),
    "3-d": np.random.default_rng(2).integers(0, 9, (20, 30, 40)).astype(np.int16),
}


@pytest.mark.parametrize("name", ARRAYS)
def test_array_round_trip_keeps_dtype_shape_and_values(store, name):
    arr = ARRAYS[name]
    store.serialize(arr, "/a")
    assert same(arr, store.load("/a"))
    info = store.info("/a")
    assert (info.kind, info.shape, info.dtype) == ("array", arr.shape, str(arr.dtype))


def test_large_arrays_are_chunked_and_blosc2_compressed(store):
    arr = np.linspace(0, 1, 2_000_000)
    store.serialize(arr, "/x")
    with h5py.File(store.file) as f:
        ds = f["x"]
        assert ds.chunks is not None and ds.chunks[0] < len(arr)
        assert "32026" in ds._filters  # the Blosc2 HDF5 filter
    info = store.info("/x")
    assert info.nbytes == arr.nbytes and info.stored_bytes < arr.nbytes / 10


def test_rows_larger_than_a_chunk_are_chunked_inside_the_row(tmp_path):
    store = ObjectSerializer(tmp_path / "s.h5", chunk_bytes=4096)
    arr = np.random.default_rng(3).random((3, 5, 1000))  # a row is 40 kB
    store.serialize(arr, "/x")
    with h5py.File(store.file) as f:
        assert f["x"].chunks == (1, 1, 512)
    assert same(arr, store.load("/x"))
    assert same(arr, np.concatenate(list(store.iter_blocks("/x"))))


def test_non_contiguous_and_fortran_arrays_and_memmaps(store, tmp_path):
    base = np.random.default_rng(4).random((400, 300))
    mm = np.memmap(tmp_path / "m.dat", dtype=np.float64, mode="w+", shape=(400, 300))
    mm[:] = base
    for arr in (base[::2, 1::3], np.asfortranarray(base), mm):
        store.serialize(arr, "/a")
        assert same(np.asarray(arr).copy(), store.load("/a"))


@pytest.mark.parametrize("cname, clevel", [("zstd", 0), ("zstd", 9), ("blosclz", 5),
                                           ("lz4hc", 3), ("zlib", 1)])
def test_codec_settings(tmp_path, cname, clevel):
    store = ObjectSerializer(tmp_path / "s.h5", cname=cname, clevel=clevel)
    arr = np.linspace(0, 1, 500_000)
    store.serialize(arr, "/a")
    assert same(arr, store.load("/a"))
    ratio = arr.nbytes / store.info("/a").stored_bytes
    assert ratio < 1.1 if clevel == 0 else ratio > 3


def test_bad_codec_settings_are_refused(tmp_path):
    with pytest.raises(InvalidValue, match="clevel 12"):
        ObjectSerializer(tmp_path / "s.h5", clevel=12)
    with pytest.raises(InvalidValue, match="unknown Blosc2 codec 'brotli'; valid codecs are: "
                                           "blosclz, lz4, lz4hc, zlib, zstd"):
        ObjectSerializer(tmp_path / "s.h5", cname="brotli")
    with pytest.raises(InvalidValue, match="chunk_bytes 10"):
        ObjectSerializer(tmp_path / "s.h5", chunk_bytes=10)


# -- streams and chunked reads -------------------------------------------------

def test_an_iterator_of_blocks_is_stored_as_their_concatenation(tmp_path):
    store = ObjectSerializer(tmp_path / "s.h5", chunk_bytes=8 * 1024)
    rng = np.random.default_rng(5)
    # blocks of uneven sizes, smaller and larger than a chunk (341 rows of 3 floats)
    blocks = [rng.random((n, 3)) for n in (1, 340, 2, 1000, 341, 682, 5, 0, 77)]
    store.serialize(iter(blocks), "/s")
    assert same(np.concatenate(blocks), store.load("/s"))
    with h5py.File(store.file) as f:
        assert f["s"].chunks == (341, 3)
    # iter_blocks feeds serialize: a copy in bounded memory
    store.serialize(store.iter_blocks("/s", rows=100), "/copy")
    assert same(np.concatenate(blocks), store.load("/copy"))
    assert [len(b) for b in store.iter_blocks("/s", rows=1000)] == [1000, 1000, 448]


def test_stream_of_zero_size_rows(store):
    store.serialize(iter([np.zeros((3, 0)), np.zeros((4, 0))]), "/z")
    assert store.load("/z").shape == (7, 0)


@pytest.mark.parametrize("blocks, message", [
    ([], "yielded no array"),
    ([np.zeros(3), "x"], "item of type str"),
    ([np.array(1.0)], "at least one dimension"),
    ([np.zeros((2, 3)), np.zeros((2, 4))], "different dtypes or row shapes"),
    ([np.zeros(3), np.zeros(3, dtype=np.int32)], "different dtypes or row shapes"),
    ([np.array(["a"])], "of dtype <U1"),
])
def test_bad_streams_are_refused_and_nothing_is_written(store, blocks, message):
    store.serialize(1, "/keep")
    before = store.file.read_bytes()
    with pytest.raises(SerializationError, match=message) as err:
        store.serialize(iter(blocks), "/s")
    assert "'/s'" in str(err.value) and str(store.file) in str(err.value)
    assert store.file.read_bytes() == before


def test_load_into_out_and_its_checks(store, tmp_path):
    arr = np.random.default_rng(6).random((1000, 50))
    store.serialize({"x": arr}, "/d")
    out = np.memmap(tmp_path / "out.dat", dtype=np.float64, mode="w+", shape=arr.shape)
    assert store.load("/d/x", out=out) is out
    assert np.array_equal(out, arr)
    ints = np.arange(-300_000, 300_000, dtype=np.int32)
    store.serialize(ints, "/i")
    wide = np.empty(600_000, dtype=np.float64)  # HDF5 widens int32 to float64
    assert np.array_equal(store.load("/i", out=wide), ints)
    for bad in (np.empty((10, 50)), np.empty(arr.shape, dtype=np.float32),
                np.empty(arr.shape, dtype=np.complex128), np.empty((50, 1000)).T, [0.0]):
        with pytest.raises(SerializationError, match="must be a C-contiguous writable"):
            store.load("/d/x", out=bad)
    with pytest.raises(SerializationError, match="'/d' in .* is a dict, not an array"):
        store.load("/d", out=out)
    with pytest.raises(SerializationError, match="is a dict, not an array"):
        store.iter_blocks("/d")  # checked at the call, not at the first next()
    store.serialize(np.array(1), "/zero")
    with pytest.raises(SerializationError, match="0-d array"):
        store.iter_blocks("/zero")
    with pytest.raises(InvalidValue, match="rows must be at least 1"):
        store.iter_blocks("/d/x", rows=0)


# -- containers --------------------------------------------------------------

def test_containers_of_arrays_become_groups_and_keep_their_types(store):
    a = np.arange(100_000.0)
    obj = {
        "x": a,
        "nested": {"list": [a[:10], "text", (1, a[:5])], "empty": []},
        3: a[:7], -2**70: np.zeros(3), 2.5: [a], float("inf"): a[:1], True: "yes",
        None: (a,), b"\x00raw": a[:2],
        "": a[:3], "a/b": a[:4], ".": a[:5], "..": a[:13], "~7": a[:6], "nul\0in": a[:8],
        "lone \udcff surrogate": a[:9], "é ü 中": a[:11], "k" * 300: a[:12],
    }
    store.serialize(obj, "/c")
    back = store.load("/c")
    assert same(obj, back)
    assert list(back) == list(obj)  # order kept
    with h5py.File(store.file) as f:
        assert f["c"].attrs[fmt.A_KIND] == "dict"
        assert f["c/x"].attrs[fmt.A_KIND] == "array"
        assert f["c/nested/list"].attrs[fmt.A_KIND] == "list"
        assert f["c/nested/list/2"].attrs[fmt.A_KIND] == "tuple"
        assert f["c/é ü 中"].attrs[fmt.A_KIND] == "array"  # plain keys name their item


def test_items_inside_an_entry_can_be_loaded_by_their_hdf5_name(store):
    a = np.arange(1000)
    store.serialize({"x": a, "l": [a, {"y": a * 2}]}, "/e")
    assert same(a * 2, store.load("/e/l/1/y"))
    assert store.info("/e/l/1/y").shape == (1000,)
    assert store.list() == ["/e"] and store.list("/e/x") == store.list("/e/l") == []
    assert "/e/x" not in store  # items are not entries


def test_containers_without_arrays_and_unsupported_keys_are_pickled_whole(store):
    a = np.arange(10)
    cyclic = [a]
    cyclic.append(cyclic)
    cases = {
        "/plain": {"a": 1, "b": [1, 2, (3, "x")]},
        "/tuple-keys": {(1, 2): a, "x": a},
        "/ordered": collections.OrderedDict(x=a),
        "/named": collections.namedtuple("P", "x y")(a, 2),
    }
    for path, obj in cases.items():
        store.serialize(obj, path)
        back = store.load(path)
        assert type(back) is type(obj) and store.info(path).kind == "pickle", path
    assert same(list(cases["/tuple-keys"].values()), list(store.load("/tuple-keys").values()))
    store.serialize(cyclic, "/cyclic")
    back = store.load("/cyclic")
    assert back[1] is back and np.array_equal(back[0], a)
    # a cycle anywhere inside, even after an array, pickles the container whole
    store.serialize({"x": a, "c": cyclic}, "/outer")
    back = store.load("/outer")
    assert store.info("/outer").kind == "pickle" and back["c"][1] is back["c"]


keys = st.one_of(st.text(max_size=8), st.integers(), st.booleans(), st.none(),
                 st.binary(max_size=4), st.floats(allow_nan=False))
arrays = st.builds(lambda n, dt: (np.arange(n) * 3).astype(dt), st.integers(0, 50),
                   st.sampled_from(["i1", "u4", "f8", "c8", "?"]))


def containers_of(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                     st.dictionaries(keys, inner, max_size=4))


trees = st.recursive(st.one_of(arrays, st.integers(), st.text(max_size=5)), containers_of,
                     max_leaves=12)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees)
def test_any_tree_of_containers_and_arrays_round_trips(store, tree):
    store.serialize(tree, "/t")
    assert same(tree, store.load("/t"))


# -- pickled objects ---------------------------------------------------------

class Holder:
    def __init__(self, arr):
        self.arr = arr
        self.fortran = np.asfortranarray(arr)
        self.small = arr[:3].copy()


def test_other_objects_are_pickled_with_their_arrays_out_of_band(store):
    arr = np.random.default_rng(7).random((500, 400))
    store.serialize(Holder(arr), "/h")
    back = store.load("/h")
    assert np.array_equal(back.arr, arr) and np.array_equal(back.fortran, arr)
    assert back.fortran.flags.f_contiguous and back.arr.flags.writeable
    assert store.info("/h").kind == "pickle-oob"
    with h5py.File(store.file) as f:
        assert sorted(f["h"]) == ["buffer-0", "buffer-1", "pickle"]
        assert f["h/pickle"].size < 10_000  # the arrays are not in the pickle bytes
        assert f["h/buffer-0"].dtype == np.uint64  # item size kept for the shuffle


def test_functions_and_lambdas_go_by_cloudpickle(store):
    offset = 5
    store.serialize((lambda x: x + offset, np.arange(3)), "/fn")
    fn, arr = store.load("/fn")
    assert fn(1) == 6 and np.array_equal(arr, np.arange(3))


def test_an_unpicklable_object_is_refused_and_nothing_is_written(store):
    import threading

    store.serialize(np.arange(10), "/keep")
    before = store.file.read_bytes()
    with pytest.raises(SerializationError) as err:
        store.serialize({"x": np.zeros(3), "bad": threading.Lock()}, "/new")
    message = str(err.value)
    assert "cannot serialize entry '/new'" in message and str(store.file) in message
    assert "at /new['bad']" in message and "'lock'" in message
    assert "nothing was written" in message
    assert store.file.read_bytes() == before and store.list() == ["/keep"]
    assert [p.name for p in store.file.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_an_object_whose_module_is_gone_fails_to_load_with_the_entry_named(tmp_path):
    moddir = tmp_path / "mods"
    moddir.mkdir()
    (moddir / "gone_mod_xyz.py").write_text("class Thing:\n    pass\n")
    file = tmp_path / "s.h5"
    write = ("import sys; sys.path.insert(0, sys.argv[1]); import gone_mod_xyz; "
             "from fleetslurm.api.objser.serializer import ObjectSerializer; "
             "ObjectSerializer(sys.argv[2]).serialize(gone_mod_xyz.Thing(), '/t')")
    subprocess.run([sys.executable, "-c", write, str(moddir), str(file)], check=True)
    with pytest.raises(SerializationError) as err:
        ObjectSerializer(file).load("/t")
    message = str(err.value)
    assert f"cannot load entry '/t' from {file}" in message
    assert "No module named 'gone_mod_xyz'" in message and "install the modules" in message


# -- entries -------------------------------------------------------------------

def test_listing_membership_replacing_and_deleting_entries(store):
    store.serialize(1, "/g/a")
    store.serialize(2, "g/b")  # the leading slash is optional
    store["/g/sub/c"] = 3
    store.serialize(4, "/top")
    assert store.list() == ["/g/a", "/g/b", "/g/sub/c", "/top"]
    assert store.list("/g/sub") == ["/g/sub/c"] and store.list("/g/a") == ["/g/a"]
    assert store.list("/nothing") == []
    assert list(store) == store.list() and len(store) == 4
    assert "/g/a" in store and "g/a" in store and "/g" not in store and "/zz" not in store
    assert 5 not in store and "/g//a" not in store
    store.serialize("replaced", "/g/a")
    assert store["/g/a"] == "replaced" and len(store) == 4
    del store["/g/sub/c"]
    assert store.list() == ["/g/a", "/g/b", "/top"]
    with h5py.File(store.file) as f:
        assert "g/sub" not in f  # an emptied group goes too
    with pytest.raises(SerializationError, match="is a group of entries .*/g/a, /g/b.*"
                                                 "recursive=True"):
        store.delete("/g")
    store.delete("/g", recursive=True)
    assert store.list() == ["/top"]
    store.delete("/top")
    assert store.list() == [] and len(store) == 0


def test_delete_reclaims_space(store):
    store.serialize(np.random.default_rng(8).random(1_000_000), "/big")
    store.serialize(1, "/small")
    full = store.file.stat().st_size
    store.delete("/big")
    assert store.file.stat().st_size < full / 50


def test_path_conflicts_and_bad_paths(store):
    store.serialize({"x": np.zeros(3)}, "/e")
    store.serialize(1, "/g/a")
    with pytest.raises(SerializationError, match="'/e' is an entry, which holds no entries"):
        store.serialize(1, "/e/x/y")
    with pytest.raises(SerializationError, match="'/g' .* is a group holding entries \\(/g/a\\)"):
        store.serialize(1, "/g")
    with pytest.raises(SerializationError, match="'/g' in .* is a group of entries, not an "
                                                 "entry; load one of: /g/a"):
        store.load("/g")
    with pytest.raises(SerializationError, match="is an item inside an entry"):
        store.delete("/e/x")
    with pytest.raises(SerializationError, match="has no entry '/nope'; its entries: /e, /g/a"):
        store.load("/nope")
    with pytest.raises(SerializationError, match="has no entry '/nope'"):
        store.delete("/nope")
    for bad in ("", "/", "/a//b", "/a/../b", "/./a", "a\0b"):
        with pytest.raises(InvalidValue, match="invalid entry path"):
            store.serialize(1, bad)
    with pytest.raises(InvalidValue, match="must be a string"):
        store.load(3)


# -- foreign files and versions ---------------------------------------------

def test_a_missing_file_a_directory_and_a_non_hdf5_file(tmp_path):
    missing = ObjectSerializer(tmp_path / "missing.h5")
    for call in (missing.load, missing.list, lambda: missing.info("/x")):
        with pytest.raises(SerializationError, match=f"no such file: {tmp_path}/missing.h5"):
            call()
    assert "/x" not in missing
    with pytest.raises(SerializationError, match="no such file"):
        missing.delete("/x")
    assert not missing.file.exists()
    with pytest.raises(SerializationError, match="is a directory"):
        ObjectSerializer(tmp_path).load()
    text = tmp_path / "notes.h5"
    text.write_text("hello\n")
    with pytest.raises(SerializationError, match=f"{text} is not an HDF5 file"):
        ObjectSerializer(text).load()
    with pytest.raises(SerializationError, match="cannot write .*check the directory exists"):
        ObjectSerializer(tmp_path / "no" / "dir.h5").serialize(1)


def test_an_hdf5_file_that_is_not_ours(tmp_path):
    file = tmp_path / "other.h5"
    with h5py.File(file, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(SerializationError, match="is not a fleetslurm object .*read it with h5py"):
        ObjectSerializer(file).list()
    with h5py.File(file, "a") as f:  # ours at the root, a foreign dataset inside
        f.attrs[fmt.A_MAGIC] = fmt.MAGIC
        f.attrs[fmt.A_FORMAT] = fmt.FORMAT_VERSION
    store = ObjectSerializer(file)
    assert store.list() == []
    with pytest.raises(SerializationError, match="'/data' .* was not written by ObjectSerializer"):
        store.load("/data")
    store.serialize(1, "/mine")  # the foreign dataset survives a rewrite
    with h5py.File(file) as f:
        assert list(f["data"][()]) == [0, 1, 2]


@pytest.mark.parametrize("where, value, message", [
    ("file", 2, "has format version 2, and this fleetslurm reads version 1: upgrade fleetslurm"),
    ("file", 0, "has format version 0, .*read it with the fleetslurm that wrote it"),
    ("entry", 99, "entry '/e' in .* has format version 99, .*upgrade fleetslurm"),
    ("entry magic", "nope", "entry '/e' in .* is not a fleetslurm object .*found 'nope'"),
])
def test_a_version_or_magic_mismatch_raises(store, where, value, message):
    store.serialize({"x": np.zeros(3)}, "/e")
    with h5py.File(store.file, "a") as f:
        node = f if where == "file" else f["e"]
        node.attrs[fmt.A_MAGIC if where == "entry magic" else fmt.A_FORMAT] = value
    with pytest.raises(SerializationError, match=message) as err:
        store.load("/e/x" if where != "file" else "/e")
    assert str(store.file) in str(err.value)


def test_unknown_kind_and_damaged_data(store):
    store.serialize(np.random.default_rng(9).random(200_000), "/a")
    store.serialize([np.zeros(3), np.ones(3)], "/l")
    with h5py.File(store.file, "a") as f:
        f["l"].attrs[fmt.A_KIND] = "hologram"
        offset = f["a"].id.get_chunk_info(0).byte_offset
    with pytest.raises(SerializationError, match="kind 'hologram'.*upgrade fleetslurm"):
        store.load("/l")
    with open(store.file, "r+b") as fh:  # scribble over the first compressed chunk
        fh.seek(offset)
        fh.write(b"\xff" * 64)
    with pytest.raises(SerializationError,
                       match="entry '/a' in .* cannot be read .*write it again"):
        store.load("/a")


# -- files: permissions, atomic replacement, concurrency -----------------

def test_files_are_private(store):
    old = os.umask(0o022)
    try:
        store.serialize(1, "/a")
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.file.stat().st_mode) == 0o600
    lock = store.file.parent / f".{store.file.name}.lock"
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600


WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from fleetslurm.api.objser.serializer import ObjectSerializer
    store = ObjectSerializer(sys.argv[1], chunk_bytes=64 * 1024)
    marker = sys.argv[2]
    def blocks():
        for i in range(10_000):
            if i == 20:
                open(marker, "w").close()  # well inside the write
            yield np.full(8192, i, dtype=np.float64)
            time.sleep(0.01)
    store.serialize(blocks(), "/a")
""")


def kill_writer_mid_write(file: Path, tmp_path: Path) -> None:
    marker = tmp_path / "writing"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(file), str(marker)])
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the writer died before the marker"
            assert time.monotonic() < deadline, "the writer never got going"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_a_writer_killed_mid_write_leaves_the_old_entry_whole(tmp_path):
    store = ObjectSerializer(tmp_path / "s.h5")
    store.serialize(np.arange(10), "/a")
    store.serialize("other", "/b")
    before = store.file.read_bytes()
    kill_writer_mid_write(store.file, tmp_path)
    assert store.file.read_bytes() == before
    assert np.array_equal(store.load("/a"), np.arange(10)) and store.list() == ["/a", "/b"]
    stale = list(tmp_path.glob(".s.h5.*.tmp"))
    assert len(stale) == 1 and stale[0].stat().st_size > 0  # the dead writer's temporary
    store.serialize(1, "/c")  # the next writer removes it
    assert list(tmp_path.glob(".s.h5.*.tmp")) == []


def test_a_writer_killed_while_creating_the_file_leaves_no_file(tmp_path):
    file = tmp_path / "new.h5"
    kill_writer_mid_write(file, tmp_path)
    assert not file.exists()
    with pytest.raises(SerializationError, match="no such file"):
        ObjectSerializer(file).load("/a")


def test_concurrent_writers_lose_no_entry(tmp_path):
    file = tmp_path / "s.h5"
    code = ("import sys, numpy as np; from fleetslurm.api.objser.serializer import ObjectSerializer; "
            "s = ObjectSerializer(sys.argv[1]); "
            "[s.serialize(np.full(1000, i), f'/{sys.argv[2]}/{i}') for i in range(8)]")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(file), name])
             for name in ("p", "q", "r")]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    store = ObjectSerializer(file)
    assert store.list() == sorted(f"/{n}/{i}" for n in "pqr" for i in range(8))
    assert np.array_equal(store.load("/q/5"), np.full(1000, 5))


def test_a_reader_keeps_a_whole_view_while_the_file_is_replaced(store):
    store.serialize(np.arange(100_000), "/a")
    blocks = store.iter_blocks("/a", rows=10_000)
    first = next(blocks)
    store.serialize(np.zeros(5), "/a")  # renamed over the file the reader holds
    assert np.array_equal(np.concatenate([first, *blocks]), np.arange(100_000))
    assert store.load("/a").shape == (5,)


# -- bounded memory ------------------------------------------------------------

MEMORY = textwrap.dedent("""
    import resource, sys, tracemalloc
    import numpy as np
    from fleetslurm.api.objser.serializer import ObjectSerializer

    def rss_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    file, mmap_path, total_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rows = total_mb * 1024 * 1024 // 8 // 64
    store = ObjectSerializer(file)  # 1 MiB chunks
    store.serialize(np.zeros(1), "/warm-up")  # load h5py/hdf5plugin before measuring
    base = rss_mb()

    def blocks():  # 2 MiB blocks, made on the fly
        for start in range(0, rows, 4096):
            n = min(4096, rows - start)
            yield np.arange(start * 64, (start + n) * 64, dtype=np.float64).reshape(n, 64)

    tracemalloc.start()
    store.serialize(blocks(), "/big")
    write_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    total = 0.0
    for block in store.iter_blocks("/big"):
        total += float(block[:, 0].sum())
    iter_peak = tracemalloc.get_traced_memory()[1]
    after_stream = rss_mb()

    out = np.memmap(mmap_path, dtype=np.float64, mode="w+", shape=(rows, 64))
    tracemalloc.reset_peak()
    store.load("/big", out=out)
    load_peak = tracemalloc.get_traced_memory()[1]
    ok = bool(out[-1, -1] == rows * 64 - 1 and out[12345, 6] == 12345 * 64 + 6)
    del out
    src = np.memmap(mmap_path, dtype=np.float64, mode="r", shape=(rows, 64))
    tracemalloc.reset_peak()
    store.serialize(src, "/from-memmap")
    memmap_peak = tracemalloc.get_traced_memory()[1]
    expected = float(sum(range(0, rows * 64, 64)))
    print(base, after_stream, write_peak, iter_peak, load_peak, memmap_peak,
          total == expected, ok, store.info("/from-memmap").shape == (rows, 64))
""")


def test_memory_stays_bounded_for_an_array_much_larger_than_a_chunk(tmp_path):
    """512 MiB through a stream, iter_blocks, load(out=memmap) and a memmap
    source, with 1 MiB chunks: the process's Python allocations stay under a
    few chunks and its resident size grows by far less than the array."""
    total_mb = 512
    proc = subprocess.run([sys.executable, "-c", MEMORY, str(tmp_path / "big.h5"),
                           str(tmp_path / "out.dat"), str(total_mb)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    base, after, write_peak, iter_peak, load_peak, memmap_peak, *checks = proc.stdout.split()
    assert checks == ["True", "True", "True"]
    mib = 1024 * 1024
    assert float(after) - float(base) < 100, (base, after)  # resident MiB, not file pages
    for peak in (write_peak, iter_peak, load_peak, memmap_peak):
        assert int(peak) < 24 * mib, (write_peak, iter_peak, load_peak, memmap_peak)


# -- the Serializer facade and the package root ------------------------------

def test_serializer_both_call_styles_and_whole_file_replacement(tmp_path):
    file = tmp_path / "obj.h5"
    obj = {"x": np.arange(1000.0), "meta": {"n": 3}}
    Serializer.serialize_to_file(obj, file)
    assert same(obj, Serializer.deserialize_from_file(file))
    assert same(obj, Serializer().deserialize_from_file(str(file)))
    ObjectSerializer(file).serialize(1, "/extra")
    Serializer().serialize_to_file([1, 2], file)
    assert Serializer.deserialize_from_file(file) == [1, 2]
    assert ObjectSerializer(file).list() == ["/object"]  # the file holds this object alone
    assert stat.S_IMODE(file.stat().st_mode) == 0o600


def test_serializer_errors(tmp_path):
    with pytest.raises(SerializationError, match="no such file"):
        Serializer.deserialize_from_file(tmp_path / "none.h5")
    other = tmp_path / "other.h5"
    ObjectSerializer(other).serialize(1, "/a")
    with pytest.raises(SerializationError, match="has no entry '/object' .*its entries: "
                                                 r"\['/a'\].*ObjectSerializer\(path\).load"):
        Serializer.deserialize_from_file(other)
    import threading
    with pytest.raises(SerializationError, match="cannot be pickled"):
        Serializer.serialize_to_file(threading.Lock(), tmp_path / "lock.h5")
    assert not (tmp_path / "lock.h5").exists()


def test_exported_from_the_root_and_imported_lazily():
    assert fleetslurm.ObjectSerializer is ObjectSerializer
    assert fleetslurm.Serializer is Serializer
    code = ("import sys, fleetslurm; fleetslurm.ObjectSerializer; fleetslurm.Serializer; "
            "print(','.join(m for m in ('h5py', 'hdf5plugin', 'numpy', 'cloudpickle') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""

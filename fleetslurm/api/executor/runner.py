#!/usr/bin/env python3
"""fleetslurm's job runner: runs one pickled Python call on a node.

    python3 runner.py CALL_FILE RESULT_FILE

Staged next to the payload and run by the job's batch script. It must stay
self-contained (standard library only, plus cloudpickle in the job's python):
nodes do not have fleetslurm installed.

Files start with a header: an 8-byte magic, a 2-byte big-endian format
version, a 1-byte kind. A call file (magic ``FLSLCALL``) is kind ``C``,
``cloudpickle.dumps((fn, args, kwargs, sources))``, or kind ``H``,
``cloudpickle.dumps((fn, data_file, sources))`` with the arguments in that HDF5 file
beside it (entries ``/args``, ``/kwargs``; written by fleetslurm's
ObjectSerializer, shipped with this runner as ``fleetslurm_objser.zip``).
``sources`` maps the file names of the code pickled by value to their
:mod:`linecache` entries, registered here before the call runs, so a
traceback shows the caller's lines on a machine without those files. A
result file (magic ``FLSLRSLT``) is kind ``V`` (the pickled return value),
``H`` (UTF-8 JSON ``{"file": name}``: the value is entry ``/result`` of that
HDF5 file beside it, used for results holding large numpy arrays) or ``E``
(a failure as UTF-8 JSON text: ``type``, ``message``, ``traceback``, never a
pickled exception). Results are written to a temporary file and renamed, so
a reader never sees half of one. Exit status: 0 when the call returned, 1
when it failed.
"""

import json
import linecache
import os
import struct
import sys
import traceback

CALL_MAGIC = b"FLSLCALL"
RESULT_MAGIC = b"FLSLRSLT"
VERSION = 2
_HEADER = struct.Struct(">8sHc")
#: numpy arrays of this many bytes in all make a call or result go by HDF5
ARRAY_BYTES = 1 << 20
OBJSER_ZIP = "fleetslurm_objser.zip"
OBJSER_PACKAGE = "_fleetslurm_objser"


def array_bytes(obj, limit=10000):
    """Bytes of numpy arrays in ``obj`` (itself, or inside dicts, lists and
    tuples, a few levels deep); 0 when numpy was never imported."""
    np = sys.modules.get("numpy")
    if np is None:
        return 0
    total, stack, seen = 0, [(obj, 0)], 0
    while stack and seen < limit:
        item, depth = stack.pop()
        seen += 1
        if isinstance(item, np.ndarray):
            total += item.nbytes
        elif depth < 4 and type(item) in (list, tuple):
            stack.extend((x, depth + 1) for x in item)
        elif depth < 4 and type(item) is dict:
            stack.extend((x, depth + 1) for x in item.values())
    return total


def object_serializer(folder):
    """fleetslurm's ObjectSerializer class: the copy shipped beside this runner
    (the submit host's version), else an installed fleetslurm's."""
    shipped = os.path.join(folder, OBJSER_ZIP)
    if os.path.exists(shipped):
        if shipped not in sys.path:
            sys.path.insert(0, shipped)
        module = __import__(OBJSER_PACKAGE + ".api.objser.serializer",
                            fromlist=["ObjectSerializer"])
    else:
        from fleetslurm.api.objser import serializer as module
    module.files.libs()  # h5py, hdf5plugin, numpy: ImportError here when missing
    return module.ObjectSerializer


def header(magic, kind):
    return _HEADER.pack(magic, VERSION, kind)


def write_atomic(path, data):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_error(path, type_name, message, tb=""):
    body = json.dumps({"type": type_name, "message": message, "traceback": tb,
                       "python": sys.executable}).encode("utf-8")
    write_atomic(path, header(RESULT_MAGIC, b"E") + body)


def read_call(path):
    """The call file's kind and body; ValueError on a bad header."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < _HEADER.size:
        raise ValueError("%s is not a fleetslurm call file (it is %d bytes long)"
                         % (path, len(data)))
    magic, version, kind = _HEADER.unpack_from(data)
    if magic != CALL_MAGIC or kind not in (b"C", b"H"):
        raise ValueError("%s is not a fleetslurm call file (magic %r)" % (path, magic))
    if version != VERSION:
        raise ValueError("%s has payload format version %d; this runner reads version %d: "
                         "submit with the same fleetslurm version" % (path, version, VERSION))
    return kind, memoryview(data)[_HEADER.size:]


def load_call(cloudpickle, kind, body, folder):
    """(fn, args, kwargs) from a call file's body; the sources it carries
    are registered with linecache."""
    if kind == b"C":
        fn, args, kwargs, sources = cloudpickle.loads(body)
        linecache.cache.update(sources)
        return fn, args, kwargs
    fn, data_file, sources = cloudpickle.loads(body)
    linecache.cache.update(sources)
    try:
        serializer = object_serializer(folder)
    except ImportError as exc:
        raise ImportError("the call's arguments hold large numpy arrays, stored with HDF5: "
                          "the job's python %s needs h5py, hdf5plugin and numpy (%s); "
                          "install them there" % (sys.executable, exc)) from exc
    store = serializer(os.path.join(folder, data_file))
    return fn, store.load("/args"), store.load("/kwargs")


def write_value(result_path, value):
    """The return value as a result file: by HDF5 when it holds large arrays
    and this python can (else, and otherwise, one pickle)."""
    import cloudpickle

    if array_bytes(value) >= ARRAY_BYTES:
        folder = os.path.dirname(os.path.abspath(result_path))
        try:
            serializer = object_serializer(folder)
        except ImportError:
            serializer = None  # no h5py here: a plain pickle does it too
        if serializer is not None:
            h5 = os.path.splitext(result_path)[0] + ".h5"
            serializer(h5).serialize(value, "/result")
            os.chmod(h5, 0o600)
            body = json.dumps({"file": os.path.basename(h5)}).encode("utf-8")
            write_atomic(result_path, header(RESULT_MAGIC, b"H") + body)
            return
    write_atomic(result_path, header(RESULT_MAGIC, b"V") + cloudpickle.dumps(value))


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: runner.py CALL_FILE RESULT_FILE\n")
        return 2
    call_path, result_path = argv[1], argv[2]
    # like `python script.py` run from the submit directory: its modules import
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        import cloudpickle
    except ImportError as exc:
        message = ("cloudpickle is not installed for %s on %s (%s): install it there "
                   "(`%s -m pip install cloudpickle`) or give the Executor a python or "
                   "conda_env that has it" % (sys.executable, os.uname().nodename, exc,
                                              sys.executable))
        write_error(result_path, "ModuleNotFoundError", message)
        sys.stderr.write("fleetslurm runner: %s\n" % message)
        return 1
    try:
        kind, body = read_call(call_path)
    except (OSError, ValueError) as exc:
        write_error(result_path, "SerializationError", str(exc))
        sys.stderr.write("fleetslurm runner: %s\n" % exc)
        return 1
    try:
        fn, args, kwargs = load_call(cloudpickle, kind, body,
                                     os.path.dirname(os.path.abspath(call_path)))
    except BaseException as exc:
        tb = traceback.format_exc()
        write_error(result_path, type(exc).__name__,
                    "cannot load the call on %s: %s (the job's python needs the libraries "
                    "the call uses)" % (os.uname().nodename, exc), tb)
        sys.stderr.write(tb)
        return 1
    name = getattr(fn, "__qualname__", None) or repr(fn)
    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt are failures too
        # from the user's function down: the runner's own frame says nothing
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next))
        write_error(result_path, type(exc).__name__, str(exc), tb)
        sys.stderr.write(tb)
        return 1
    try:
        write_value(result_path, value)
    except BaseException as exc:
        tb = traceback.format_exc()
        write_error(result_path, type(exc).__name__,
                    "the result of %s could not be stored: %s" % (name, exc), tb)
        sys.stderr.write(tb)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

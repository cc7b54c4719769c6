#!/usr/bin/env python3
"""fleetslurm's job runner: runs one pickled Python call on a node.

    python3 runner.py CALL_FILE RESULT_FILE

Staged next to the payload and run by the job's batch script. It must stay
self-contained (standard library only, plus cloudpickle in the job's python):
nodes do not have fleetslurm installed.

Files start with a header: an 8-byte magic, a 2-byte big-endian format
version, a 1-byte kind. A call file (magic ``FLSLCALL``, kind ``C``) holds
``cloudpickle.dumps((fn, args, kwargs))``. A result file (magic ``FLSLRSLT``)
is kind ``V`` (the pickled return value) or ``E`` (a failure as UTF-8 JSON
text: ``type``, ``message``, ``traceback``, never a pickled exception). The
result is written to a temporary file and renamed, so a reader never sees
half of one. Exit status: 0 when the call returned, 1 when it failed.
"""

import json
import os
import struct
import sys
import traceback

CALL_MAGIC = b"FLSLCALL"
RESULT_MAGIC = b"FLSLRSLT"
VERSION = 1
_HEADER = struct.Struct(">8sHc")


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
    """The call file's body (the pickled call); ValueError on a bad header."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < _HEADER.size:
        raise ValueError("%s is not a fleetslurm call file (it is %d bytes long)"
                         % (path, len(data)))
    magic, version, kind = _HEADER.unpack_from(data)
    if magic != CALL_MAGIC or kind != b"C":
        raise ValueError("%s is not a fleetslurm call file (magic %r)" % (path, magic))
    if version != VERSION:
        raise ValueError("%s has payload format version %d; this runner reads version %d: "
                         "submit with the same fleetslurm version" % (path, version, VERSION))
    return memoryview(data)[_HEADER.size:]


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
        body = read_call(call_path)
    except (OSError, ValueError) as exc:
        write_error(result_path, "SerializationError", str(exc))
        sys.stderr.write("fleetslurm runner: %s\n" % exc)
        return 1
    try:
        fn, args, kwargs = cloudpickle.loads(body)
    except BaseException as exc:
        tb = traceback.format_exc()
        write_error(result_path, type(exc).__name__,
                    "cannot unpickle the call on %s: %s (the job's python needs the same "
                    "libraries as the submitting one)" % (os.uname().nodename, exc), tb)
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
        data = cloudpickle.dumps(value)
    except BaseException as exc:
        tb = traceback.format_exc()
        write_error(result_path, type(exc).__name__,
                    "the result of %s could not be pickled: %s" % (name, exc), tb)
        sys.stderr.write(tb)
        return 1
    write_atomic(result_path, header(RESULT_MAGIC, b"V") + data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

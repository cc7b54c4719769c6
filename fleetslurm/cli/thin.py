"""The thin client: ``sbatch``, ``squeue`` and ``sacct`` in about Python's start.

Client libraries call these in loops (submitit polls ``sacct -j``), and a
shim that imports the command's modules spends 25 ms or more before it
sends anything (pathlib,
json with re, socket with enum, the option tables). This module uses only
what a ``python -S`` process has loaded or builds in (``sys``, ``posix``,
``_socket``, ``_json``, ``pwd``): it finds the controller by the same rules
as ``rpc.target`` and checks its socket as ``rpc.connect`` does, then sends
its command line, environment, working directory, umask, nice value and uid
in one ``thin`` request; the controller runs the command's own body for it
(``cli/thin_serve.py``) and answers what to write to stdout and stderr, in
order, and the exit status. Who asks is the connection's SO_PEERCRED there,
never the request's. Files the command reads (sbatch's script, or stdin)
are read here, as the caller, when the controller asks for them.

Anything else, it leaves to the full path (``main`` returns None and the
shim imports ``fleetslurm.cli.main``): no controller running yet (the full
path starts one), a lab reached over ``ssh://`` or a socket named by
``FLEETSLURM_CONTROLLER``, inside a job, a socket that fails a check (the
full path says why), an older controller, a controller that answers
``fallback`` (``sbatch -W``, ``sacct`` without ``-j``...),
``FLEETSLURM_NO_FAST_PATH`` or ``FLEETSLURM_DEBUG`` set. Stdin already read is given back to the full path.

Loaded by the shims from its file, without the ``fleetslurm`` package: it
must import nothing of fleetslurm, nor anything beyond the modules above.
"""

import sys

import posix

COMMANDS = ("sbatch", "squeue", "sacct")


def _decode(b):
    return b.decode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())


def _is(path, kind, follow=True):
    """Whether ``path`` is of ``kind`` (the stat S_IFMT value); False when absent."""
    try:
        st = posix.stat(path) if follow else posix.lstat(path)
    except OSError:
        return False
    return (st.st_mode & 0o170000) == kind


def _lab_uids(etc):
    """rpc's lab listener uids: the service account named by lab.json (else
    ``fleetslurm``), and root."""
    import pwd

    user = "fleetslurm"
    try:
        with open(etc + "/lab.json", "rb") as f:
            data = _loads(f.read().decode())
        if isinstance(data, dict) and data.get("service_user"):
            user = str(data["service_user"])
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    try:
        return (pwd.getpwnam(user).pw_uid, 0)
    except KeyError:
        return (0,)


def _target(env):
    """``(socket path, allowed owners)`` as ``rpc.target`` resolves it, or
    None where the full path must go (anything but the personal or the
    lab's controller on this host)."""
    if env.get("FLEETSLURM_STEPS_DIR"):
        return None  # inside a job: its own rules (common.client)
    value = (env.get("FLEETSLURM_CONTROLLER") or "").strip()
    if value not in ("", "personal"):
        return None
    root = env.get("FLEETSLURM_LAB_ROOT") or "/"
    if not root.startswith("/"):
        return None
    etc = root.rstrip("/") + "/etc/fleetslurm"
    if not value and _is(etc + "/fleet_config.json", 0o100000):
        return root.rstrip("/") + "/run/fleetslurm/ctl.sock", _lab_uids(etc)
    home = env.get("FLEETSLURM_HOME")
    if not home:
        base = env.get("HOME")
        if not base or not base.startswith("/"):
            return None
        home = base.rstrip("/") + "/.fleetslurm"
    if not home.startswith("/"):
        return None  # ~ and relative paths: the full path's Path rules
    path = home.rstrip("/") + "/ctl.sock"
    if len(path.encode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())) > 100:
        return None  # paths.StatePaths.socket's short /tmp name
    return path, (posix.geteuid(), 0)


def _connect(path, owners):
    """A connected socket after paths.check_socket's and rpc._check_peer's
    checks; None when one fails or nothing listens (the full path then
    reports it, or starts the controller)."""
    import _socket

    parent = path.rpartition("/")[0] or "/"
    try:
        link = posix.lstat(parent)
        st = posix.stat(parent)
        sock_st = posix.lstat(path)
    except OSError:
        return None
    if link.st_uid not in owners or st.st_uid not in owners or \
            (st.st_mode & 0o170000) != 0o040000 or st.st_mode & 0o022:
        return None
    if (sock_st.st_mode & 0o170000) != 0o140000 or sock_st.st_uid not in owners:
        return None
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.connect(path)
        creds = s.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    except OSError:
        s.close()
        return None
    if int.from_bytes(creds[4:8], sys.byteorder, signed=True) not in owners:
        s.close()
        return None
    return s


class _Ctx:
    """What ``_json.make_scanner`` reads (json.JSONDecoder's defaults)."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo = None

    @staticmethod
    def parse_constant(name):
        return {"NaN": float("nan"), "Infinity": float("inf"),
                "-Infinity": float("-inf")}[name]


def _loads(text):
    import _json

    ctx = _Ctx()
    ctx.memo = {}
    try:
        value, end = _json.make_scanner(ctx)(text, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if text[end:].strip():
        raise ValueError("extra data")
    return value


def _dumps(obj):
    import _json

    enc = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ":", ",",
                             False, False, True)
    return "".join(enc(obj, 0))


def _call(sock, request):
    """One request line out, one answer line back (None: the connection ended)."""
    sock.sendall(_dumps(request).encode() + b"\n")
    chunks = []
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return None
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    return _loads(b"".join(chunks).decode())


def _read(path):
    """The bytes of the file ``path`` (None: stdin) as latin-1 text, or None
    when it cannot be read."""
    if path is None:
        return sys.stdin.buffer.read().decode("latin-1")
    try:
        with open(path, "rb") as f:
            return f.read().decode("latin-1")
    except OSError:
        return None


def main(prog, argv):
    """Run ``prog argv`` through the controller; its exit status, or None
    when the full path must run it (nothing was done then)."""
    try:
        return _main(prog, argv)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _main(prog, argv):
    if prog not in COMMANDS:
        return None
    env = {_decode(k): _decode(v) for k, v in posix.environ.items()}
    if env.get("FLEETSLURM_NO_FAST_PATH") or env.get("FLEETSLURM_DEBUG"):
        return None
    where = _target(env)
    sock = where and _connect(*where)
    if sock is None:
        return None
    mask = posix.umask(0o022)
    posix.umask(mask)
    args = {"prog": prog, "argv": list(argv), "env": env, "cwd": posix.getcwd(),
            "umask": mask, "nice": posix.getpriority(posix.PRIO_PROCESS, 0),
            "uid": posix.getuid(), "files": {}}
    stdin = None
    try:
        for _ in range(4):
            try:
                reply = _call(sock, dict(op="thin", args=args))
            except (OSError, ValueError):
                reply = None
            result = reply.get("result") if isinstance(reply, dict) and reply.get("ok") else None
            if not isinstance(result, dict) or "fallback" in result:
                break
            if "need" in result:
                path = result["need"]
                if path is None:
                    if sys.stdin is None or stdin is not None:
                        break
                    stdin = args["files"]["-"] = _read(None)
                elif isinstance(path, str) and path not in args["files"]:
                    args["files"][path] = _read(path)
                else:
                    break
                continue
            return _write(result)
    finally:
        sock.close()
    if stdin is not None:  # the full path reads it again: give it back
        import io

        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode("latin-1")))
    return None


def _write(result):
    last = None
    for fd, text in result.get("io") or ():
        stream = sys.stdout if fd == 1 else sys.stderr
        if last is not None and last is not stream:
            last.flush()  # one stream's text before the other's, as written
        stream.write(text)
        last = stream
    return int(result.get("code") or 0)

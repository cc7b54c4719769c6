"""The controller's side of the thin client (``cli/thin.py``): it runs
``sbatch``'s, ``squeue``'s and ``sacct``'s own command bodies for a client that sent only
its command line, environment, directory, umask and nice value.

A shim that starts Python and imports the command's modules pays some 25 ms
before it sends anything (the interpreter, pathlib, json, socket, the option
tables); the thin client pays the interpreter alone and lets the controller,
whose modules are loaded, parse and answer. The bodies are the full path's
own (``sbatch_cmd.main``, ``squeue_cmd.main``, ``sacct_cmd.main``), given a :class:`Remote`
instead of ``common.Here``: what they would have read from the process
(environment, cwd, umask, nice, uid, files, stdin) comes from the request,
what they would have written is sent back in order, and the requests they
would have made go to the controller's own handler under the caller's uid
and gid from SO_PEERCRED (never from the request). Errors are reported by
``common.report``, as ``common.run`` reports them.

Answers (the ``thin`` request's result):

- ``{"code": N, "io": [[1|2, text], ...]}``: write the texts to stdout (1)
  and stderr (2) in that order, exit N;
- ``{"need": PATH}`` (``null``: standard input): read it as the caller and
  ask again with ``files`` holding it (``null`` for a file that cannot be
  read) — nothing was done yet;
- ``{"fallback": WHY}``: nothing was done; run the full path in the client
  (``sbatch -W``, ``--test-only``, ``-M``, ``squeue -i``, ``-l``, ``--json``,
  ``sacct`` without ``-j`` or with ``-S``/``-E``: they wait, or read or
  print the client's local time).
"""

from __future__ import annotations

import json
from pathlib import Path
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["handler", "serve", "COMMANDS"]

#: the commands a thin client may ask for, and their modules
COMMANDS = {"sbatch": "sbatch_cmd", "squeue": "squeue_cmd", "sacct": "sacct_cmd"}


class _Fallback(Exception):
    """The command needs the client's own process (not a FleetError: the
    bodies' error handling never catches it)."""


class _NeedInput(Exception):
    """The command reads a file of the client's (or its stdin: None)."""

    def __init__(self, path: "str | None") -> None:
        super().__init__(path)
        self.path = path


def handler(inner: "Callable[..., Any]", personal: bool) -> "Callable[..., Any]":
    """The controller's request handler ``inner(op, args, uid, gid)`` that
    also answers ``thin`` requests (in the RPC thread that read them: the
    body's own requests go through ``inner``, to the loop when they change
    something). ``personal``: the controller is a user's own, not a lab's
    (the full path then warns about another config, ``common._say_config``)."""

    def handle(op: str, args: dict, uid: int, gid: int = -1) -> Any:
        if op == "thin":
            return serve(inner, args, uid, gid, personal)
        return inner(op, args, uid, gid)

    return handle


def _checked(args: Any) -> dict:
    from ..errors import ControllerError

    def strs(v: Any) -> bool:
        return isinstance(v, list) and all(isinstance(x, str) for x in v)

    ok = (isinstance(args, dict) and args.get("prog") in COMMANDS and strs(args.get("argv"))
          and isinstance(args.get("env"), dict)
          and all(isinstance(k, str) and isinstance(v, str) for k, v in args["env"].items())
          and isinstance(args.get("cwd"), str)
          and all(type(args.get(k)) is int for k in ("umask", "nice", "uid"))
          and isinstance(args.get("files") or {}, dict)
          and all(isinstance(v, (str, type(None))) for v in (args.get("files") or {}).values()))
    if not ok:
        raise ControllerError("malformed request 'thin'")
    return args


def serve(inner: "Callable[..., Any]", args: dict, uid: int, gid: int,
          personal: bool) -> dict:
    """Run one thin client's command; its answer (see the module's text)."""
    import importlib

    from ..errors import FleetError
    from .common import report

    args = _checked(args)
    if args["uid"] != uid:
        return {"fallback": "the client's uid is not its connection's"}  # set-uid programs
    env = args["env"]
    if env.get("FLEETSLURM_DEBUG") or env.get("FLEETSLURM_NO_FAST_PATH"):
        return {"fallback": "asked for the full path"}
    prog = args["prog"]
    here = Remote(inner, args, uid, gid, personal)
    module = importlib.import_module(f"fleetslurm.cli.{COMMANDS[prog]}")
    try:
        code = int(module.main(list(args["argv"]), here) or 0)
    except _Fallback as why:
        return {"fallback": str(why)}
    except _NeedInput as need:
        return {"need": need.path}
    except FleetError as exc:
        code = report(prog, exc, here.err)
    except Exception as exc:  # a bug: said as the command's error, never run twice
        from ..errors import internal_error

        code = report(prog, internal_error(exc), here.err)
    return {"code": code, "io": here.io}


class Remote:
    """``common.Here`` for a thin client: the request's environment, cwd,
    umask, nice value and files; output collected in order."""

    def __init__(self, inner: "Callable[..., Any]", args: dict, uid: int, gid: int,
                 personal: bool) -> None:
        self._inner, self._uid, self._gid, self._personal = inner, uid, gid, personal
        self._args = args
        self.environ: dict = args["env"]
        #: [[1 (stdout) or 2 (stderr), text], ...], a run of one stream joined
        self.io: list[list] = []

    def _write(self, fd: int, text: str) -> None:
        if self.io and self.io[-1][0] == fd:
            self.io[-1][1] += text
        elif text:
            self.io.append([fd, text])

    def out(self, text: str) -> None:
        self._write(1, text)

    def err(self, text: str) -> None:
        self._write(2, text)

    def cwd(self) -> str:
        return self._args["cwd"]

    def umask(self) -> int:
        return self._args["umask"]

    def nice(self) -> int:
        return self._args["nice"]

    def uid(self) -> int:
        return self._uid

    def read(self, path: "str | None") -> bytes:
        files = self._args.get("files") or {}
        key = "-" if path is None else path
        if key not in files:
            raise _NeedInput(path)
        if files[key] is None:
            raise FileNotFoundError(path)
        return files[key].encode("latin-1")  # (the client sends bytes as latin-1)

    def here_only(self, what: str) -> None:
        raise _Fallback(what)

    def client(self) -> "_Local":
        if self._personal:  # common.client's _say_config, with the client's lookup
            from ..config_in_force import mismatch
            from ..paths import find_config, state_paths

            found = find_config(environ=self.environ, cwd=Path(self.cwd()))
            line = mismatch(state_paths(self.environ), found)
            if line:
                self.err(f"fleetslurm: {line}\n")
        return _Local(self._inner, self._uid, self._gid)


class _Local:
    """``rpc.Client`` for a body run in the controller: each call is
    answered by the controller's handler as the caller, and comes back as it
    would over the socket (through JSON, errors rebuilt by the same code)."""

    def __init__(self, inner: "Callable[..., Any]", uid: int, gid: int) -> None:
        self._inner, self._uid, self._gid = inner, uid, gid

    def call(self, op: str, **args: Any) -> Any:
        from ..rpc import _error_from, answer

        args = json.loads(json.dumps(args))  # what the socket would have carried
        reply = json.loads(json.dumps(answer(self._inner, op, args, self._uid, self._gid),
                                      separators=(",", ":"), default=str))
        if reply.get("ok"):
            return reply.get("result")
        raise _error_from(reply)

    def set_timeout(self, seconds: "float | None") -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "_Local":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

"""What a client may send: every request is checked here, at the RPC boundary,
before the controller's loop sees it.

``submit`` is a typed pydantic model: its fields reach the store and, through
the job's spec, the node agent, so anything the agent would refuse (an
environment variable without a name, a NUL, a working directory that is not
a path) is refused now, with the field named, and nothing is stored. The
other requests have their common fields checked for type, size and range
(``FIELDS``); fields not listed there are passed on as they came.

Sizes follow SLURM where it has a limit: a batch script of at most
``max_script_size`` (4 MiB by default), refused with SLURM's words.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Optional, Union

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat,
                      StrictInt, StrictStr, TypeAdapter, ValidationError)

from .errors import ControllerError, SubmitError
from .slurm.jobspec import MAX_SCRIPT_BYTES, SCRIPT_TOO_LONG, script_too_long

__all__ = ["MAX_SCRIPT_BYTES", "SubmitArgs", "check_submit", "check_args"]

_TEXT = 64 * 1024          # one option value, path or name
_ENV_ENTRY = 128 * 1024    # the kernel's MAX_ARG_STRLEN for one NAME=value
_ENV_TOTAL = 8 * 1024 * 1024
_LIST = 100_000
_UINT32 = 2**32 - 1
_INT64 = 2**63 - 1


def _no_nul(text: str) -> str:
    if "\0" in text:
        raise ValueError("must not contain a NUL character")
    return text


# (lone surrogates are allowed: they are bytes of a non-UTF-8 path or variable,
# decoded with surrogateescape, and go back to the same bytes on the machine)
Text = Annotated[StrictStr, Field(max_length=_TEXT), AfterValidator(_no_nul)]
_ENV_NAME = re.compile(r"[^=\0]+")


def _env(env: dict[str, str]) -> dict[str, str]:
    total = 0
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid variable name (empty, or holds '=' "
                             "or a NUL)")
        if "\0" in value:
            raise ValueError(f"the value of {name} holds a NUL character")
        size = len(name) + len(value) + 2
        if size > _ENV_ENTRY:
            raise ValueError(f"{name} is longer than {_ENV_ENTRY} bytes (the kernel's limit "
                             "for one variable)")
        total += size
    if total > _ENV_TOTAL:
        raise ValueError(f"the environment is larger than {_ENV_TOTAL} bytes")
    return env


def _absolute(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError("must be an absolute path")
    return path


def _script(text: str) -> str:
    if script_too_long(text):
        raise ValueError(SCRIPT_TOO_LONG)
    return text


# an option's value may be as long as a script: --wrap's command is one
_OptText = Annotated[StrictStr, Field(max_length=MAX_SCRIPT_BYTES), AfterValidator(_no_nul)]
_OptValue = Union[StrictBool, Annotated[StrictInt, Field(ge=-_INT64, le=_INT64)], _OptText,
                  Annotated[list[_OptText], Field(max_length=1024)]]
_OptName = Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class SubmitArgs(BaseModel):
    """The ``submit`` request (sbatch, srun outside an allocation, the API)."""

    model_config = ConfigDict(extra="forbid")

    options: Annotated[dict[_OptName, Optional[_OptValue]], Field(max_length=512)] = {}
    script: Annotated[StrictStr, AfterValidator(_script)]
    # one argument may be as long as the kernel takes (MAX_ARG_STRLEN)
    script_args: Annotated[list[Annotated[StrictStr, Field(max_length=_ENV_ENTRY),
                                          AfterValidator(_no_nul)]],
                           Field(max_length=_LIST)] = []
    env: Annotated[dict[StrictStr, StrictStr], AfterValidator(_env)] = {}
    cwd: Annotated[Text, Field(min_length=1, max_length=4096), AfterValidator(_absolute)]
    submit_host: Optional[Annotated[Text, Field(max_length=255)]] = None
    script_name: Optional[Annotated[Text, Field(max_length=4096)]] = None
    command: Optional[_OptText] = None
    #: the caller's uid and gid as it believes them: never taken (the kernel's
    #: word, SO_PEERCRED, counts); one that differs is refused (own_identity)
    uid: Optional[Annotated[StrictInt, Field(ge=0, le=_UINT32)]] = None
    gid: Optional[Annotated[StrictInt, Field(ge=0, le=_UINT32 - 1)]] = None
    prio_process: Optional[Annotated[StrictInt, Field(ge=-20, le=19)]] = None
    srun: Optional[StrictBool] = None
    stdin_stream: Optional[StrictBool] = None
    srun_direct: Optional[StrictBool] = None
    stage: Optional[dict[StrictStr, Any]] = None
    #: the submission's own id (a resent request gets the job it made, once)
    token: Optional[Annotated[Text, Field(min_length=16, max_length=64)]] = None


def _describe(exc: ValidationError) -> str:
    """pydantic's errors as one line per field: ``cwd: Input should be ...``."""
    lines = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "request"
        msg = str(err["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        lines.append(f"{where}: {msg}")
    return "; ".join(lines)


def check_submit(args: Any) -> dict:
    """``args`` of a submit request, checked; SubmitError names the bad field."""
    try:
        model = SubmitArgs.model_validate(args)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            if err["loc"] == ("script",) and SCRIPT_TOO_LONG in str(err["msg"]):
                raise SubmitError(SCRIPT_TOO_LONG) from None
        raise SubmitError("Batch job submission failed: invalid request: "
                          f"{_describe(exc)}") from None
    return model.model_dump(exclude_none=True)


def own_identity(args: dict, uid: int, gid: int) -> dict:
    """A checked submit request with the caller's identity as the kernel
    gives it (SO_PEERCRED): ``uid``/``gid`` a client puts in the request are
    never taken, and one that differs from the kernel's is refused (a
    client claiming to be someone else). ``gid`` becomes the peer's gid
    (-1: unknown, the user's primary group is used)."""
    said_uid, said_gid = args.pop("uid", None), args.pop("gid", None)
    if said_uid is not None and said_uid != uid:
        raise SubmitError(
            f"Batch job submission failed: the request says uid {said_uid}, but you are uid "
            f"{uid}: the controller takes who you are from the connection (SO_PEERCRED), "
            "never from the request; do not set uid in it")
    if said_gid is not None and gid >= 0 and said_gid != gid:
        raise SubmitError(
            f"Batch job submission failed: the request says gid {said_gid}, but your process "
            f"runs as gid {gid}: the controller takes your group from the connection "
            "(SO_PEERCRED) and the user database, never from the request; run the "
            f"command as that group (`sg GROUP -c ...`) instead")
    if gid >= 0:
        args["gid"] = gid
    return args


# -- the other requests: their common fields ------------------------------------------
_Id = Union[Annotated[StrictInt, Field(ge=0)], Annotated[Text, Field(max_length=1024)]]
_Names = Union[Text, Annotated[list[Text], Field(max_length=_LIST)]]


def _finite(x: float) -> float:
    if not math.isfinite(x):
        raise ValueError("must be a finite number")
    return x


_Number = Annotated[Union[StrictInt, StrictFloat], Field(ge=-_INT64, le=_INT64),
                    AfterValidator(_finite)]
_Count = Annotated[StrictInt, Field(ge=0, le=2**31 - 1)]

#: field name -> what it must be, wherever a request carries it
FIELDS: dict[str, Any] = {
    "ids": Annotated[list[_Id], Field(max_length=_LIST)],
    "id": _Id,
    # a task's own id (srun's SLURM_JOB_ID), digits only
    "job_id": Union[Annotated[StrictInt, Field(ge=0, le=_UINT32)],
                    Annotated[StrictStr, Field(pattern=r"^[0-9]{1,18}$")]],
    "task_id": Annotated[StrictInt, Field(ge=0, le=_UINT32)],
    "step_id": Annotated[StrictInt, Field(ge=0, le=_UINT32)],
    "run_key": Annotated[Text, Field(max_length=256)],
    "signal": Annotated[StrictInt, Field(ge=0, le=64)],
    "ntasks": _Count, "cpus": _Count, "offset": Annotated[StrictInt, Field(ge=0, le=_INT64)],
    "exit_code": Annotated[StrictInt, Field(ge=-(2**31), le=2**31 - 1)],
    "exit_signal": Annotated[StrictInt, Field(ge=0, le=255)],
    "max_rss_kb": Annotated[StrictInt, Field(ge=0, le=_INT64)],
    "user_cpu": _Number, "system_cpu": _Number, "since": _Number, "until": _Number,
    "now": _Number,
    "name": _Names, "names": _Names, "users": _Names, "states": _Names, "partition": _Names,
    "partitions": _Names, "nodelist": _Names,
    "nodes": Text, "state": Text, "reason": Text, "which": Text, "mode": Text, "format": Text,
    "entity": Text, "accounts": _Names,
    "data": Annotated[StrictStr, Field(max_length=4 * 1024 * 1024)],
    "fields": Union[Annotated[dict[Text, Text], Field(max_length=1024)],
                    Annotated[list[Any], Field(max_length=1024)]],
    **{flag: StrictBool for flag in ("abort", "batch", "full", "verbose", "hold", "user", "eof",
                                     "raw", "steps", "squeue", "header", "one_liner", "per_task",
                                     "records_only", "allocations_only", "group_arrays",
                                     "format_long", "dry")},
}
_ADAPTERS = {name: TypeAdapter(Optional[kind]) for name, kind in FIELDS.items()}
#: fields whose shape depends on the request, and the fields a request needs
_OP_FIELDS: dict[str, dict[str, Any]] = {
    # sacct's columns: (name, width, key)
    "acct": {"fields": Annotated[list[tuple[Text, Annotated[StrictInt, Field(
        ge=-(2**31), le=2**31 - 1)], Text]], Field(max_length=1024)]},
    # scontrol update's KEY=VALUE pairs
    "update_job": {"fields": Annotated[dict[Text, Text], Field(max_length=1024)]},
    # the dashboard's Queue view: the change log's seq, the priorities'
    # version and the controller's start of its last answer
    "squeue_delta": {"seq": Annotated[StrictInt, Field(ge=0, le=_INT64)],
                     "version": Annotated[StrictInt, Field(ge=0, le=_INT64)],
                     "epoch": _Number},
    # seconds a wait request may be held (the controller holds it 30 s at most)
    "wait": {"timeout": Annotated[Union[StrictInt, StrictFloat], Field(ge=0, le=_INT64),
                                  AfterValidator(_finite)]},
}
_OP_ADAPTERS = {op: {name: TypeAdapter(Optional[kind]) for name, kind in fields.items()}
                for op, fields in _OP_FIELDS.items()}
_REQUIRED = {"acct": ("fields",), "wait": ("ids",), "history": ("task_id",), "squeue": ("format",),
             "squeue_delta": ("format",),
             "step_end": ("job_id", "step_id")}


def check_args(op: str, args: Any) -> dict:
    """A request's ``args``: a JSON object whose listed fields have their
    type, size and range. ``submit`` gets its full model (:func:`check_submit`).
    ControllerError names the first bad field."""
    if not isinstance(args, dict):
        raise ControllerError(f"malformed request {op!r}: args must be a JSON object")
    if op == "submit":
        return check_submit(args)
    for name in _REQUIRED.get(op, ()):
        if args.get(name) is None:
            raise ControllerError(f"malformed request {op!r}: {name} is required")
    own = _OP_ADAPTERS.get(op, {})
    for name, value in args.items():
        adapter = own.get(name) or _ADAPTERS.get(name)
        if adapter is None or value is None:
            continue
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            raise ControllerError(f"malformed request {op!r}: {name}: "
                                  f"{_describe(exc).split(': ', 1)[-1]}") from None
    return args

"""``sacctmgr show qos|assoc`` (the limits in force) and ``sacctmgr add|modify|
delete qos`` (root, and the user the controller runs as: SLURM's SlurmUser),
kept in the store so a restart keeps them."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional

from ...config import QosConfig
from ...errors import AccessDenied, InvalidValue, UsageError
from ...slurm.tres import format_tres, parse_tres
from ...slurm.units import parse_time_limit

if TYPE_CHECKING:
    from ..context import Context

__all__ = ["op_qos_show", "op_qos_change", "QOS_SETTINGS"]

#: what ``set`` may change: the config's field and its kind
QOS_SETTINGS = {"Description": "text", "Priority": "int", "MaxJobsPerUser": "int",
                "MaxSubmitJobsPerUser": "int", "MaxTRESPerUser": "tres", "MaxWall": "time",
                "GrpTRES": "tres", "GrpJobs": "int"}


def op_qos_show(ctx: "Context", args: dict, uid: int, now: float) -> dict:
    """Every QOS (in the order they were made: ``normal`` first), as the config
    fields hold them (the associations' limits: ``assoc_show``)."""
    lim = ctx.limits
    return {"qos": [{"Name": n, **q.model_dump()} for n, q in lim.qos.items()]}


def _apply(rec: dict, settings: dict[str, str]) -> dict:
    """``rec`` (a QosConfig's fields) with sacctmgr's ``set`` values; -1 clears."""
    out = dict(rec)
    for key, value in settings.items():
        kind = QOS_SETTINGS.get(key)
        if kind is None:
            raise UsageError(f" Unknown option: {key}={value}\n"
                             " Use keyword 'where' to modify condition", prog="sacctmgr")
        if kind == "text":
            out[key] = value
        elif kind == "int":
            try:
                n = int(value, 10)
            except ValueError:
                raise UsageError(f"Invalid value for {key} ({value}): give a whole number, "
                                 "or -1 for no limit", prog="sacctmgr") from None
            if n < -1:
                raise UsageError(f"Invalid value for {key} ({value}): give a whole number, "
                                 "or -1 for no limit", prog="sacctmgr")
            out[key] = (0 if key == "Priority" else None) if n == -1 else n
        elif kind == "time":
            if value == "-1":
                out[key] = None
            else:
                try:
                    parse_time_limit(value, option=key)
                except InvalidValue as exc:
                    raise UsageError(f"Invalid value for {key} ({value}): {exc}",
                                     prog="sacctmgr") from None
                out[key] = value
        else:  # TRES: merged with the ones already set, -1 removes one
            try:
                have = parse_tres(out.get(key) or "")
                have.update(parse_tres(value, what=key))
            except InvalidValue as exc:
                raise UsageError(str(exc), prog="sacctmgr") from None
            out[key] = format_tres(have)
    return QosConfig.model_validate(out).model_dump()


def op_qos_change(ctx: "Context", args: dict, uid: int, now: float) -> dict:
    """``mode`` add, modify or delete the QOS ``names``, with ``fields`` (the
    ``set`` values) for add and modify. Returns the names changed (with
    ``dry``: the names it would change and whether the caller may, nothing
    stored: sacctmgr asks first)."""
    # root, and the user the controller runs as (SLURM's SlurmUser: the lab's
    # service user, or the owner of a one-user fleet); anyone may see what an
    # add would make (SLURM's sacctmgr prints it, then slurmdbd refuses it)
    mode = args.get("mode")
    allowed = uid in (0, os.getuid())
    if not allowed and not (args.get("dry") and mode == "add"):
        raise AccessDenied("Your user doesn't have privilege to perform this action")
    names = [n.lower() for n in (args.get("names") or [])]
    settings: dict[str, str] = dict(args.get("fields") or {})
    if not names:
        raise UsageError(" Need name of qos to change (sacctmgr modify qos NAME set ...)",
                         prog="sacctmgr")
    lim = ctx.limits
    changed: list[str] = []
    for name in names:
        have: Optional[QosConfig] = lim.qos.get(name)
        if mode == "add":
            if have is not None:
                continue
            import re

            if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
                raise UsageError(f" Bad QOS name {name!r}: use letters, digits, '.', '_' "
                                 "and '-'", prog="sacctmgr")
            base = QosConfig().model_dump()
            base["Description"] = settings.get("Description")
            rec = _apply(base, settings)
        elif mode == "modify":
            if have is None:
                continue
            rec = _apply(have.model_dump(), settings)
        elif mode == "delete":
            if have is None:
                continue
            if name == "normal":
                raise UsageError(" The QOS normal is the default QOS of every association "
                                 "and cannot be deleted", prog="sacctmgr")
            rec = None
        else:
            raise UsageError(f"unknown change {mode!r}", prog="sacctmgr")
        if not args.get("dry"):
            ctx.store.set_qos(name, rec)
        changed.append(name)
    if changed and not args.get("dry"):
        lim.reload(ctx.store)
        ctx.fairshare.qos_priorities = lim.priorities()
        ctx.emit(lim.event())
    return {"changed": changed, "allowed": allowed} if args.get("dry") else {"changed": changed}



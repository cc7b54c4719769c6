"""``sacctmgr show assoc|account|user`` (the association tree in force) and
``sacctmgr add|modify|delete account|user`` (root, and the user the
controller runs as: SLURM's SlurmUser), kept in the store so a restart keeps
them (see :mod:`fleetslurm.ctld.assocs`)."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, Optional

from ...errors import AccessDenied, InvalidValue, UsageError
from ...model import ACTIVE_STATE_NAMES
from ...slurm.tres import format_tres, parse_tres
from ...slurm.units import parse_time_limit
from ..assocs import LIMITS

if TYPE_CHECKING:
    from ..context import Context

__all__ = ["op_assoc_show", "op_assoc_change", "ACCOUNT_FIELDS", "USER_FIELDS"]

PROG = "sacctmgr"
#: what an account's record holds besides LIMITS
ACCOUNT_FIELDS = ("Parent", "Description", "Organization")
#: what a user's own record holds
USER_FIELDS = ("DefaultAccount",)
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def op_assoc_show(ctx: "Context", args: dict, uid: int, now: float) -> dict:
    """Every association (for the ``users`` the client names, and those the
    controller knows), with its own settings and what it inherits."""
    users = args.get("users") or []
    return {"assocs": ctx.limits.assocs.show([users] if isinstance(users, str) else users)}


def _value(key: str, value: str, have: Any, op: str = "") -> Any:
    """sacctmgr's ``KEY=VALUE`` as the record keeps it; ``-1`` clears a limit.
    ``op`` is ``+`` or ``-`` for ``QOS+=`` and ``QOS-=``."""
    kind = LIMITS.get(key, "text")
    bad = f" Invalid value for {key} ({value}): "
    if kind == "int":
        try:
            n = int(value, 10)
        except ValueError:
            raise UsageError(bad + "give a whole number, or -1 for no limit", prog=PROG) from None
        if n < -1 or n > 4294967294:
            raise UsageError(bad + "give a whole number, or -1 for no limit", prog=PROG)
        if key == "Fairshare":
            return 1 if n == -1 else n
        return None if n == -1 else n
    if kind == "time":
        if value == "-1":
            return None
        try:
            parse_time_limit(value, option=key)
        except InvalidValue as exc:
            raise UsageError(f" Bad {key} time format: {value} ({exc})", prog=PROG) from None
        return value
    if kind == "tres":
        try:
            merged = parse_tres(have or "")
            merged.update(parse_tres(value, what=key))
        except InvalidValue as exc:
            raise UsageError(f" {exc}", prog=PROG) from None
        return format_tres(merged) or None
    if kind == "list":  # QOS: "a,b", "+=a", "-=a"; -1 or "" back to every QOS
        wanted = [n.lower() for n in value.split(",") if n and n != "-1"]
        if op == "+":
            wanted = list(dict.fromkeys(list(have or []) + wanted))
        elif op == "-":
            wanted = [n for n in (have or []) if n not in wanted]
        return sorted(wanted) or None
    return value if value not in ("", "-1") or key in ("Description", "Organization") else None


def _apply(ctx: "Context", rec: dict, settings: dict[str, str]) -> dict:
    out = dict(rec)
    for key, value in settings.items():
        op = ""
        if key in ("QOS+", "QOS-"):
            op, key = key[-1], "QOS"
        out[key] = _value(key, value, out.get(key), op)
    for name in out.get("QOS") or []:
        if name not in ctx.limits.qos:
            raise UsageError(f" You gave a bad qos '{name}'.  Use 'list qos' to get complete "
                             "list.", prog=PROG)
    dq = out.get("DefaultQOS")
    if dq is not None:
        out["DefaultQOS"] = dq = str(dq).lower()
        if dq not in ctx.limits.qos:
            raise UsageError(f"You gave a bad default qos '{dq}'.  Use 'list qos' to get "
                             "complete list.", prog=PROG)
    return {k: v for k, v in out.items() if v is not None}


def _active(ctx: "Context", account: str, user: Optional[str]) -> list[int]:
    """Pending or running jobs of the association (any user's: ``user`` None)."""
    states = ",".join(f"'{s}'" for s in ACTIVE_STATE_NAMES)
    out = []
    for task in ctx.store.tasks(f"state IN ({states})"):
        if task["req"].get("account") != account:
            continue
        if user is not None:
            job = ctx.store.job(task["job_id"])
            if job is None or job["user"] != user:
                continue
        out.append(task["task_id"])
    return out


def _busy(ctx: "Context", account: str, user: Optional[str]) -> None:
    jobs = _active(ctx, account, user)
    if jobs:
        raise UsageError(" Error with request: Job(s) active, cancel job(s) before remove\n"
                         + "".join(f"  JobID = {j:<10} C = {ctx.config.cluster_name:<10} "
                                   f"A = {account:<10} U = {user or '':<9}\n" for j in jobs[:20]),
                         prog=PROG)


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value or []]


def op_assoc_change(ctx: "Context", args: dict, uid: int, now: float) -> dict:
    """``mode`` add, modify or delete; ``entity`` account or user; ``names``;
    ``accounts`` (``where account=``, or add user's ``Account=``); ``fields``
    (the ``set`` values, canonical keys). Returns ``changed``: the
    associations (account, user) touched, ``whole``: the accounts or users
    made or removed whole, ``records``: accounts or users whose own fields
    changed, ``allowed``: whether the caller may make the change (root and
    the controller's own user: SLURM's SlurmUser). With ``dry`` nothing is
    stored (sacctmgr shows what would change first)."""
    mode, entity = args.get("mode"), args.get("entity")
    allowed = uid in (0, os.getuid())
    # anyone may see what an add would make (SLURM's sacctmgr prints it, then
    # slurmdbd refuses the add); nothing else is shown to, or done for, others
    if not allowed and not (args.get("dry") and mode == "add"):
        raise AccessDenied("Your user doesn't have privilege to perform this action")
    names = _listed(args.get("names"))
    accounts = _listed(args.get("accounts"))
    settings: dict[str, str] = dict(args.get("fields") or {})
    writes: list[tuple[str, str, Optional[dict]]] = []
    result: dict[str, Any] = {"changed": [], "whole": [], "records": [], "allowed": allowed}
    if entity == "account":
        _accounts(ctx, mode, names, accounts, settings, writes, result)
    elif entity == "user":
        _users(ctx, mode, names, accounts, settings, writes, result)
    else:
        raise UsageError(f" Unknown entity {entity!r}: account or user", prog=PROG)
    if writes and not args.get("dry"):
        for account, user, rec in writes:
            ctx.store.set_assoc(account, user, rec)
        ctx.limits.reload(ctx.store)
        ctx.emit(ctx.limits.event())
        ctx.fairshare.force_recompute()
    return result


def _accounts(ctx: "Context", mode: Any, names: list[str], where: list[str],
              settings: dict[str, str], writes: list, result: dict) -> None:
    book = ctx.limits.assocs
    if mode == "add":
        parent = settings.get("Parent") or "root"
        if book.account(parent) is None:
            raise UsageError(f" Parent account '{parent}' doesn't exist on cluster "
                             f"{ctx.config.cluster_name}\n        Contact your admin to add "
                             "this account.", prog=PROG)
        for name in names:
            if not _NAME.fullmatch(name):
                raise UsageError(f" Bad account name {name!r}: use letters, digits, '.', '_' "
                                 "and '-'", prog=PROG)
            if book.account(name) is not None:
                continue
            rec = {"Parent": parent, "Description": name,
                   "Organization": parent if parent != "root" else name, "Fairshare": 1}
            rec = _apply(ctx, rec, settings)
            writes.append((name, "", rec))
            result["whole"].append(name)
            result["changed"].append([name, ""])
        return
    wanted = names + where
    if mode == "modify":
        for name in wanted:
            have = book.account(name)
            if have is None:
                continue
            rec = _apply(ctx, have, settings)
            parent = rec.get("Parent") or ""
            if "Parent" in settings:
                if name == "root" or book.account(parent) is None:
                    raise UsageError(f" Parent Account {parent} doesn't exist.", prog=PROG)
                seen, up = {name}, parent
                while up:  # no account may end up below itself
                    if up in seen:
                        raise UsageError(" You can't make an account be a child of it's self",
                                         prog=PROG)
                    seen.add(up)
                    up = (book.account(up) or {}).get("Parent") or ""
            writes.append((name, "", rec))
            if set(settings) - {"Description", "Organization"}:
                result["changed"].append([name, ""])  # the association's settings
            if set(settings) & {"Description", "Organization"}:
                result["records"].append(name)  # the account's own
        return
    if mode == "delete":
        for name in wanted:
            if name == "root":
                raise UsageError(" You are not allowed to remove the root account.\n"
                                 " Use remove cluster instead.", prog=PROG)
            if book.account(name) is None:
                continue
            _busy(ctx, name, None)
            below = [a.account for a in book.tree() if not a.user and a.parent_name == name]
            if below:
                raise UsageError(f" Error with request: account {name} has sub-accounts "
                                 f"({', '.join(below)}): delete or move them first "
                                 "(sacctmgr modify account NAME set Parent=...)", prog=PROG)
            writes.append((name, "", None))
            for (a, u), rec in book.changes.items():
                if a == name and u and rec is not None:
                    writes.append((a, u, None))
            result["whole"].append(name)
            result["changed"].append([name, ""])
        return
    raise UsageError(f" Unknown change {mode!r}", prog=PROG)


def _users(ctx: "Context", mode: Any, names: list[str], where: list[str],
           settings: dict[str, str], writes: list, result: dict) -> None:
    book = ctx.limits.assocs
    default = settings.pop("DefaultAccount", None)
    if mode == "add":
        accounts = where + ([default] if default and default not in where else [])
        if not accounts:
            raise UsageError(" Need name of account to add user to.", prog=PROG)
        for account in accounts:
            if book.account(account) is None:
                raise UsageError(f" This account '{account}' doesn't exist.\n"
                                 "        Contact your admin to add this account.", prog=PROG)
        for user in names:
            if not _NAME.fullmatch(user):
                raise UsageError(f" Bad user name {user!r}", prog=PROG)
            new_user = not book.accounts_of(user)
            added = 0
            for account in accounts:
                if book.user_assoc(account, user) is not None:
                    continue
                writes.append((account, user, _apply(ctx, {"Fairshare": 1}, settings)))
                result["changed"].append([account, user])
                added += 1
            if new_user and added:
                result["whole"].append(user)
            if default or new_user:
                writes.append(("", user, {"DefaultAccount": default or accounts[0]}))
        return
    if mode == "modify":
        for user in names:
            mine = [a for a in book.accounts_of(user) if not where or a in where]
            if settings:
                for account in mine:
                    rec = book.user_assoc(account, user) or {}
                    writes.append((account, user, _apply(ctx, rec, settings)))
                    result["changed"].append([account, user])
            if default is not None and book.accounts_of(user):
                if book.user_assoc(default, user) is None:
                    raise UsageError(f" User {user} has no association in account {default}: "
                                     f"first: sacctmgr add user {user} Account={default}",
                                     prog=PROG)
                writes.append(("", user, {"DefaultAccount": default}))
                result["records"].append(user)
        return
    if mode == "delete":
        for user in names:
            mine = [a for a in book.accounts_of(user) if not where or a in where]
            for account in mine:
                _busy(ctx, account, user)
                writes.append((account, user, None))
                result["changed"].append([account, user])
            if mine and len(mine) == len(book.accounts_of(user)):
                result["whole"].append(user)
                if not where:
                    writes.append(("", user, None))
        return
    raise UsageError(f" Unknown change {mode!r}", prog=PROG)

"""``sacctmgr [-i] add|modify|delete account|user ...``: SLURM 22.05's syntax
and output (src/sacctmgr/account_functions.c, user_functions.c).

    sacctmgr -i add account physics Description="physics dept" Fairshare=10
    sacctmgr -i add user alice Account=physics [DefaultAccount=physics]
    sacctmgr -i modify account physics set GrpTRES=cpu=8 MaxJobs=4
    sacctmgr -i modify user alice where account=physics set Fairshare=5 QOS+=high
    sacctmgr -i modify user alice set DefaultAccount=physics
    sacctmgr -i delete user alice where account=physics
    sacctmgr -i delete account physics

Without ``-i`` the change is shown and confirmed on stdin (see
:mod:`.sacctmgr_change`). Only root and the controller's own user (SLURM's
SlurmUser) may change anything: the controller refuses anyone else.
"""

from __future__ import annotations

import sys
from typing import Optional

from ..errors import AccessDenied, UsageError
from .sacctmgr_change import PROG, _confirm

__all__ = ["parse_assoc_change", "change_assoc"]

#: (SLURM's full key, letters needed, what it sets), in sacctmgr's order of tests
_SETTINGS = (
    ("DefaultQOS", 8, "DefaultQOS"), ("FairShare", 1, "Fairshare"), ("Shares", 1, "Fairshare"),
    ("GrpJobs", 4, "GrpJobs"), ("GrpTRES", 7, "GrpTRES"), ("MaxJobs", 4, "MaxJobs"),
    ("MaxSubmitJobs", 4, "MaxSubmitJobs"), ("MaxTRESPerJob", 7, "MaxTRES"),
    ("MaxWallDurationPerJob", 4, "MaxWall"), ("Parent", 2, "Parent"), ("QosLevel", 1, "QOS"),
)
_ACCOUNT_KEYS = (("Description", 1, "Description"), ("Organization", 1, "Organization"))
_USER_KEYS = (("DefaultAccount", 8, "DefaultAccount"),)
#: order sacctmgr_print_assoc_limits prints them in, with its labels
_PRINTED = (("Fairshare", "Fairshare    "), ("GrpJobs", "GrpJobs      "),
            ("GrpTRES", "GrpTRES      "), ("MaxJobs", "MaxJobs      "),
            ("MaxSubmitJobs", "MaxSubmitJobs"), ("MaxTRES", "MaxTRES      "),
            ("MaxWall", "MaxWall      "), ("Parent", "Parent       "), ("QOS", "QOS          "),
            ("DefaultQOS", "DefQOS       "))
_MODE = {"add": "add", "create": "add", "modify": "modify", "update": "modify",
         "delete": "delete", "remove": "delete"}


def _match(key: str, table: tuple) -> Optional[str]:
    low = key.lower()
    for full, need, canon in table:
        if len(low) >= need and full.lower().startswith(low):
            return canon
    return None


def _is(key: str, full: str, need: int) -> bool:
    return len(key) >= need and full.lower().startswith(key.lower())


def parse_assoc_change(command: str, entity: str, words: list[str]
                       ) -> tuple[str, list[str], list[str], dict[str, str]]:
    """(mode, names, accounts, settings) from the words after ``account`` or
    ``user``: ``accounts`` are the ``where account=`` values (add user's
    ``Account=``); settings' keys are canonical (``QOS+``/``QOS-`` for
    ``QOS+=``/``QOS-=``)."""
    mode = _MODE[command]
    names: list[str] = []
    accounts: list[str] = []
    settings: dict[str, str] = {}
    in_set = mode == "add"  # add takes KEY=VALUE without "set"
    table = _SETTINGS + (_ACCOUNT_KEYS if entity == "account" else _USER_KEYS)
    for word in words:
        key, eq, value = word.partition("=")
        op = ""
        if eq and key[-1:] in "+-" and key:
            op, key = key[-1], key[:-1]
        if not eq:
            if key.lower() == "where" and mode != "add":
                in_set = False
                continue
            if key.lower() == "set" and mode == "modify":
                in_set = True
                continue
            if in_set and mode == "modify":
                raise UsageError(f" Unknown option: {word}\n Use keyword 'where' to modify "
                                 "condition", prog=PROG)
            names += [n.lower() if entity == "account" else n for n in word.split(",") if n]
            continue
        if entity == "account" and (_is(key, "Names", 1) or _is(key, "Accounts", 1)
                                    or _is(key, "Acct", 4)) and not (mode == "modify" and in_set):
            names += [n.lower() for n in value.split(",") if n]  # the database is lower case
            continue
        if entity == "user" and (_is(key, "Names", 1) or _is(key, "Users", 1)) \
                and not (mode == "modify" and in_set):
            names += [n for n in value.split(",") if n]
            continue
        if entity == "user" and (_is(key, "Accounts", 2) or _is(key, "Acct", 4)) \
                and not (mode == "modify" and in_set):
            accounts += [a.lower() for a in value.split(",") if a]
            continue
        if _is(key, "Clusters", 1) and not (mode == "modify" and in_set):
            continue  # one cluster: checked by the controller's name below
        if not in_set or mode == "delete":
            raise UsageError(f" Unknown condition: {word}\n Use keyword 'set' to modify value",
                             prog=PROG)
        canon = _match(key, table)
        if canon is None or (op and canon != "QOS"):
            raise UsageError(f" Unknown option: {word}\n Use keyword 'where' to modify "
                             "condition", prog=PROG)
        value = value.strip("'\"")
        if canon in ("Parent", "DefaultAccount", "QOS", "DefaultQOS"):
            value = value.lower()
        settings[canon + op] = value
    what = "account" if entity == "account" else "user"
    if not names:
        if mode == "add":
            raise UsageError(f" Need name of {what} to add.", prog=PROG)
        raise UsageError(" No conditions given to remove, not executing." if mode == "delete"
                         else f" Need name of {what} to modify.", prog=PROG)
    if mode == "modify" and not settings:
        raise UsageError(" You didn't give me anything to set", prog=PROG)
    if entity == "user" and mode == "add" and not accounts and "DefaultAccount" not in settings:
        raise UsageError(" Need name of account to add user to.", prog=PROG)
    return mode, names, accounts, settings


def _limits_text(settings: dict[str, str]) -> str:
    """sacctmgr_print_assoc_limits: the limits given, one per line."""
    from ..slurm.sacctmgr_fmt import _tres, _wall

    out = []
    for key, label in _PRINTED:
        for k in (key, key + "+", key + "-"):
            if k not in settings:
                continue
            value = settings[k]
            if value == "-1" and key != "QOS":
                value = "NONE"
            elif key == "MaxWall":
                value = _wall(value)
            elif key in ("GrpTRES", "MaxTRES"):
                value = _tres(value)
            out.append(f"  {label} = {value}\n")
    return "".join(out)


def _object(cluster: str, account: str, user: str, parent: str, width: int = 20) -> str:
    """slurmdbd's name of a changed association."""
    if user:
        return f"C = {cluster:<10} A = {account:<{width}} U = {user:<9}"
    return f"C = {cluster:<10} A = {account} of {parent}" if parent else \
        f"C = {cluster:<10} A = {account}"


def change_assoc(command: str, entity: str, words: list[str], immediate: bool) -> int:
    """Run one ``add|modify|delete account|user`` command; the exit status."""
    from .common import client

    mode, names, accounts, settings = parse_assoc_change(command, entity, words)
    args = {"mode": mode, "entity": entity, "names": names, "accounts": accounts,
            "fields": settings}
    try:
        with client() as c:
            cluster = str(c.call("ping")["cluster"])
            would = c.call("assoc_change", **args, dry=True)
            if not would["changed"] and not would["records"]:
                sys.stdout.write({"add": " Nothing new added.\n", "modify": " Nothing modified\n",
                                  "delete": " Nothing deleted\n"}[mode])
                return 1
            parents = {}
            if mode != "add":
                rows = c.call("assoc_show", users=[u for (_a, u) in would["changed"] if u])
                parents = {r["account"]: r["parent_name"] for r in rows["assocs"]
                           if not r["user"]}
            sys.stdout.write(_describe(mode, entity, accounts, settings, would, cluster,
                                       parents))
            if not would.get("allowed", True):
                # as SLURM's: the add is shown, then slurmdbd refuses it
                raise AccessDenied("Access/permission denied")
            if not immediate and not _confirm():
                sys.stdout.write(" Changes Discarded\n")
                return 0
            c.call("assoc_change", **args)
    except AccessDenied:
        if mode == "add":
            what = "accounts" if entity == "account" else "users"
            raise UsageError(f" Problem adding {what}: Access/permission denied",
                             prog=PROG) from None
        raise UsageError("sacctmgr: error: Your user doesn't have privilege to perform this "
                         "action\n Error with request: Access/permission denied", prog=PROG) \
            from None
    return 0


def _describe(mode: str, entity: str, accounts: list[str], settings: dict[str, str],
              would: dict, cluster: str, parents: dict[str, str]) -> str:
    """What sacctmgr prints before it asks to commit."""
    changed = [(a, u) for a, u in would["changed"]]
    if mode == "add" and entity == "account":
        limits = {k: v for k, v in settings.items() if k not in ("Description", "Organization")}
        out = [" Adding Account(s)\n", *(f"  {n}\n" for n in would["whole"]), " Settings\n",
               f"  Description     = {settings.get('Description', 'Account Name')}\n",
               f"  Organization    = {settings.get('Organization', 'Parent/Account Name')}\n",
               " Associations\n",
               *(f"  A = {a:<10.10} C = {cluster:<10.10}\n" for a, _u in changed)]
        if limits:
            limits.setdefault("Parent", "root")
            out += [" Settings\n", _limits_text(limits)]
        return "".join(out)
    if mode == "add":
        out = []
        if would["whole"]:
            out += [" Adding User(s)\n", *(f"  {n}\n" for n in would["whole"])]
            if "DefaultAccount" in settings:
                out += [" Settings =\n", f"  Default Account = {settings['DefaultAccount']}\n"]
        out += [" Associations =\n",
                *(f"  U = {u:<9.9} A = {a:<10.10} C = {cluster:<10.10}\n" for a, u in changed)]
        limits = {k: v for k, v in settings.items() if k != "DefaultAccount"}
        if limits:
            out += [" Non Default Settings\n", _limits_text(limits)]
        return "".join(out)
    if mode == "modify":
        out = []
        if would["records"]:
            out += [f" Modified {'accounts' if entity == 'account' else 'users'}...\n",
                    *(f"  {n}\n" for n in would["records"])]
        if changed:
            out += [f" Modified {entity} associations...\n",
                    *(f"  {_object(cluster, a, u, parents.get(a, ''))}\n" for a, u in changed)]
        return "".join(out)
    # delete: whole accounts/users, else the associations
    if entity == "account":
        return " Deleting accounts...\n" + "".join(f"  {n}\n" for n in would["whole"])
    if not accounts and would["whole"]:
        return " Deleting users...\n" + "".join(f"  {n}\n" for n in would["whole"])
    return " Deleting user associations...\n" + "".join(
        f"  {_object(cluster, a, u, '', 10)}\n" for a, u in changed)

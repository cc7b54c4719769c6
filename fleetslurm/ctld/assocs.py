"""The association tree in force: accounts, users' associations in them, their
shares (Fairshare) and limits.

The fleet's default tree gives every user an account named after them (see
:mod:`fleetslurm.slurm.assoc`), with the config's ``accounts`` limits and
``priority.Fairshare`` shares. ``sacctmgr add|modify|delete account|user``
change it; each change is kept in the store's ``assocs`` table as the whole
record of the association it touched (or NULL once deleted), so a restart
keeps them and the config stays the initial set:

* ``(account, "")``: an account (``Parent``, ``Description``,
  ``Organization``, its shares and limits);
* ``(account, user)``: the user's association in that account;
* ``("", user)``: the user's own record (``DefaultAccount``).

Limits a record leaves unset are inherited from the account above, as in
SLURM (MaxJobs, MaxSubmitJobs, MaxWall, MaxTRES, QOS, DefaultQOS); group
limits (GrpTRES, GrpJobs) count everything below the association. ``QOS``
unset everywhere means every QOS (fleetslurm's default: there is no
slurmdbd to give associations a QOS list).
"""

from __future__ import annotations

import pwd
from typing import TYPE_CHECKING, Any, Iterable, Optional

from ..config import FleetConfig
from ..scheduler import AssocLimits, Tres
from ..slurm.assoc import Assoc, account_of, tree_of
from ..slurm.tres import parse_tres
from ..slurm.units import parse_time_limit

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["Associations", "LIMITS", "INHERITED"]

#: an association's settings and their kinds (SLURM's names)
LIMITS = {"Fairshare": "int", "GrpTRES": "tres", "GrpJobs": "int", "MaxJobs": "int",
          "MaxSubmitJobs": "int", "MaxWall": "time", "MaxTRES": "tres", "QOS": "list",
          "DefaultQOS": "text"}
#: what an association takes from the account above when it sets none
INHERITED = ("MaxJobs", "MaxSubmitJobs", "MaxWall", "MaxTRES", "QOS", "DefaultQOS")


def _tres(text: Optional[str]) -> Tres:
    t = parse_tres(text or "")
    return Tres(cpu=t.get("cpu"), mem_mb=t.get("mem"), gpu=t.get("gres/gpu"))


def _minutes(text: Optional[str]) -> Optional[int]:
    return None if text is None else parse_time_limit(text)


class Associations:
    """The tree in force (``changes`` is replaced whole, never changed in
    place: RPC threads read it)."""

    def __init__(self, config: FleetConfig, store: "Optional[Store]" = None) -> None:
        self.config = config
        self.changes: dict[tuple[str, str], Optional[dict]] = {}
        self.known: set[str] = set()
        if store is not None:
            self.reload(store)

    def reload(self, store: "Store") -> None:
        """The store's changes, and the users known from jobs and usage."""
        self.changes = store.assoc_changes()
        self.known = set(store.job_users()) | {u for (_a, u) in store.usage()}

    # -- who exists ----------------------------------------------------------
    def is_user(self, name: str) -> bool:
        """A user of the fleet: known from jobs, from sacctmgr, or the system's."""
        if name in self.known or any(u == name for (_a, u) in self.changes):
            return True
        try:
            pwd.getpwnam(name)
        except (KeyError, UnicodeEncodeError, ValueError):
            return False
        return True

    def account(self, name: str) -> Optional[dict]:
        """An account's record (Parent, Description, Organization, shares and
        limits), or None when there is no such account."""
        change = self.changes.get((name, ""), False)
        if change is None:
            return None
        if isinstance(change, dict):
            return change
        if name != "root" and name not in self.config.accounts and not self.is_user(name):
            return None
        cfg = self.config.accounts.get(name)
        shares = self.config.priority.Fairshare if self.config.priority else {}
        rec: dict[str, Any] = {
            "Parent": "" if name == "root" else "root",
            "Description": "default root account" if name == "root" else name,
            "Organization": name, "Fairshare": shares.get(name, 1)}
        if cfg is not None:
            rec.update({k: v for k, v in cfg.model_dump().items() if v not in (None, "")})
        return rec

    def user_assoc(self, account: str, user: str) -> Optional[dict]:
        """A user's association in ``account`` (its shares and limits), or None."""
        if self.account(account) is None:
            return None
        change = self.changes.get((account, user), False)
        if change is None:
            return None
        if isinstance(change, dict):
            return change
        if (account, user) == ("root", "root") or (account == account_of(user) != "root"):
            return {"Fairshare": 1}
        return None

    def accounts_of(self, user: str) -> list[str]:
        """The accounts ``user`` has an association in (their own first)."""
        mine = [account_of(user)] if self.user_assoc(account_of(user), user) else []
        return mine + sorted(a for (a, u), rec in self.changes.items()
                             if u == user and a and a not in mine and rec is not None
                             and self.user_assoc(a, u) is not None)

    def default_account(self, user: str) -> Optional[str]:
        """The account of ``user``'s jobs that name none (DefaultAccount), or None."""
        rec = self.changes.get(("", user))
        chosen = (rec or {}).get("DefaultAccount")
        if chosen and self.user_assoc(chosen, user) is not None:
            return str(chosen)
        mine = self.accounts_of(user)
        return mine[0] if mine else None

    # -- the tree ------------------------------------------------------------
    def tree(self, users: Iterable[str] = ()) -> list[Assoc]:
        """Every association, in SLURM's order, for the ``users`` asked about
        and those the controller knows of."""
        everyone = {u for u in (set(users) | self.known | {"root"}) if u}
        if not everyone <= self.known:
            # users asked about (who have jobs, or ask themselves) exist from now on
            self.known = self.known | everyone
        accounts: dict[str, str] = {"root": ""}
        candidates = {account_of(u) for u in everyone} | set(self.config.accounts) | {
            a for (a, u) in self.changes if a and not u}
        for name in candidates:
            rec = self.account(name)
            if rec is not None:
                accounts[name] = rec.get("Parent") or "root" if name != "root" else ""
        members = {(account_of(u), u) for u in everyone} | {("root", "root")} | {
            (a, u) for (a, u), rec in self.changes.items() if a and u and rec is not None}
        return tree_of(accounts, sorted(m for m in members
                                        if m[0] in accounts and self.user_assoc(*m) is not None))

    def record(self, a: Assoc) -> dict:
        """An association's own settings (nothing inherited)."""
        return (self.user_assoc(a.account, a.user) if a.user else self.account(a.account)) or {}

    def effective(self, account: str, user: str = "") -> dict:
        """An association's settings with what it inherits filled in."""
        own = dict((self.user_assoc(account, user) if user else self.account(account)) or {})
        # a user's association inherits from its account, an account from its parent
        name = account if user else (own.get("Parent") or "")
        seen: set[str] = set() if user else {account}
        while name and name not in seen:
            seen.add(name)
            above = self.account(name) or {}
            for key in INHERITED:
                if own.get(key) in (None, "") and above.get(key) not in (None, ""):
                    own[key] = above[key]
            name = above.get("Parent") or ""
        return own

    def shares(self, account: str, user: str = "") -> int:
        rec = (self.user_assoc(account, user) if user else self.account(account)) or {}
        value = rec.get("Fairshare")
        return 1 if value is None else int(value)

    # -- for the scheduler -------------------------------------------------------
    def event(self) -> tuple[AssocLimits, ...]:
        """Every association's limits for the scheduler; none at all when no
        association sets a limit (a pass then checks none)."""
        assocs = self.tree()
        out: list[AssocLimits] = []
        limited = False
        for a in assocs:
            own = self.record(a)
            has = any(own.get(k) not in (None, "") for k in LIMITS
                      if k not in ("Fairshare", "QOS", "DefaultQOS"))
            limited = limited or has
            if a.user and not has:
                continue  # the account's limits hold for them
            eff = self.effective(a.account, a.user)
            out.append(AssocLimits(
                account=a.account, user=a.user, parent=a.parent_name if not a.user else "",
                grp_tres=_tres(own.get("GrpTRES")), grp_jobs=own.get("GrpJobs"),
                max_jobs=eff.get("MaxJobs"), max_submit=eff.get("MaxSubmitJobs"),
                max_wall=_minutes(eff.get("MaxWall")), max_tres=_tres(eff.get("MaxTRES"))))
        return tuple(out) if limited else ()

    def show(self, users: Iterable[str] = ()) -> list[dict]:
        """``sacctmgr show assoc|account|user``'s data: every association with
        its own settings, ``Inherited`` (what it takes from above) and, for a
        user's, ``DefaultAccount``."""
        out = []
        for a in self.tree(users):
            own = self.record(a)
            eff = self.effective(a.account, a.user)
            row = {"id": a.id, "parent_id": a.parent_id, "lft": a.lft, "rgt": a.rgt,
                   "depth": a.depth, "account": a.account, "user": a.user,
                   "parent_name": a.parent_name, "own": own,
                   "inherited": {k: eff[k] for k in INHERITED
                                 if own.get(k) in (None, "") and eff.get(k) not in (None, "")}}
            if a.user:
                row["default_account"] = self.default_account(a.user) or ""
            out.append(row)
        return out

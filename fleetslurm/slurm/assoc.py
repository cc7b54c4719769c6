"""The accounts a fleet presents to ``sacctmgr`` and ``sshare``, and sshare's table.

A fleet has one cluster, and by default one account per user, named after
the user (sacctmgr may add accounts and users: :func:`tree_of` orders any
tree; the controller's is :mod:`fleetslurm.ctld.assocs`). In SLURM's terms
the default is the association tree an administrator gets from
``sacctmgr add account alice; sacctmgr add user alice account=alice``::

    root                (cluster association; account root)
     root      root     (user root, account root)
     alice              (account alice, parent root)
      alice    alice    (user alice, account alice)

with one share each, QOS ``normal``, no limits. Without a ``priority``
section usage and fair-share read as SLURM's do with
``PriorityType=priority/basic`` (SLURM 22.05's default): RawUsage 0,
EffectvUsage 0.000000, NormShares empty; under priority/multifactor the
controller's Fair Tree numbers fill them (``sshare_table(shares=...)``). Every shape below was taken from
``sacctmgr``/``sshare`` 22.05 reading a slurmdbd that holds exactly this tree.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Optional

from fleetslurm.errors import UsageError

__all__ = ["Assoc", "tree", "tree_of", "account_of", "SSHARE_FIELDS", "sshare_fields", "sshare_table",
           "render_table", "Column"]

#: the TRES a cluster tracks by default (AccountingStorageTRES), in SLURM's order
TRES_NAMES = ("cpu", "mem", "energy", "node", "billing", "fs/disk", "vmem", "pages")


@dataclass(frozen=True)
class Assoc:
    """One association: an account's own (``user == ""``) or a user's in it."""

    id: int
    parent_id: int
    lft: int
    rgt: int
    depth: int
    account: str
    user: str = ""
    #: the parent account, shown on account associations below root
    parent_name: str = ""


def account_of(user: str) -> str:
    """The account a user's jobs belong to: named after the user."""
    return user


def tree(users: Iterable[str]) -> list[Assoc]:
    """The fleet's default associations (one account per user, named after
    the user) in SLURM's hierarchical order; ``root`` always exists."""
    others = sorted({u for u in users if u and u != "root"})
    return tree_of({"root": "", **{account_of(u): "root" for u in others}},
                   [("root", "root")] + [(account_of(u), u) for u in others])


def tree_of(accounts: dict[str, str], members: Iterable[tuple[str, str]]) -> list[Assoc]:
    """Associations in SLURM's hierarchical order (an account, its users, then
    its sub-accounts, each by name) from ``accounts`` (name -> parent account,
    ``""`` for ``root``) and ``members`` ((account, user) pairs). An account
    whose parent is missing hangs under root; members of a missing account
    are left out."""
    kids: dict[str, list[str]] = {}
    for name, parent in accounts.items():
        if name != "root":
            kids.setdefault(parent if parent in accounts and parent != name else "root",
                            []).append(name)
    users: dict[str, list[str]] = {}
    for account, user in members:
        if account in accounts and user:
            users.setdefault(account, []).append(user)
    # (account, user, depth, parent account) in display order
    order: list[tuple[str, str, int, str]] = []

    def walk(account: str, depth: int, parent: str) -> None:
        order.append((account, "", depth, parent))
        for u in sorted(set(users.get(account, ()))):
            order.append((account, u, depth + 1, ""))
        for sub in sorted(kids.get(account, ())):
            walk(sub, depth + 1, account)

    walk("root", 0, "")
    ids = {(a, u): i + 1 for i, (a, u, _, _) in enumerate(order)}
    # nested-set numbers (LFT/RGT) from a walk in display order
    bounds: dict[int, list[int]] = {}
    counter, stack = 0, []  # type: ignore[var-annotated]
    for i, (_, _, depth, _) in enumerate(order):
        while stack and order[stack[-1]][2] >= depth:
            counter += 1
            bounds[stack.pop()].append(counter)
        counter += 1
        bounds[i] = [counter]
        stack.append(i)
    while stack:
        counter += 1
        bounds[stack.pop()].append(counter)
    out = []
    for i, (account, user, depth, parent) in enumerate(order):
        if user:
            parent_id = ids[(account, "")]
        else:
            parent_id = ids[(parent, "")] if parent else 0
        out.append(Assoc(id=i + 1, parent_id=parent_id, lft=bounds[i][0], rgt=bounds[i][1],
                         depth=depth, account=account, user=user, parent_name=parent))
    return out


# ------------------------------------------------------------------ tables

@dataclass(frozen=True)
class Column:
    """One output column: ``key`` picks the value, ``width`` < 0 left-aligns;
    numbers (``number``) are never cut, other text is cut with ``+``."""

    key: str
    header: str
    width: int
    number: bool = False


def _cell(col: Column, value: str) -> str:
    width = abs(col.width)
    if not col.number and len(value) > width:
        value = value[:width - 1] + "+" if width else ""
    return (value.ljust(width) if col.width < 0 else value.rjust(width)) + " "


def render_table(columns: list[Column], rows: list[dict[str, str]], *,
                 mode: Literal["fixed", "parsable", "parsable2"] = "fixed",
                 header: bool = True) -> str:
    """SLURM's ``print_fields`` output, shared by sacctmgr and sshare: fixed
    width with a header and a dash line, or ``|``-separated (``parsable``
    also ends each line with ``|``). Every line ends with a newline."""
    lines = []
    if mode == "fixed":
        if header:
            lines.append("".join(
                (c.header[:abs(c.width)].ljust(abs(c.width)) if c.width < 0
                 else c.header[:abs(c.width)].rjust(abs(c.width))) + " " for c in columns))
            lines.append("".join("-" * abs(c.width) + " " for c in columns))
        for row in rows:
            lines.append("".join(_cell(c, row.get(c.key, "")) for c in columns))
    else:
        end = "|" if mode == "parsable" else ""
        if header:
            lines.append("|".join(c.header for c in columns) + end)
        for row in rows:
            lines.append("|".join(row.get(c.key, "") for c in columns) + end)
    return "".join(line + "\n" for line in lines)


def parse_format(spec: str, table: dict[str, Column], prog: str,
                 aliases: Optional[dict[str, str]] = None,
                 error: str = 'Invalid field requested: "{}"',
                 first_match: bool = False) -> list[Column]:
    """A ``--format``/``format=`` list: names matched case-insensitively, a
    prefix is enough when it is unique (or, with ``first_match``, the first
    field in table order it begins, as sshare does); ``%N`` sets the width
    (negative: left-aligned)."""
    names = {**{k.lower(): k for k in table}, **{a.lower(): t for a, t in (aliases or {}).items()}}
    out = []
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        name, pct, width = entry.partition("%")
        low = name.lower()
        key = names.get(low)
        if key is None:
            hits = list(dict.fromkeys(t for n, t in names.items() if n.startswith(low)))
            key = hits[0] if low and (len(hits) == 1 or first_match and hits) else None
        if key is None:
            raise UsageError(error.format(name if "{}" in error else low), prog=prog)
        col = table[key]
        if pct:
            try:
                col = Column(col.key, col.header, int(width), col.number)
            except ValueError:
                raise UsageError(error.format(entry), prog=prog) from None
        out.append(col)
    return out


# ------------------------------------------------------------------ sshare

SSHARE_FIELDS: dict[str, Column] = {c.header: c for c in (
    Column("account", "Account", -20), Column("cluster", "Cluster", 10),
    Column("effectvusage", "EffectvUsage", 13), Column("fairshare", "FairShare", 10),
    Column("grptresmins", "GrpTRESMins", 30), Column("grptresraw", "GrpTRESRaw", 30),
    Column("id", "ID", 6, True), Column("levelfs", "LevelFS", 10),
    Column("normshares", "NormShares", 11), Column("normusage", "NormUsage", 11),
    Column("partition", "Partition", 12), Column("rawshares", "RawShares", 10),
    Column("rawusage", "RawUsage", 11, True), Column("tresrunmins", "TRESRunMins", 30),
    Column("user", "User", 10))}


def sshare_fields(spec: Optional[str], long: bool = False,
                  partition: bool = False) -> list[Column]:
    """The columns sshare prints: ``-o`` (``spec``) or its default, which
    ``-l`` (long) and ``-m`` (partition) widen."""
    if spec:
        return parse_format(spec, SSHARE_FIELDS, "sshare", first_match=True)
    names = ["Account", "User"] + (["Partition"] if partition else []) + [
        "RawShares", "NormShares", "RawUsage"] + (["NormUsage"] if long else []) + [
        "EffectvUsage", "FairShare"] + (["LevelFS", "GrpTRESMins", "TRESRunMins"] if long else [])
    return [SSHARE_FIELDS[n] for n in names]


def sshare_table(assocs: list[Assoc], cluster: str, *, caller: str, all_users: bool = False,
                 users: Optional[list[str]] = None, accounts: Optional[list[str]] = None,
                 users_only: bool = False,
                 shares: Optional[dict[tuple[str, str], dict]] = None,
                 raw_shares: Optional[dict[tuple[str, str], int]] = None) -> list[dict[str, str]]:
    """sshare's rows: every account association on the way, and the user
    associations of ``users`` (default: the caller; ``all_users``: everyone).
    ``users_only`` (``-U``) keeps just the user rows, flat. ``shares``, under
    priority/multifactor, is (account, user) -> the Fair Tree numbers of
    :class:`~fleetslurm.scheduler.multifactor.AssocShare` (as dicts); the
    cells print as sshare's print_fields do (``%f``, RawUsage an integer).
    ``raw_shares`` gives each association's Fairshare (RawShares; default 1)."""
    wanted_users = None if all_users else set(users or [caller])
    rows: list[dict[str, str]] = []
    shown: list[Assoc] = []
    for a in assocs:
        if accounts and not _under(a, accounts, assocs):
            continue
        if a.user and wanted_users is not None and a.user not in wanted_users:
            continue
        if users_only and not a.user:
            continue
        shown.append(a)
    base = min((a.depth for a in shown), default=0)
    zero_tres = ",".join(f"{t}=0" for t in TRES_NAMES)
    for a in shown:
        indent = "" if users_only else " " * (a.depth - base)
        rows.append({
            "account": indent + a.account, "user": a.user, "cluster": cluster,
            "id": str(a.id), "partition": "",
            "rawshares": "" if a.depth == 0 else str((raw_shares or {}).get((a.account, a.user), 1)),
            "normshares": "", "rawusage": "0",
            "normusage": "", "effectvusage": "0.000000",
            "fairshare": "0.000000" if a.user else "", "levelfs": "0.000000",
            "grptresmins": "", "grptresraw": zero_tres, "tresrunmins": zero_tres})
        fs = (shares or {}).get((a.account, a.user))
        if fs is not None:
            level = fs["level_fs"]
            rows[-1].update({
                "rawshares": "" if a.depth == 0 else str(fs["raw_shares"]),
                "normshares": "" if a.depth == 0 else f"{fs['norm_shares']:f}",
                "rawusage": str(int(fs["raw_usage"])),
                "effectvusage": f"{fs['effective_usage']:f}",
                "fairshare": f"{fs['fairshare']:f}" if a.user and fs["fairshare"] is not None else "",
                "levelfs": level if isinstance(level, str) else f"{level:f}"})
    return rows


def _under(a: Assoc, accounts: list[str], assocs: list[Assoc]) -> bool:
    """Whether ``a`` is (in) one of ``accounts`` or below one of them."""
    wanted = {x.lower() for x in accounts}
    by_id = {x.id: x for x in assocs}
    node: Optional[Assoc] = a
    while node is not None:
        if node.account.lower() in wanted:
            return True
        node = by_id.get(node.parent_id)
    return False

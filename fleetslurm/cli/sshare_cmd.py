"""``sshare``: the fleet's shares and usage, in SLURM 22.05's shape.

A fleet's association tree is the controller's (by default one account per
user: :mod:`fleetslurm.slurm.assoc`, :mod:`fleetslurm.ctld.assocs`); what
clients ask (``sshare -U --format Account%256 --noheader``: "which account
am I in?") gets the answer SLURM would give for that tree.
"""

from __future__ import annotations

import getopt
import os
import sys

from ..errors import UsageError

PROG = "sshare"

_SHORT = "aA:elmM:no:pPu:UvVh"
_LONG = ["all", "accounts=", "helpformat", "long", "partition", "cluster=", "clusters=",
         "noheader", "format=", "parsable", "parsable2", "users=", "Users", "verbose",
         "version", "help", "usage"]

USAGE = """\
Usage:  sshare [OPTION]                                                    
  Valid OPTIONs are:                                                       
    -a or --all            list all users                                  
    -A or --accounts=      display specific accounts (comma separated list)
    -e or --helpformat     Print a list of fields that can be specified    
                           with the '--format' option                      
    -l or --long           include normalized usage in output              
    -m or --partition      print the partition part of the association     
    -M or --cluster=names  clusters to issue commands to.                  
                           NOTE: SlurmDBD must be up.                      
    -n or --noheader       omit header from output                         
    -o or --format=        Comma separated list of fields (use             
                           "--helpformat" for a list of available fields).
    -p or --parsable       '|' delimited output with a trailing '|'        
    -P or --parsable2      '|' delimited output without a trailing '|'     
    -u or --users=         display specific users (comma separated list)   
    -U or --Users          display only user information                   
    -v or --verbose        display more information                        
    -V or --version        display tool version number                     
          --help           display this usage description                  
          --usage          display this usage description                  
                                                                           

"""


def parse_args(argv: list[str]) -> dict:
    """Options as a dict; getopt's complaints in glibc's words."""
    try:
        opts, _ = getopt.gnu_getopt(argv, _SHORT, _LONG)
    except getopt.GetoptError as exc:
        raise UsageError(glibc_message(exc, argv), prog=PROG, hint=True) from None
    out: dict = {"mode": "fixed"}
    for flag, value in opts:
        key = flag.lstrip("-")
        if key in ("a", "all"):
            out["all"] = True
        elif key in ("A", "accounts"):
            out["accounts"] = [a for a in value.split(",") if a]
        elif key in ("e", "helpformat"):
            out["helpformat"] = True
        elif key in ("l", "long"):
            out["long"] = True
        elif key in ("m", "partition"):
            out["partition"] = True
        elif key in ("M", "cluster", "clusters"):
            out["clusters"] = [c for c in value.split(",") if c]
        elif key in ("n", "noheader"):
            out["noheader"] = True
        elif key in ("o", "format"):
            out["format"] = value
        elif key in ("p", "parsable"):
            out["mode"] = "parsable"
        elif key in ("P", "parsable2"):
            out["mode"] = "parsable2"
        elif key in ("u", "users"):
            out["users"] = [u for u in value.split(",") if u]
        elif key in ("U", "Users"):
            out["users_only"] = True
        elif key in ("V", "version"):
            out["version"] = True
        elif key in ("h", "help", "usage"):
            out["help"] = True
    return out


def glibc_message(exc: getopt.GetoptError, argv: list[str]) -> str:
    """getopt_long's wording for ``exc`` (as SLURM's commands print it)."""
    opt = exc.opt
    if "requires argument" in exc.msg or "requires an argument" in exc.msg:
        return (f"option '--{opt}' requires an argument" if len(opt) > 1
                else f"option requires an argument -- '{opt}'")
    if "not a unique prefix" in exc.msg:
        return f"option '--{opt}' is ambiguous"
    if "must not have an argument" in exc.msg:
        return f"option '--{opt}' doesn't allow an argument"
    if len(opt) > 1:
        return f"unrecognized option '--{opt}'"
    return f"invalid option -- '{opt}'"


def fleet_users() -> list[str]:
    """Who can use this fleet: the caller, the owner of its state directory
    (whose controller it is) and root."""
    from ..paths import state_paths
    from ..views import user_name

    users = {user_name(os.getuid()), "root"}
    try:
        users.add(user_name(state_paths().home.stat().st_uid))
    except OSError:
        pass
    return sorted(users)


def fleet_assocs(users: list[str]) -> "tuple[list, dict]":
    """The controller's association tree (asking about ``users`` too) as
    :class:`~fleetslurm.slurm.assoc.Assoc` rows, and each one's record
    ((account, user) -> own settings, inherited ones, DefaultAccount)."""
    from ..slurm.assoc import Assoc
    from .common import client

    with client() as c:
        rows = c.call("assoc_show", users=users)["assocs"]
    assocs = [Assoc(id=r["id"], parent_id=r["parent_id"], lft=r["lft"], rgt=r["rgt"],
                    depth=r["depth"], account=r["account"], user=r["user"],
                    parent_name=r["parent_name"]) for r in rows]
    return assocs, {(r["account"], r["user"]): r for r in rows}


def cluster_name() -> str:
    from .common import client

    with client() as c:
        return str(c.call("ping")["cluster"])


def fair_tree_rows() -> "dict[tuple[str, str], dict] | None":
    """Under priority/multifactor, the controller's Fair Tree numbers per
    (account, user); None otherwise (the priority/basic zeros stay)."""
    from .common import client

    with client() as c:
        data = c.call("priorities")
    if not data.get("enabled"):
        return None
    return {(r["account"], r["user"]): r for r in data["assocs"]}


def main(argv: list[str]) -> int:
    from ..slurm.assoc import SSHARE_FIELDS, render_table, sshare_fields, sshare_table
    from ..views import user_name

    opts = parse_args(argv)
    if opts.get("help"):
        sys.stdout.write(USAGE)
        return 0
    if opts.get("version"):
        sys.stdout.write("slurm 22.05.8 (fleetslurm)\n")
        return 0
    if opts.get("helpformat"):
        names = sorted(SSHARE_FIELDS)
        for i in range(0, len(names), 4):
            sys.stdout.write(" ".join(f"{n:<17}" for n in names[i:i + 4]) + "\n")
        return 0
    columns = sshare_fields(opts.get("format"), bool(opts.get("long")),
                            bool(opts.get("partition")))
    cluster = cluster_name()
    for name in opts.get("clusters") or []:
        if name.lower() != cluster.lower():
            raise UsageError(
                f"No cluster '{name}' known by database.\n"
                f"'{name}' can't be reached now, or it is an invalid entry for --cluster.  "
                "Use 'sacctmgr list clusters' to see available clusters.", prog=PROG)
    shares = fair_tree_rows()
    users = set(fleet_users()) | {u for (_a, u) in shares or {} if u}
    assocs, records = fleet_assocs(sorted(users))
    rows = sshare_table(assocs, cluster, caller=user_name(os.getuid()),
                        all_users=bool(opts.get("all")), users=opts.get("users"),
                        accounts=opts.get("accounts"), users_only=bool(opts.get("users_only")),
                        shares=shares,
                        raw_shares={k: int(r["own"].get("Fairshare", 1))
                                    for k, r in records.items()})
    if opts.get("clusters"):
        sys.stdout.write(f"CLUSTER: {cluster}\n")
    sys.stdout.write(render_table(columns, rows, mode=opts["mode"],
                                  header=not opts.get("noheader")))
    return 0

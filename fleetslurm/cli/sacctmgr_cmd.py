"""``sacctmgr``: the fleet's accounts, users, associations and QOS.

``list``/``show`` answer as SLURM 22.05's sacctmgr would for the fleet's
tree (one cluster; by default one account per user: see
:mod:`fleetslurm.slurm.assoc` and :mod:`fleetslurm.ctld.assocs`), which is
what client libraries and scripts ask (``sacctmgr -n -s list user $USER
format=account%30``, ``sacctmgr show assoc``, ``sacctmgr show qos``).
Accounts and users (:mod:`.sacctmgr_assoc`) and QOS (:mod:`.sacctmgr_change`)
may be added, modified and deleted by root and the controller's own user;
anyone else is refused as SLURM refuses a user without privileges.
"""

from __future__ import annotations

import getopt
import sys

from ..errors import UsageError

PROG = "sacctmgr"

_SHORT = "hinopPQrsvV"
_LONG = ["help", "immediate", "noheader", "oneliner", "parsable", "parsable2", "quiet",
         "readonly", "associations", "verbose", "version"]

#: command words: (command, letters needed)
_COMMANDS = (("list", 2), ("show", 2), ("add", 3), ("create", 2), ("modify", 1),
             ("update", 1), ("delete", 3), ("remove", 3), ("archive", 3), ("dump", 3),
             ("load", 3), ("clear", 2), ("reconfigure", 3), ("shutdown", 3), ("help", 2),
             ("version", 4), ("exit", 4), ("quit", 4))
_CHANGES = {"add", "create", "modify", "update", "delete", "remove", "archive", "dump", "load",
            "clear", "reconfigure", "shutdown"}

HELP = """\
sacctmgr [<OPTION>] [<COMMAND>]
    Valid <OPTION> values are:
     -h or --help: equivalent to "help" command
     -n or --noheader: no header will be added to the beginning of output
     -p or --parsable: output will be '|' delimited with a '|' at the end
     -P or --parsable2: output will be '|' delimited without a '|' at the end
     -i or --immediate: commit changes immediately
     -s or --associations: show the associations of users and accounts
     -V or --version: equivalent to "version" command

  Valid <COMMAND> values are:
     list <ENTITY> [<SPECS>]  display info of identified entities
     show <ENTITY> [<SPECS>]  same as list
     help                     display this message
     version                  display tool version number

  <ENTITY> may be account, association, cluster, qos, tres, user (and
  event, federation, problem, reservation, resource, runawayjobs,
  transaction, wckey: a fleet has none). <SPECS> are name lists,
  key=value conditions (users=, accounts=, clusters=, names=, ...),
  format=field[%width],... and flags such as WithAssoc or Tree.

     add qos NAME [KEY=VALUE...]          (root) a new QOS
     modify qos [where] NAME set KEY=VALUE (root) e.g. set MaxJobsPerUser=2
     delete qos NAME                       (root)
  A QOS's KEYs: Description, Priority, MaxJobsPerUser, MaxSubmitJobsPerUser,
  MaxTRESPerUser (cpu=,mem=,gres/gpu=), MaxWall, GrpTRES, GrpJobs; -1
  removes a limit.

     add account NAME [Parent=P Description=D Organization=O KEY=VALUE...]  (root)
     add user NAME Account=A[,B] [DefaultAccount=A KEY=VALUE...]            (root)
     modify account [where] NAME set KEY=VALUE...                           (root)
     modify user [where] NAME [Account=A] set KEY=VALUE... | DefaultAccount=A (root)
     delete account NAME | delete user NAME [where Account=A]               (root)
  An association's KEYs: Fairshare, GrpTRES, GrpJobs, MaxJobs, MaxSubmitJobs,
  MaxTRES (per job), MaxWall, QOS (=, += or -=), DefaultQOS; -1 removes one.

  fleetslurm has one cluster; every user starts with an account named
  after them (the config's "accounts" and priority "Fairshare" give the
  initial limits and shares).
"""


def _command(word: str) -> "str | None":
    low = word.lower()
    return next((c for c, need in _COMMANDS if len(low) >= need and c.startswith(low)), None)


def fleet_view():
    """The cluster name, the fleet's associations (with their settings) and its size."""
    from ..slurm.sacctmgr_fmt import Fleet
    from .common import client
    from .sshare_cmd import fleet_assocs, fleet_users

    with client() as c:
        cluster = str(c.call("ping")["cluster"])
        nodes = c.call("nodes")["nodes"]
        limits = c.call("qos_show")
    assocs, records = fleet_assocs(fleet_users())
    return Fleet(cluster=cluster, assocs=tuple(assocs), node_count=len(nodes),
                 cpus=sum(int(n.get("cpus") or 0) for n in nodes),
                 mem_mb=sum(int(n.get("mem_mb") or 0) for n in nodes),
                 gpus=sum(int(n.get("gpus") or 0) for n in nodes),
                 qos=tuple(limits["qos"]), records=records)


def main(argv: list[str]) -> int:
    from .sshare_cmd import glibc_message

    try:
        opts, words = getopt.gnu_getopt(argv, _SHORT, _LONG)
    except getopt.GetoptError as exc:
        raise UsageError(glibc_message(exc, argv), prog=PROG, hint=True) from None
    flags = {f.lstrip("-") for f, _ in opts}
    if flags & {"h", "help"}:
        sys.stdout.write(HELP)
        return 0
    if flags & {"V", "version"}:
        sys.stdout.write("slurm 22.05.8 (fleetslurm)\n")
        return 0
    mode = ("parsable2" if flags & {"P", "parsable2"} else
            "parsable" if flags & {"p", "parsable"} else "fixed")
    if not words:
        sys.stderr.write("sacctmgr: error: give a command (sacctmgr has no interactive mode "
                         "here), e.g. sacctmgr show user\n")
        return 1
    try:
        return _run(words, mode, header=not flags & {"n", "noheader"},
                    with_assoc=bool(flags & {"s", "associations"}),
                    immediate=bool(flags & {"i", "immediate"}))
    except UsageError as exc:
        # sacctmgr prints these as they are, without a "sacctmgr: error:" prefix
        sys.stderr.write(f"{exc}\n")
        return 1


def _run(words: list[str], mode: str, header: bool, with_assoc: bool,
         immediate: bool = False) -> int:
    from ..slurm.assoc import render_table
    from ..slurm.sacctmgr_fmt import ENTITY_ERROR, entity_of, list_entity, parse_specs

    command = _command(words[0])
    if command is None:
        raise UsageError(f"invalid keyword: {words[0]}", prog=PROG)
    if command == "help":
        sys.stdout.write(HELP)
        return 0
    if command == "version":
        sys.stdout.write("slurm 22.05.8 (fleetslurm)\n")
        return 0
    if command in ("exit", "quit"):
        return 0
    if command in ("add", "create", "modify", "update", "delete", "remove") and len(words) > 1 \
            and entity_of(words[1]) == "qos":
        from .sacctmgr_change import change_qos

        return change_qos(command, words[2:], immediate)
    if command in ("add", "create", "modify", "update", "delete", "remove") and len(words) > 1 \
            and entity_of(words[1]) in ("account", "user"):
        from .sacctmgr_assoc import change_assoc

        return change_assoc(command, str(entity_of(words[1])), words[2:], immediate)
    if command in _CHANGES:
        raise UsageError(
            "sacctmgr: error: Your user doesn't have privilege to perform this action\n"
            " Error with request: Access/permission denied\n"
            f"sacctmgr: fleetslurm does not {command} {words[1] if len(words) > 1 else 'that'}: "
            "it changes accounts, users and QOS (sacctmgr help)", prog=PROG)
    entity = entity_of(words[1]) if len(words) > 1 else None
    if entity is None:
        raise UsageError(ENTITY_ERROR, prog=PROG)
    query = parse_specs(entity, words[2:])
    fleet = fleet_view()
    if entity == "runawayjobs":
        # the controller reconciles every job it knows of: none can run away
        sys.stdout.write(f"Runaway Jobs: No runaway jobs found on cluster {fleet.cluster}\n")
        return 0
    columns, rows = list_entity(entity, query, fleet, with_assoc=with_assoc)
    sys.stdout.write(render_table(columns, rows, mode=mode,  # type: ignore[arg-type]
                                  header=header))
    return 0

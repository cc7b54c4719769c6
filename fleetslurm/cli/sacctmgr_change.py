"""``sacctmgr [-i] add|modify|delete qos ...``: SLURM's syntax and output.

    sacctmgr -i modify qos normal set MaxJobsPerUser=2
    sacctmgr -i modify qos where name=normal set MaxTRESPerUser=cpu=4,mem=8G
    sacctmgr -i add qos high Priority=100 MaxWall=1:00:00
    sacctmgr -i delete qos high

Without ``-i`` sacctmgr shows what would change and asks ``(N/y)`` on stdin
(30 seconds, as SLURM's commit_check: :func:`_confirm`). The controller refuses anyone but
root and its own user (SLURM's SlurmUser), as SLURM refuses a user without
AdminLevel.
"""

from __future__ import annotations

import select
import sys

from ..errors import AccessDenied, UsageError

__all__ = ["change_qos", "parse_change"]

PROG = "sacctmgr"

#: a setting's name (lower case, with SLURM's short forms) -> the config's field
_KEYS = {
    "description": "Description", "priority": "Priority",
    "maxjobsperuser": "MaxJobsPerUser", "maxjobspu": "MaxJobsPerUser",
    "maxsubmitjobsperuser": "MaxSubmitJobsPerUser", "maxsubmitjobspu": "MaxSubmitJobsPerUser",
    "maxsubmitpu": "MaxSubmitJobsPerUser",
    "maxtresperuser": "MaxTRESPerUser", "maxtrespu": "MaxTRESPerUser",
    "maxwall": "MaxWall", "maxwalldurationperjob": "MaxWall",
    "grptres": "GrpTRES", "grpjobs": "GrpJobs",
}
_MODE = {"add": "add", "create": "add", "modify": "modify", "update": "modify",
         "delete": "delete", "remove": "delete"}


def parse_change(command: str, words: list[str]) -> tuple[str, list[str], dict[str, str]]:
    """(mode, QOS names, settings) from the words after ``qos``."""
    mode = _MODE[command]
    names: list[str] = []
    settings: dict[str, str] = {}
    in_set = mode == "add"  # add takes KEY=VALUE without "set"
    for word in words:
        key, eq, value = word.partition("=")
        low = key.lower()
        if not eq:
            if low == "where":
                in_set = mode == "add"
                continue
            if low == "set":
                if mode != "modify":
                    raise UsageError(f" Unknown option: {word}", prog=PROG)
                in_set = True
                continue
            if in_set and mode != "add":
                raise UsageError(f" Unknown option: {word}\n Use keyword 'where' to modify "
                                 "condition", prog=PROG)
            names += [n.lower() for n in word.split(",") if n]
            continue
        if low in ("name", "names") and not (mode == "modify" and in_set):
            names += [n.lower() for n in value.split(",") if n]
            continue
        if not in_set or mode == "delete":
            raise UsageError(f" Unknown condition: {word}\n Use keyword 'set' to modify value",
                             prog=PROG)
        field = _KEYS.get(low)
        if field is None:
            raise UsageError(f" Unknown option: {word}\n Use keyword 'where' to modify "
                             "condition", prog=PROG)
        settings[field] = value
    if not names:
        raise UsageError(" Need name of qos to " + {"add": "add.", "modify": "modify.",
                                                      "delete": "delete."}[mode], prog=PROG)
    if mode == "modify" and not settings:
        raise UsageError(" You didn't give me anything to set", prog=PROG)
    return mode, names, settings


def _confirm() -> bool:
    """SLURM's commit_check: ask, then read the answer a character at a time
    (a terminal is put out of line mode meanwhile), a newline after each; y
    commits, n or an empty line discards, anything else asks again; 30
    seconds without an answer discards. The end of the input discards too
    (SLURM's would ask forever)."""
    import os

    sys.stdout.write("Would you like to commit changes? (You have 30 seconds to decide)\n")
    fd = sys.stdin.fileno()
    saved = None
    if os.isatty(fd):
        import termios

        saved = termios.tcgetattr(fd)
        raw = termios.tcgetattr(fd)
        raw[3] &= ~termios.ICANON
        raw[6][termios.VMIN] = 1
        termios.tcsetattr(fd, termios.TCSANOW, raw)
    try:
        c = ""
        while c not in ("Y", "y", "N", "n", "\n"):
            if c:
                sys.stdout.write("Y or N please\n")
            sys.stdout.write("(N/y): ")
            sys.stdout.flush()
            ready, _, _ = select.select([fd], [], [], 30)
            if not ready:
                sys.stdout.write("timeout\n")
                return False
            got = os.read(fd, 1)
            if not got:
                return False
            c = got.decode("latin-1")
            sys.stdout.write("\n")
        return c in ("Y", "y")
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(fd, termios.TCSANOW, saved)


def _settings_text(settings: dict[str, str]) -> str:
    return "".join(f"  {k:<24} = {v}\n" for k, v in settings.items() if k != "Description")


def change_qos(command: str, words: list[str], immediate: bool) -> int:
    from .common import client

    mode, names, settings = parse_change(command, words)
    args = {"mode": mode, "names": names, "fields": settings}
    try:
        with client() as c:
            answer = c.call("qos_change", **args, dry=True)
            would = answer["changed"]
            if not would:
                sys.stdout.write({"add": " Nothing new added.\n", "modify": " Nothing modified\n",
                                  "delete": " Nothing deleted\n"}[mode])
                return 1
            listed = "".join(f"  {n}\n" for n in would)
            if mode == "add":
                descr = settings.get("Description") or would[0]
                sys.stdout.write(f" Adding QOS(s)\n{listed} Settings\n"
                                 f"  Description    = {descr}\n{_settings_text(settings)}")
            elif mode == "modify":
                sys.stdout.write(f" Modified qos...\n{listed}")
            else:
                sys.stdout.write(f" Deleting QOS(s)...\n{listed}")
            if not answer.get("allowed", True):
                # as SLURM's: the add is shown, then slurmdbd refuses it
                raise UsageError(" Problem adding QOS: Access/permission denied", prog=PROG)
            if not immediate and not _confirm():
                sys.stdout.write(" Changes Discarded\n")
                return 0
            c.call("qos_change", **args)
    except AccessDenied:
        raise UsageError("sacctmgr: error: Your user doesn't have privilege to perform this "
                         "action\n Error with request: Access/permission denied", prog=PROG) \
            from None
    return 0

"""``scontrol update JobId=N KEY=VALUE...``: the keys, their values and
SLURM 22.05's messages for bad ones (checked on the oracle).

Keys are case-insensitive. What scontrol itself refuses (the controller is not
asked) is an :class:`UpdateRefused` whose text scontrol prints bare, as SLURM
does, or a :class:`UsageError` printed as ``scontrol: error: ...``:

- an unknown key: ``Update of this parameter is not supported: Foo=bar``
  then ``Request aborted``;
- a word without ``=``: ``Invalid input: foo`` then ``Request aborted``;
- a bad TimeLimit: ``scontrol: error: Invalid TimeLimit value``;
- a bad StartTime: ``Invalid time specification (pos=0): garbage``, the key is
  dropped; nothing left: ``No changes specified``.

Nice takes ``atoi``'s view of its value (``Nice=abc`` is 0), as SLURM does.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import InvalidValue, JobError, UsageError

__all__ = ["UpdateRefused", "parse_job_update", "RUNNING_OK", "FIELDS"]


class UpdateRefused(JobError):
    """scontrol's own refusal of an update line; printed without a prefix."""


#: key (lower case) -> field of the stored request / spec
FIELDS = {
    "timelimit": "time_limit", "jobname": "name", "name": "name", "comment": "comment",
    "nice": "nice", "dependency": "dependency", "starttime": "begin_time",
    "begintime": "begin_time", "partition": "partition", "features": "constraint",
    "excnodelist": "exclude", "reqnodelist": "nodelist", "numcpus": "cpus",
    "minmemorynode": "mem_mb", "account": "account", "qos": "qos", "wckey": "wckey",
    "requeue": "requeue", "mailuser": "mail_user", "mailtype": "mail_type",
}
#: fields a running job may change (SLURM: the rest are "no longer pending")
RUNNING_OK = frozenset({"time_limit", "name", "nice", "comment", "account", "qos", "wckey",
                        "requeue", "mail_user", "mail_type"})
#: fields kept in the job's spec rather than its scheduling request
SPEC_FIELDS = frozenset({"comment", "account", "qos", "wckey", "requeue", "mail_user",
                         "mail_type"})


def split_words(words: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` words; a word without ``=`` is refused as scontrol does."""
    out: dict[str, str] = {}
    for w in words:
        key, eq, value = w.partition("=")
        if not eq:
            raise UpdateRefused(f"Invalid input: {w}\nRequest aborted")
        out[key] = value
    return out


def _atoi(text: str) -> int:
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else 0


def parse_job_update(fields: dict[str, str], now: float,
                     warnings: "list[str] | None" = None) -> dict[str, Any]:
    """Turn ``{key: value}`` (without JobId) into ``{field: value}``.

    Lines scontrol prints but goes on after (a bad StartTime) are appended to
    ``warnings``. Raises UpdateRefused / UsageError with SLURM's text.
    """
    from .hostlist import expand
    from .units import NoTimeGiven, parse_datetime, parse_mem, parse_time_limit

    for key, value in fields.items():
        if key.lower() not in FIELDS:
            raise UpdateRefused(f"Update of this parameter is not supported: {key}={value}\n"
                                "Request aborted")
    changes: dict[str, Any] = {}
    for key, value in fields.items():
        dest = FIELDS[key.lower()]
        if dest == "time_limit":
            try:
                changes[dest] = parse_time_limit(value, "TimeLimit")
            except InvalidValue:
                raise UsageError("Invalid TimeLimit value", prog="scontrol") from None
        elif dest == "begin_time":
            if not value:
                continue
            try:
                changes[dest] = parse_datetime(value, now)
            except NoTimeGiven:
                pass  # SLURM says nothing; the key is dropped
            except (InvalidValue, OverflowError, OSError) as exc:
                # (a time past what time_t holds is as invalid as garbage)
                if warnings is not None:
                    warnings.append(str(exc) if isinstance(exc, InvalidValue)
                                    else f"Invalid time specification: {value}")
        elif dest == "nice":
            changes[dest] = _atoi(value)
        elif dest == "cpus":
            n = _atoi(value)
            if n < 1:
                raise UsageError(f"Invalid NumCPUs value: {value}", prog="scontrol")
            changes[dest] = n
        elif dest == "mem_mb":
            try:
                changes[dest] = parse_mem(value, option="MinMemoryNode")
            except InvalidValue:
                raise UsageError(f"Invalid MinMemoryNode value: {value}",
                                 prog="scontrol") from None
        elif dest in ("exclude", "nodelist"):
            try:
                changes[dest] = expand(value) if value else []
            except InvalidValue:
                raise UsageError(f"Invalid node list specification: {value}",
                                 prog="scontrol") from None
        elif dest == "requeue":
            changes[dest] = _atoi(value) != 0
        elif dest == "mail_type":
            from .mail import format_mail_type, parse_mail_type

            words = parse_mail_type(value)
            if words is None:
                raise UsageError(f"Invalid MailType value: {value}", prog="scontrol")
            changes[dest] = format_mail_type(words) if words else ""
        elif dest == "mail_user":
            from .mail import mail_user_error

            why = mail_user_error(value)
            if why is not None:
                raise UsageError(f"Invalid MailUser value: {value!r}: {why}", prog="scontrol")
            changes[dest] = value
        else:
            changes[dest] = value
    if not changes:
        raise UpdateRefused("No changes specified")
    return changes


def check_dependency(text: str) -> None:
    """Raise InvalidValue for a dependency SLURM would not take (empty clears it)."""
    if text:
        from .deps import parse_dependency

        parse_dependency(text)

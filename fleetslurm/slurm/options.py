"""SLURM command-line parsing: glibc ``getopt_long`` and ``#SBATCH`` lines.

SLURM's commands parse their arguments with glibc's ``getopt_long``: long
options may be abbreviated to any unique prefix, short options bundle
(``-vvH``), a value may be attached (``-n1``, ``--time=5``) or be the next
word, ``--`` ends the options. sbatch and srun pass a ``+`` optstring, so
parsing stops at the first word that is not an option (the script or program;
the rest are its arguments); the other commands let options and positionals
mix. The error texts below are glibc 2.36's, as Debian's slurm-wlm 22.05 prints
them (``sbatch: unrecognized option '--foo'``); ``UsageError`` carries the part
after ``prog: `` and, except for sacct, asks for SLURM's ``Try "prog --help"``
line. SLURM exits 255 for these from sbatch and srun, 1 from the others.

Values: a flag is ``True`` (a count for ``-v``), an option SLURM accumulates a
list of strings, an optional-argument option given bare ``True``, any other
option the last string given.

``script_options`` ports sbatch's ``_opt_batch_script``/``_get_argument``
(src/sbatch/opt.c). The environment and the sbatch precedence rules live in
``fleetslurm.slurm.option_env``. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetslurm.errors import UsageError
from fleetslurm.slurm.option_tables import (
    SACCT,
    SBATCH,
    SCANCEL,
    SCONTROL,
    SINFO,
    SQUEUE,
    SRUN,
    TABLES,
    Opt,
)

__all__ = [
    "Opt",
    "SBATCH",
    "SRUN",
    "SQUEUE",
    "SINFO",
    "SCANCEL",
    "SACCT",
    "SCONTROL",
    "TABLES",
    "OptPairs",
    "getopt",
    "apply_value",
    "collect",
    "parse_args",
    "script_options",
]

#: Pairs in command-line order: the option and its value (None when none given).
OptPairs = list[tuple[Opt, str | None]]


def _usage_error(prog: str, message: str) -> UsageError:
    # sacct answers getopt's complaints with exit 1 and no 'Try ...' line.
    return UsageError(message, prog=prog, hint=prog != "sacct")


def _ident(opt: Opt) -> tuple[str, str, str | None]:
    """What glibc compares (has_arg, flag, val) to call two matches different.

    In the tables, aliases (same ``val`` in SLURM) share dest, argument kind
    and short letter, and options with different ``val`` differ in one of
    them; this was checked against the dumped 22.05 tables, so the two tests
    agree.
    """
    return (opt.arg, opt.dest, opt.short)


def _find_long(prog: str, table: Sequence[Opt], body: str) -> Opt:
    """Resolve ``--body`` (``name`` or ``name=value``) as glibc's process_long_option."""
    name = body.split("=", 1)[0]
    longs = [opt for opt in table if opt.long is not None]
    for opt in longs:
        if opt.long == name:
            return opt
    matches = [opt for opt in longs if opt.long.startswith(name)]  # type: ignore[union-attr]
    if not matches:
        raise _usage_error(prog, f"unrecognized option '--{body}'")
    first = matches[0]
    ambiguous = [first] + [opt for opt in matches[1:] if _ident(opt) != _ident(first)]
    if len(ambiguous) > 1:
        names = "".join(f" '--{opt.long}'" for opt in ambiguous)
        raise _usage_error(prog, f"option '--{body}' is ambiguous; possibilities:{names}")
    return first


def getopt(
    prog: str, table: Sequence[Opt], argv: Sequence[str], *, posix_stop: bool
) -> tuple[OptPairs, list[str]]:
    """Parse ``argv`` (without the program name) as glibc ``getopt_long``.

    Returns the options in the order given, as ``(Opt, value)`` pairs, and the
    positional words. With ``posix_stop`` (SLURM's ``+`` optstring: sbatch,
    srun) parsing ends at the first positional, which is returned with all that
    follows it untouched; otherwise positionals are collected wherever they
    stand. ``--`` always ends the options. Raises ``UsageError`` with glibc's
    text at the first bad option.
    """
    shorts = {opt.short: opt for opt in table if opt.short}
    pairs: OptPairs = []
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            positionals.extend(argv[i:])
            break
        if word == "-" or not word.startswith("-"):
            if posix_stop:
                positionals.extend(argv[i - 1:])
                break
            positionals.append(word)
            continue
        if word.startswith("--"):
            body = word[2:]
            opt = _find_long(prog, table, body)
            name = opt.long
            if "=" in body:
                if opt.arg == "none":
                    raise _usage_error(prog, f"option '--{name}' doesn't allow an argument")
                pairs.append((opt, body.split("=", 1)[1]))
            elif opt.arg == "required":
                if i >= len(argv):
                    raise _usage_error(prog, f"option '--{name}' requires an argument")
                pairs.append((opt, argv[i]))
                i += 1
            else:
                pairs.append((opt, None))
            continue
        # a bundle of short options: -vvH, -n1, -o=x (value '=x')
        j = 1
        while j < len(word):
            letter = word[j]
            j += 1
            opt = shorts.get(letter)
            if opt is None:
                raise _usage_error(prog, f"invalid option -- '{letter}'")
            if opt.arg == "none":
                pairs.append((opt, None))
                continue
            rest = word[j:]
            if rest:
                pairs.append((opt, rest))
            elif opt.arg == "optional":
                pairs.append((opt, None))
            elif i < len(argv):
                pairs.append((opt, argv[i]))
                i += 1
            else:
                raise _usage_error(prog, f"option requires an argument -- '{letter}'")
            break
    return pairs, positionals


def apply_value(out: dict[str, object], opt: Opt, value: str | None) -> None:
    """Record one occurrence of ``opt`` in ``out`` (see the module doc for shapes)."""
    previous = out.get(opt.dest)
    if opt.arg == "none":
        out[opt.dest] = (previous if isinstance(previous, int) else 0) + 1 if opt.append else True
    elif opt.append:
        out[opt.dest] = [*(previous if isinstance(previous, list) else []), value]
    else:
        out[opt.dest] = True if value is None else value


def collect(pairs: OptPairs) -> dict[str, object]:
    """Fold ``(Opt, value)`` pairs into ``{dest: value}`` (see the module doc)."""
    out: dict[str, object] = {}
    for opt, value in pairs:
        apply_value(out, opt, value)
    return out


def parse_args(
    prog: str, table: Sequence[Opt], argv: Sequence[str], *, posix_stop: bool
) -> tuple[dict[str, object], list[str]]:
    """Parse ``argv`` like SLURM's ``prog``: ``({dest: value}, positionals)``.

    >>> parse_args("sbatch", SBATCH, ["-vvJ", "x", "--out=o", "job.sh", "-v"], posix_stop=True)
    ({'verbose': 2, 'job_name': 'x', 'output': 'o'}, ['job.sh', '-v'])
    """
    pairs, positionals = getopt(prog, table, argv, posix_stop=posix_stop)
    return collect(pairs), positionals


# --------------------------------------------------------------------------
# #SBATCH lines (src/sbatch/opt.c: _opt_batch_script, _get_argument)
# --------------------------------------------------------------------------

_MAGIC = "#SBATCH"
_OLD_MAGIC = "#SLURM"
_SPACE = " \t\n\r\v\f"  # C isspace()


def _next_argument(
    line: str, pos: int, filename: str, lineno: int
) -> tuple[str | None, int]:
    """One word from ``line[pos:]`` as ``_get_argument``: (word or None, new pos).

    Quotes (either kind) group, a backslash takes the next character
    literally even inside single quotes, an unquoted ``#`` ends the line, and
    a word that comes out empty (``""``) ends the line too.
    """
    start = pos
    while pos < len(line) and line[pos] in _SPACE:
        pos += 1
    chars: list[str] = []
    quote = ""
    escaped = False
    while pos < len(line) and (quote or line[pos] not in _SPACE):
        char = line[pos]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
            pos += 1
            continue
        elif quote:
            if char == quote:
                quote = ""
                pos += 1
                continue
        elif char in "\"'":
            quote = char
            pos += 1
            continue
        elif char == "#":
            break
        chars.append(char)
        pos += 1
    if quote:
        raise UsageError(
            f"fatal: {filename}: line {lineno}: Unmatched `{quote}` in [{line[start:]}]",
            prog="sbatch",
        )
    return ("".join(chars) or None), pos


def script_options(
    script_text: str, *, filename: str = "stdin", warnings: list[str] | None = None
) -> list[str]:
    """The argv that sbatch builds from a script's ``#SBATCH`` lines.

    Only lines starting at column 0 with ``#SBATCH`` count (case matters;
    ``#SBATCHX`` yields the word ``X``; the old ``#SLURM`` also works, with
    SLURM's warning appended to ``warnings``). Whitespace after the magic word
    is skipped, words follow ``_next_argument``'s rules, and the words of all
    lines form one argv, so ``-J`` may take its value from the next line.
    Blank lines and other ``#`` lines (`` #SBATCH``, ``# SBATCH``,
    ``##SBATCH``, the ``#!`` line) are skipped; the first other line (the
    first command) ends the scan. ``filename`` is what the unmatched-quote
    error names: the script's base name, or ``stdin``.
    """
    argv: list[str] = []
    warned = False
    for lineno, line in enumerate(script_text.split("\n"), start=1):
        if line.startswith(_MAGIC):
            pos = len(_MAGIC)
        elif line.startswith(_OLD_MAGIC):
            pos = len(_OLD_MAGIC)
            if not warned and warnings is not None:
                warnings.append(
                    "error: Change from #SLURM to #SBATCH in your script and "
                    "verify the options are valid in sbatch"
                )
            warned = True
        else:
            stripped = line.lstrip(_SPACE)
            if stripped and not stripped.startswith("#"):
                break
            continue
        while pos < len(line) and line[pos] in _SPACE:
            pos += 1
        while True:
            word, pos = _next_argument(line, pos, filename, lineno)
            if word is None:
                break
            argv.append(word)
    return argv

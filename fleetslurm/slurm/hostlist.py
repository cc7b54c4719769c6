"""SLURM hostlists: ``node[01-03,7],gpu1`` <-> ``['node01', 'node02', ...]``.

A port of the parts of SchedMD/slurm ``src/common/hostlist.c`` that matter on a
one-dimensional cluster: ``hostlist_create`` (:func:`expand`) and
``hostlist_sort`` + ``hostlist_ranged_string`` (:func:`compress`, as
``scontrol show hostlistsorted`` prints). Checked against slurm-wlm 22.05.8.
"""

from __future__ import annotations

import functools
import re
from typing import Iterable

from fleetslurm.errors import InvalidValue

__all__ = ["expand", "compress", "natural_compare"]

#: hostlist_create's separators (``_hostlist_create(str, "\t, ", "-", dims)``)
_SEPARATORS = "\t, "
#: hostlist.c MAX_RANGE: a bigger range "will be assumed to be an error"
_MAX_RANGE = 64 * 1024
_DIGITS = re.compile(r"[0-9]+")


def _bad(text: str, why: str) -> InvalidValue:
    return InvalidValue(f"Invalid hostlist: {text} ({why})")


def _tokens(text: str) -> list[str]:
    """Split on separators outside brackets (hostlist.c ``_next_tok``)."""
    tokens: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "[":
            if depth:
                raise _bad(text, "nested '['")
            depth = 1
        elif ch == "]":
            if not depth:
                raise _bad(text, "']' without '['")
            depth = 0
        elif ch in _SEPARATORS and not depth:
            if cur:
                tokens.append("".join(cur))
                cur = []
            continue
        cur.append(ch)
    if depth:
        raise _bad(text, "unclosed '['")
    if cur:
        tokens.append("".join(cur))
    return tokens


def _parse_ranges(body: str, text: str) -> list[tuple[int, int, int]]:
    """``1-3,07`` -> [(lo, hi, width), ...] (``_parse_range_list``/``_parse_single_range``).

    The width is the length of the low bound as written, so ``01-10`` pads to 2
    and ``1-10`` does not pad.
    """
    ranges = []
    for part in body.split(","):
        lo_s, dash, hi_s = part.partition("-")
        if not _DIGITS.fullmatch(lo_s) or (dash and not _DIGITS.fullmatch(hi_s)):
            raise _bad(text, f"invalid range `{part}'")
        lo = int(lo_s)
        hi = int(hi_s) if dash else lo
        if lo > hi:
            raise _bad(text, f"invalid range `{part}'")
        if hi - lo + 1 > _MAX_RANGE:
            raise _bad(text, f"too many hosts in range `{part}'")
        ranges.append((lo, hi, len(lo_s)))
    return ranges


def _push_range_list(prefix: str, ranges: list[tuple[int, int, int]], text: str,
                     out: list[str]) -> None:
    """Expand brackets inside the prefix the way ``_push_range_list`` does.

    SLURM takes the LAST bracket of the prefix as the outer loop and recurses,
    so ``a[1-2]b[3-4]c[5-6]`` yields a1b3c5 a1b3c6 a2b3c5 ... (b varies slowest).
    """
    open_at = prefix.rfind("[")
    if open_at >= 0:
        close_at = prefix.index("]", open_at)
        head, body, tail = prefix[:open_at], prefix[open_at + 1:close_at], prefix[close_at + 1:]
        for lo, hi, width in _parse_ranges(body, text):
            for j in range(lo, hi + 1):
                _push_range_list(f"{head}{j:0{width}d}{tail}", ranges, text, out)
        return
    for lo, hi, width in ranges:
        out.extend(f"{prefix}{j:0{width}d}" for j in range(lo, hi + 1))


def expand(text: str) -> list[str]:
    """Expand a hostlist expression into host names, in order, keeping duplicates.

    ``node[01-03,7],gpu1`` -> ``['node01', 'node02', 'node03', 'node7', 'gpu1']``.
    Hosts are separated by commas, spaces or tabs; a range keeps the zero
    padding of its low bound; several brackets in one name multiply out.

    Raises:
        InvalidValue: ``Invalid hostlist: node[3-1] (invalid range `3-1')``.
            (SLURM 22.05 turns an unclosed ``node[1-`` into the odd host name
            ``node]``; fleetslurm refuses it instead.)
    """
    out: list[str] = []
    for tok in _tokens(text):
        open_at = tok.rfind("[")
        if open_at < 0:
            out.append(tok)
            continue
        close_at = tok.index("]", open_at)
        if close_at != len(tok) - 1:
            raise _bad(text, "text after ']'")
        ranges = _parse_ranges(tok[open_at + 1:close_at], text)
        _push_range_list(tok[:open_at], ranges, text, out)
    return out


# --------------------------------------------------------------------------
# compress
# --------------------------------------------------------------------------

def natural_compare(a: str, b: str) -> int:
    """SLURM's ``strnatcmp`` (Martin Pool's natural order): ``n2 < n10``.

    Runs of digits compare by value (or left-aligned when either starts with
    0); everything else by character code. Returns -1, 0 or 1.
    """
    ai = bi = 0
    while True:
        while _at(a, ai).isspace():
            ai += 1
        while _at(b, bi).isspace():
            bi += 1
        ca, cb = _at(a, ai), _at(b, bi)
        if ca.isdigit() and cb.isdigit():
            if ca == "0" or cb == "0":
                result = _compare_left(a, ai, b, bi)
            else:
                result = _compare_right(a, ai, b, bi)
            if result:
                return result
        if not ca and not cb:
            return 0
        if ca != cb:
            return -1 if ca < cb else 1
        ai += 1
        bi += 1


def _at(s: str, i: int) -> str:
    return s[i] if i < len(s) else ""


def _isd(c: str) -> bool:
    return c != "" and "0" <= c <= "9"


def _compare_right(a: str, ai: int, b: str, bi: int) -> int:
    """The longest run of digits wins; else the first difference."""
    bias = 0
    while True:
        ca, cb = _at(a, ai), _at(b, bi)
        if not _isd(ca) and not _isd(cb):
            return bias
        if not _isd(ca):
            return -1
        if not _isd(cb):
            return 1
        if ca < cb and not bias:
            bias = -1
        elif ca > cb and not bias:
            bias = 1
        ai += 1
        bi += 1


def _compare_left(a: str, ai: int, b: str, bi: int) -> int:
    """Left-aligned digits (a leading zero): the first difference wins."""
    while True:
        ca, cb = _at(a, ai), _at(b, bi)
        if not _isd(ca) and not _isd(cb):
            return 0
        if not _isd(ca):
            return -1
        if not _isd(cb):
            return 1
        if ca != cb:
            return -1 if ca < cb else 1
        ai += 1
        bi += 1


class _Range:
    """hostlist.c ``hostrange``: prefix + [lo, hi] at a zero-padding width
    (``single``: a name without a numeric suffix; prefix is the whole name).
    A plain class, not a dataclass: squeue imports this module, and
    dataclasses (with inspect) cost a command's start some 5 ms."""

    __slots__ = ("prefix", "lo", "hi", "width", "single")

    def __init__(self, prefix: str, lo: int, hi: int, width: int, single: bool) -> None:
        self.prefix, self.lo, self.hi, self.width, self.single = prefix, lo, hi, width, single

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Range) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return "_Range(%s)" % ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)


_SUFFIX_RE = re.compile(r"^(.*?)([0-9]+)$", re.S)


def _host_range(name: str) -> _Range:
    match = _SUFFIX_RE.match(name)
    if not match:
        return _Range(name, 0, 0, 0, True)
    return _Range(match.group(1), int(match.group(2)), int(match.group(2)),
                  len(match.group(2)), False)


def _zero_padded(num: int, width: int) -> int:
    return max(width - len(str(num)), 0)


def _width_equiv(a: _Range, b: _Range) -> bool:
    """hostlist.c ``_width_equiv`` on two ranges' low ends; adjusts one width."""
    if a.width == b.width:
        return True
    npad, nmpad = _zero_padded(a.lo, a.width), _zero_padded(a.lo, b.width)
    mpad, mnpad = _zero_padded(b.lo, b.width), _zero_padded(b.lo, a.width)
    if npad != nmpad and mpad != mnpad:
        return False
    if npad != nmpad:
        b.width = a.width
    else:
        a.width = b.width
    return True


def _sort_key_cmp(a: _Range, b: _Range) -> int:
    """``hostrange_cmp`` for single hosts, without SLURM's side effects.

    Prefixes in natural order, a suffix-less name before numbered ones with the
    same prefix, then suffix length and value. For single hosts this orders as
    ``hostrange_cmp`` does (compatible widths by value, others by width) except
    where SLURM's own order depends on the comparisons qsort happens to make.
    """
    result = natural_compare(a.prefix, b.prefix)
    if result:
        return result
    ka = (not a.single, a.width, a.lo)
    kb = (not b.single, b.width, b.lo)
    return (ka > kb) - (ka < kb)


def _within(a: _Range, b: _Range) -> bool:
    """``hostrange_within_range``: same bracket group (same prefix, both numbered)."""
    return a.prefix == b.prefix and not a.single and not b.single


def _numstr(r: _Range) -> str:
    if r.lo == r.hi:
        return f"{r.lo:0{r.width}d}"
    return f"{r.lo:0{r.width}d}-{r.hi:0{r.width}d}"


def compress(names: Iterable[str]) -> str:
    """The ranged form of host names, sorted as SLURM sorts hostlists.

    ``['node3', 'node1', 'node2', 'gpu1']`` -> ``'gpu1,node[1-3]'``; zero padding
    is kept (``node[08-11]``), duplicates stay (``node[1,1-2]``) and ``[]``
    gives ``''``. ``expand(compress(names))`` returns the same names in
    SLURM's natural order.

    Raises:
        InvalidValue: a name that is empty or contains ``[ ] , space tab``.
    """
    ranges = []
    for name in names:
        if not name or any(c in name for c in "[]" + _SEPARATORS):
            raise InvalidValue(f"Invalid host name {name!r}: it cannot be part of a hostlist")
        ranges.append(_host_range(name))
    ranges.sort(key=functools.cmp_to_key(_sort_key_cmp))
    # hostlist_collapse: merge neighbours from the end, as SLURM does.
    i = len(ranges) - 1
    while i > 0:
        prev, nxt = ranges[i - 1], ranges[i]
        if (_within(prev, nxt) and prev.hi == nxt.lo - 1
                and _width_equiv(prev, nxt)):
            prev.hi = nxt.hi
            del ranges[i]
        i -= 1
    # hostlist_ranged_string / _get_bracketed_list
    groups: list[str] = []
    i = 0
    while i < len(ranges):
        first = ranges[i]
        nxt = ranges[i + 1] if i + 1 < len(ranges) else None
        if first.single:
            groups.append(first.prefix)
            i += 1
            continue
        bracket = first.hi > first.lo or (nxt is not None and _within(first, nxt))
        parts = [_numstr(first)]
        i += 1
        while i < len(ranges) and _within(ranges[i], ranges[i - 1]):
            parts.append(_numstr(ranges[i]))
            i += 1
        body = ",".join(parts)
        groups.append(f"{first.prefix}[{body}]" if bracket else f"{first.prefix}{body}")
    return ",".join(groups)

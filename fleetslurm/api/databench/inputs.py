"""DataBench's inputs checked and named: scripts, data files, symbols'
files and processor arguments (pure but for looking at the filesystem)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

from ...errors import InvalidValue, UsageError
from .script import Arg

__all__ = ["PathLike", "err", "existing_script", "data_file", "as_list", "processor_arg",
           "processor_args", "symbol_files", "check_outputs"]

PathLike = Union[str, os.PathLike]


def err(message: str) -> UsageError:
    """A bad-input error from DataBench."""
    return UsageError(message, prog="databench")


def existing_script(path: PathLike, what: str = "script") -> str:
    """The absolute path of an existing script; UsageError otherwise."""
    p = Path(path).expanduser().absolute()
    if not p.is_file():
        raise err(f"{what} {p} does not exist (or is not a file); give the path of "
                  "an existing script")
    return str(p)


def data_file(path: PathLike, what: str) -> str:
    """The absolute path of an existing file; UsageError otherwise."""
    p = Path(path).expanduser().absolute()
    if not p.is_file():
        raise err(f"{what} {p} does not exist (or is not a file)")
    return str(p)


def as_list(values: Any, what: str) -> list:
    """A list from a list-like, or from one bare value (a path, an id)."""
    if isinstance(values, (str, bytes, os.PathLike)):
        return [values]
    try:
        return list(values)
    except TypeError:
        raise InvalidValue(f"{what}: expected a list, got {type(values).__name__}") from None


def processor_arg(value: Any) -> Arg:
    """A processor argument; one naming an existing file here (bare, or as
    ``--option=path``) is staged to the machine."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    key, sep, rest = text.partition("=")
    if sep and key.startswith("-") and rest and os.path.isfile(rest):
        return Arg(os.path.abspath(rest), True, prefix=f"{key}=")
    if text and not text.startswith("-") and os.path.isfile(text):
        return Arg(os.path.abspath(text), True)
    return Arg(text, False)


def processor_args(args: Any) -> list[Arg]:
    """All of a submission's processor arguments (a list, not one string)."""
    if isinstance(args, (str, bytes)):
        raise InvalidValue(f"args must be a list of arguments, not the string {args!r}")
    return [processor_arg(a) for a in args]


def check_outputs(outputs: Any) -> list[str]:
    """Output names: plain file names the script writes into its working directory."""
    out = as_list(outputs, "outputs")
    for o in out:
        if not isinstance(o, str) or not o or "/" in o or o in (".", ".."):
            raise InvalidValue(f"outputs: {o!r} must be a plain file name the script "
                               "writes into its working directory")
    return out


def symbol_files(symbols: list[str],
                 data: Union[PathLike, Mapping[str, PathLike], None]) -> list[str]:
    """Each symbol's data file, from ``{symbol: path}`` or a directory of
    ``<symbol>.csv``; empty without data."""
    if data is None:
        return []
    if isinstance(data, Mapping):
        missing = [s for s in symbols if s not in data]
        if missing:
            raise err(f"data has no file for {', '.join(missing)}; give a file for every "
                      "symbol")
        return [data_file(data[s], f"data file for {s}") for s in symbols]
    directory = Path(data).expanduser().absolute()
    if not directory.is_dir():
        raise err(f"data directory {directory} does not exist; give a directory of "
                  "<symbol>.csv files or a mapping {symbol: path}")
    return [data_file(directory / f"{s}.csv", f"data file for {s}") for s in symbols]

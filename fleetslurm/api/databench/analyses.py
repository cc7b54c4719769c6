"""Analysis types for :meth:`DataBenchSLURM.submit_parallel_analysis`.

An analysis type is a name bound to either a Python callable (run on the
machine through the futures API, its return value is the result) or a
script (run as ``python SCRIPT SYMBOL [DATAFILE] [ARGS...]``, what it prints
is the result). Each DataBench instance has its own registry; a function
decorated with ``@bench.analysis("name")`` also carries the name, and so does
one decorated with the module-level ``@fleetslurm.databench.analysis("name")``
(which only marks it). Marked functions are found in the script being run
(``__main__``) and in files the CLI loads (``fleetslurm databench analyze
--load FILE.py``), so no global registry is needed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Union

from ...errors import UsageError

__all__ = ["Analysis", "AnalysisRegistry", "MARK", "HOLDER", "analysis", "analyses_in_module",
           "load_analyses"]

#: attribute set on a decorated function: its analysis type name
MARK = "__fleetslurm_analysis__"
#: class attribute (True) of objects whose ``analyses`` registry a module's
#: analyses include (:class:`~.bench.DataBenchSLURM`), so this module needs
#: not import the class that uses it
HOLDER = "__fleetslurm_analysis_holder__"


@dataclass(frozen=True)
class Analysis:
    """One analysis type: ``target`` is a callable or a script's absolute path."""

    name: str
    target: Union[Callable[..., Any], str]
    description: str = ""

    @property
    def is_callable(self) -> bool:
        return callable(self.target)

    @property
    def kind(self) -> str:
        return "function" if self.is_callable else "script"

    def describe(self) -> str:
        what = (getattr(self.target, "__qualname__", repr(self.target)) if self.is_callable
                else str(self.target))
        return f"{self.name} ({self.kind} {what})" + (f": {self.description}"
                                                        if self.description else "")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or any(c.isspace() for c in name):
        raise UsageError(f"analysis type name {name!r} must be a non-empty word",
                         prog="databench")
    return name


class AnalysisRegistry:
    """Analysis types by name."""

    def __init__(self) -> None:
        self._by_name: dict[str, Analysis] = {}

    def register(self, name: str, target: Union[Callable[..., Any], str, os.PathLike],
                 description: str = "") -> Analysis:
        """Bind ``name`` to a callable or a script path (which must exist).
        Registering a name again replaces it."""
        _check_name(name)
        if not callable(target):
            path = Path(target).expanduser().absolute()
            if not path.is_file():
                raise UsageError(f"analysis {name!r}: script {path} does not exist; give the "
                                 "path of an existing script", prog="databench")
            target = str(path)
        entry = Analysis(name, target, description or _doc(target))
        self._by_name[name] = entry
        return entry

    def decorator(self, name: str, description: str = "") -> Callable[[Callable], Callable]:
        _check_name(name)

        def wrap(fn: Callable) -> Callable:
            if not callable(fn):
                raise UsageError(f"@analysis({name!r}) decorates functions, not "
                                 f"{type(fn).__name__}", prog="databench")
            self.register(name, fn, description)
            try:
                setattr(fn, MARK, name)
            except (AttributeError, TypeError):
                pass  # a builtin cannot carry the mark; the registry still has it
            return fn

        return wrap

    def get(self, name: str) -> Analysis:
        """The analysis ``name``: registered here, else a function of the
        running script (``__main__``) marked with that name. UsageError
        listing the known ones otherwise."""
        import sys

        try:
            return self._by_name[name]
        except KeyError:
            main = sys.modules.get("__main__")
            found = {a.name: a for a in analyses_in_module(main)} if main else {}
            if name in found:
                return found[name]
            known = ", ".join(sorted(set(self._by_name) | set(found))) or "none are registered"
            raise UsageError(
                f"unknown analysis type {name!r}; known analysis types: {known}. Register "
                "one with @bench.analysis(NAME) or bench.register_analysis(NAME, SCRIPT) "
                "(on the command line: --script SCRIPT or --load FILE.py)",
                prog="databench") from None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Analysis]:
        return iter(sorted(self._by_name.values(), key=lambda a: a.name))

    def __len__(self) -> int:
        return len(self._by_name)


def analysis(name: str) -> Callable[[Callable], Callable]:
    """Decorator: mark a function as analysis type ``name``. A DataBench finds
    it in the script being run and ``--load`` finds it in a file::

        from fleetslurm.databench import DataBenchSLURM, analysis

        @analysis("momentum")
        def momentum(symbol, prices_csv): ...

        DataBenchSLURM().submit_parallel_analysis(["AAPL"], "momentum", data="prices/")
    """
    _check_name(name)

    def mark(fn: Callable) -> Callable:
        if not callable(fn):
            raise UsageError(f"@analysis({name!r}) decorates functions, not "
                             f"{type(fn).__name__}", prog="databench")
        setattr(fn, MARK, name)
        return fn

    return mark


def _doc(target: Any) -> str:
    if callable(target):
        doc = (getattr(target, "__doc__", None) or "").strip()
        return doc.splitlines()[0] if doc else ""
    return ""


def analyses_in_module(module: ModuleType) -> list[Analysis]:
    """The analyses a module defines: its functions marked by ``@analysis``
    and the registries of its DataBench objects."""
    found: dict[str, Analysis] = {}
    for value in list(vars(module).values()):
        if getattr(type(value), HOLDER, False) is True:
            for a in value.analyses:
                found.setdefault(a.name, a)
        elif isinstance(value, AnalysisRegistry):
            for a in value:
                found.setdefault(a.name, a)
        elif callable(value) and isinstance(getattr(value, MARK, None), str):
            name = getattr(value, MARK)
            found.setdefault(name, Analysis(name, value, _doc(value)))
    return sorted(found.values(), key=lambda a: a.name)


def load_analyses(path: Union[str, os.PathLike]) -> list[Analysis]:
    """Import a Python file (as a module named after it) and return the
    analyses it defines. The module is registered in ``sys.modules`` so its
    functions pickle by value like ``__main__``'s."""
    import importlib.util
    import sys

    file = Path(path).expanduser().absolute()
    if not file.is_file():
        raise UsageError(f"analysis file {file} does not exist", prog="databench")
    name = f"databench_analyses_{file.stem}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise UsageError(f"{file} is not a Python file", prog="databench")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    import cloudpickle

    # not importable on the machines: its functions must travel by value
    cloudpickle.register_pickle_by_value(module)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise UsageError(f"cannot load analyses from {file}: {type(exc).__name__}: {exc}",
                         prog="databench") from exc
    return analyses_in_module(module)

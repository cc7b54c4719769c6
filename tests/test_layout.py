"""The package's layout (ARCHITECTURE.md): no module imports one that
(through others) imports it back, no source file is over 700 lines, the
controller's layers (fleetslurm/ctld/) import only downward, and the
modules' former flat paths under fleetslurm.api still import, as the very
modules now at the new paths (code and pickles that name them keep
working)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _modules(package: str) -> dict[str, Path]:
    base = ROOT / package.replace(".", "/")
    mods = {}
    for path in base.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def _edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Every import among ``mods``, also inside functions and TYPE_CHECKING
    blocks; ``from pkg import submodule`` counts as importing the submodule."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = pkg.split(".")
                    parts = parts[:len(parts) - (node.level - 1)]
                    target = ".".join(parts + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                if len(subs) < len(node.names) and target in mods:
                    subs.append(target)
                edges[mod].update(s for s in subs if s != mod)
            elif isinstance(node, ast.Import):
                edges[mod].update(a.name for a in node.names if a.name in mods and a.name != mod)
    return edges


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


@pytest.mark.parametrize("package", ["fleetslurm", "fleetslurm.api", "fleetslurm.scheduler"])
def test_no_import_circles(package):
    assert _circles(_edges(_modules(package))) == []


def test_no_source_file_is_over_700_lines():
    long = {str(p.relative_to(ROOT)): n for p in _modules("fleetslurm").values()
            if (n := len(p.read_text().splitlines())) > 700}
    assert long == {}


#: the controller's layers, lowest first (ARCHITECTURE.md); a module may
#: import only modules of its own layer or below
CTLD_LAYERS = (
    ("inbox", "jobrequest", "queries", "usage_queries", "waiters"),
    ("nodelink",),
    ("context", "mail"),
    ("lifecycle",),
    ("health", "arrayfeed", "dependencies", "fairshare", "limits", "assocs", "staging",
     "gpustats", "suspend", "srun_direct"),
    ("launch", "collect", "injob"),
    ("agent_events", "requests.assoc", "requests.common", "requests.explain", "requests.jobs",
     "requests.nodes", "requests.qos", "requests.steps", "requests.submit", "requests.update"),
    ("requests",),
    ("loop",),
)


def test_the_controllers_imports_point_down():
    mods = _modules("fleetslurm.ctld")
    layer = {f"fleetslurm.ctld.{m}": i for i, names in enumerate(CTLD_LAYERS) for m in names}
    layer["fleetslurm.ctld"] = len(CTLD_LAYERS)
    assert set(layer) == set(mods), "a module of ctld/ has no layer in CTLD_LAYERS"
    up = sorted((m, t) for m, targets in _edges(mods).items() for t in targets
                if layer[t] > layer[m])
    assert up == []


def test_the_circle_finder_finds_a_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(edges) == [["a", "b", "c"]]


_FORMER = r"""
import importlib, pickle
import fleetslurm
from fleetslurm.api.compat.process import Process

moved = {"seeds_process": "compat.process", "seeds_constructor": "compat.constructor",
         "client": "executor.client", "backend_local": "executor.backends.local",
         "objser_format": "objser.format", "databench_status": "databench.status",
         "slurmify_dispatch": "compat.dispatch", "runner": "executor.runner"}
for old, new in moved.items():
    a = importlib.import_module("fleetslurm.api." + old)
    b = importlib.import_module("fleetslurm.api." + new)
    assert a is b, (old, a, b)
    assert b.__name__ == "fleetslurm.api." + new and b.__spec__.name == b.__name__

# what a JobContainer written before the move holds: the class by its old path
old = pickle.dumps(Process, protocol=0).replace(b"fleetslurm.api.compat.process",
                                                b"fleetslurm.api.seeds_process")
assert b"seeds_process" in old and pickle.loads(old) is Process

# the former modules that are packages now answer their names
from fleetslurm.api.objser import ObjectSerializer
from fleetslurm.api.executor import Executor
from fleetslurm.api.databench import DataBenchSLURM
assert (ObjectSerializer, Executor, DataBenchSLURM) == (
    fleetslurm.ObjectSerializer, fleetslurm.Executor, fleetslurm.DataBenchSLURM)
try:
    importlib.import_module("fleetslurm.api.no_such_module")
except ModuleNotFoundError:
    pass
else:
    raise AssertionError("an unknown name imported")
print("ok")
"""


def test_former_module_paths_import_as_the_moved_modules():
    # a fresh interpreter: nothing imported yet under either path
    proc = subprocess.run([sys.executable, "-c", _FORMER], capture_output=True, text=True,
                          cwd=ROOT, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_the_controller_builds_agent_messages_with_the_protocol_module():
    """Both ends use fleetslurm/node/agent/protocol.py: no message to an agent
    is a dict written by hand outside the agent package."""
    import re

    by_hand = [f"{p.relative_to(ROOT)}:{i}" for p in _modules("fleetslurm").values()
               if "node/agent" not in str(p)
               for i, line in enumerate(p.read_text().splitlines(), 1)
               if re.search(r"""\{["']op["']: *["']""", line)]
    assert by_hand == []

"""fleetslurm's Python APIs, as products:

- :mod:`.executor`: the futures API (Executor, Job), its batch-script writer,
  payloads, runner, backends and the client over the controller's RPC;
- :mod:`.objser`: ObjectSerializer (Python objects in HDF5 files);
- :mod:`.databench`: DataBench;
- :mod:`.compat`: the seeds' classes (SLURMConstructor, SLURMDriver,
  Process, JobContainer) and the decorator API (``@slurmify``, ``Batch``).

Users import the public names from :mod:`fleetslurm`. The modules' former
flat paths (``fleetslurm.api.seeds_process``, ``fleetslurm.api.client``...)
still import, as the module now at the new path: code written against them,
and files that pickled a class by its module path (a JobContainer holding a
Process subclass), keep working. ``fleetslurm.api.executor``, ``.objser`` and
``.databench`` were modules and are packages now; they answer the former
modules' names (``from fleetslurm.api.objser import ObjectSerializer``).
"""

from __future__ import annotations

import importlib as _importlib
import importlib.machinery as _machinery
import sys as _sys

#: former module (under fleetslurm.api) -> where it is now
_MOVED = {
    "job": "executor.job", "script": "executor.script", "payload": "executor.payload",
    "runner": "executor.runner", "bigdata": "executor.bigdata",
    "local_run": "executor.local_run", "client": "executor.client",
    "backends": "executor.backends", "backend_local": "executor.backends.local",
    "backend_slurm": "executor.backends.slurm",
    "objser_file": "objser.files", "objser_format": "objser.format",
    "databench_analyses": "databench.analyses", "databench_callable": "databench.callable",
    "databench_inputs": "databench.inputs", "databench_script": "databench.script",
    "databench_spool": "databench.spool", "databench_status": "databench.status",
    "seeds_constructor": "compat.constructor", "seeds_driver": "compat.driver",
    "seeds_process": "compat.process", "slurmify": "compat.slurmify",
    "slurmify_dispatch": "compat.dispatch",
}


class _Moved:
    """Imports ``fleetslurm.api.<former>`` as the module at its new path (the
    same module object, not a copy): a meta path finder and its loader. Last
    on ``sys.meta_path``: asked only for names no other finder knows."""

    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        prefix, _, name = fullname.rpartition(".")
        if prefix != __name__ or name not in _MOVED:
            return None
        return _machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return None

    def exec_module(self, module):  # type: ignore[no-untyped-def]
        name = module.__name__.rpartition(".")[2]
        # the import system hands back what sys.modules holds after this
        _sys.modules[module.__name__] = _importlib.import_module(f"{__name__}.{_MOVED[name]}")


if not any(isinstance(f, _Moved) for f in _sys.meta_path):
    _sys.meta_path.append(_Moved())

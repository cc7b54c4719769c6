"""fleetslurm: a SLURM-shaped workload manager for a few machines over SSH.

The package root stays import-light (every command imports it, and sbatch
must start fast): the public names below are loaded on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    # errors
    "FleetError": "errors", "InvalidValue": "errors", "UsageError": "errors",
    "ConfigError": "errors", "SubmitError": "errors", "JobError": "errors",
    "InvalidJobId": "errors", "AccessDenied": "errors",
    "RemoteJobError": "errors", "JobTimeout": "errors", "StoreError": "errors",
    "ControllerError": "errors", "ControllerLost": "errors", "TransportError": "errors", "NodeUnreachable": "errors",
    "FileMissing": "errors", "FileUnreadable": "errors", "AuthenticationFailed": "errors",
    "TransferCorrupt": "errors", "WorkdirTaken": "errors",
    "HostKeyError": "errors", "SerializationError": "errors",
    # data
    "JobState": "model", "JobRecord": "model", "NodeRecord": "model",
    "PartitionRecord": "model",
    # configuration and state
    "FleetConfig": "config", "MachineConfig": "config", "PartitionConfig": "config",
    "load_config": "config", "resolve_config": "config", "find_config": "paths",
    "StatePaths": "paths", "Store": "store",
    # the controller and how to reach it
    "Controller": "ctld.loop", "Client": "rpc", "connect": "rpc",
    "ensure_controller": "rpc",
    # the pure scheduler
    "SchedulerState": "scheduler",
    # the Python API
    "Executor": "api.executor.executor", "Job": "api.executor.job",
    "ObjectSerializer": "api.objser.serializer", "Serializer": "api.objser.serializer",
    # the seeds' classes and DataBench (fleetslurm.databench is its module)
    "SLURMConstructor": "api.compat.constructor",
    "SLURMDriver": "api.compat.driver",
    "DataBenchSLURM": "api.databench.bench",
    "Process": "api.compat.process", "JobContainer": "api.compat.process",
    # the decorator API (the slurminade seed)
    "slurmify": "api.compat.slurmify", "Batch": "api.compat.slurmify",
    "set_dispatcher": "api.compat.slurmify", "get_dispatcher": "api.compat.slurmify",
    "update_default_configuration": "api.compat.slurmify",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> "object":
    # (no typing nor importlib at the top: every command imports this package)
    import importlib

    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fleetslurm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fleetslurm.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # the public names (submodules, once imported, are attributes too: not listed)
    return sorted(__all__)

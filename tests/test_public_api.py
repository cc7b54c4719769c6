"""The package's public names: __all__ is complete, resolves, and stays lazy."""

from __future__ import annotations

import inspect
import subprocess
import sys

import fleetslurm
from fleetslurm import errors


def test_all_names_resolve_and_match_dir():
    for name in fleetslurm.__all__:
        assert getattr(fleetslurm, name) is not None, name
    public = {n for n in dir(fleetslurm) if not n.startswith("_")}
    assert public == set(fleetslurm.__all__) - {"__version__"}


def test_every_error_is_exported_and_derives_from_the_root():
    classes = {n for n, v in vars(errors).items()
               if inspect.isclass(v) and issubclass(v, Exception) and v.__module__ == errors.__name__}
    assert classes == set(errors.__all__)
    assert classes <= set(fleetslurm.__all__)
    for name in classes:
        assert issubclass(getattr(errors, name), errors.FleetError)


def test_importing_the_package_loads_nothing_heavy():
    code = ("import sys, fleetslurm; "
            "print(','.join(m for m in ('pydantic', 'paramiko', 'typer', 'sqlite3') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""

"""SLURM-named commands (``sbatch``, ``srun``, ...) as small executables that
run fleetslurm's, so scripts and client libraries that call SLURM by name work
unchanged once the directory holding them is first on ``PATH``.

Every shim carries a marker line, so ``uninstall`` removes only files
fleetslurm wrote and ``install`` never overwrites anyone else's ``sbatch``.

Shims run on every poll of a client library (submitit calls ``sacct`` every
few seconds, dask-jobqueue ``sbatch``/``scancel`` per worker), so they start
the interpreter with ``-S``: no ``site`` processing, whose ``.pth`` hooks
(editable-install finders and the like) cost more than the command itself;
and they end with ``os._exit`` once the output is flushed, skipping the
interpreter's teardown (the commands leave no thread or atexit work behind).
The directories the installing interpreter imports from are written into the
shim instead, and ``site`` is still run when an import fails without it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
TYPE_CHECKING = False
if TYPE_CHECKING:  # (annotations only: typing is some 4 ms of a command's start)
    from typing import Iterable, Optional

from .errors import FleetError

__all__ = ["COMMANDS", "MARKER", "install_shims", "uninstall_shims", "is_shim",
           "shadowing_commands", "shim_text"]

COMMANDS = ("sbatch", "squeue", "sinfo", "scancel", "sacct", "scontrol", "srun",
            "sacctmgr", "sshare", "sprio", "sstat")

#: the commands whose shims try the thin client first (cli/thin.py's COMMANDS)
THIN_COMMANDS = ("sbatch", "squeue", "sacct")

#: the line that identifies a file as ours (the second line of every shim)
MARKER = "# fleetslurm-shim:"
#: what shims written before the marker existed carry
_LEGACY_MARKER = "# fleetslurm shim: runs `fleetslurm"
#: longest shebang line Linux passes on whole (BINPRM_BUF_SIZE is 256 since 5.1, 128 before)
_MAX_SHEBANG = 120

_BODY = """{marker} `{name}` runs fleetslurm's {name}; written by `fleetslurm shims install`
import sys
sys.path[len(sys.path):] = {paths!r}
code = None
{thin}if code is None:
    try:
        from fleetslurm.cli.main import main
    except ImportError:  # installed somewhere only site's .pth hooks reach
        import site
        site.main()
        from fleetslurm.cli.main import main
    sys.argv[0] = {name!r}
    code = main()
# the interpreter's own exit (module teardown: some 4 ms) is skipped once the
# output is out; a failing flush takes the ordinary exit, which reports it
try:
    sys.stdout.flush()
    sys.stderr.flush()
except BaseException:
    sys.exit(code)
import posix
posix._exit(int(code or 0))
"""

#: for THIN_COMMANDS: the thin client (cli/thin.py) first, loaded from its
#: file without the package (its cached bytecode, no import of fleetslurm);
#: its None leaves the command to the full path
_THIN = """try:
    import _frozen_importlib_external as _fie
    _thin = type(sys)("fleetslurm_thin")
    _fie.SourceFileLoader("fleetslurm_thin", {path!r}).exec_module(_thin)
    code = _thin.main({name!r}, sys.argv[1:])
except (ImportError, OSError):
    pass
"""


def _import_paths() -> list[str]:
    """Where this interpreter finds fleetslurm and its dependencies, beyond
    what ``python -S`` already searches (the standard library)."""
    import sysconfig

    stdlib = {os.path.realpath(sysconfig.get_path(k)) for k in ("stdlib", "platstdlib")}
    package_root = str(Path(__file__).resolve().parent.parent)
    paths: list[str] = []
    for p in [*sys.path, package_root]:
        if not p or not os.path.isdir(p):
            continue
        real = os.path.realpath(p)
        if real in stdlib or real.endswith(".zip") or "lib-dynload" in real:
            continue
        if p not in paths:
            paths.append(p)
    return paths


def _shebang(python: str) -> str:
    if len(python) <= _MAX_SHEBANG and not any(c.isspace() for c in python):
        return f"#!{python} -S\n"
    # A path the kernel cannot take from a shebang line: start through sh. The
    # second line is an exec for sh and a harmless string for Python.
    import shlex

    return f"#!/bin/sh\n''''exec {shlex.quote(python)} -S \"$0\" \"$@\" #'''\n"


def shim_text(name: str, python: str = sys.executable,
              paths: Optional[list[str]] = None) -> str:
    """The content of the shim for SLURM command ``name``."""
    if name not in COMMANDS:
        raise FleetError(f"no shim for {name!r}: fleetslurm provides {', '.join(COMMANDS)}")
    thin = ""
    if name in THIN_COMMANDS:
        thin = _THIN.format(name=name, path=str(Path(__file__).resolve().parent / "cli" / "thin.py"))
    body = _BODY.format(marker=MARKER, name=name, thin=thin,
                        paths=_import_paths() if paths is None else paths)
    return _shebang(python) + body


def is_shim(path: "str | Path") -> bool:
    """Whether ``path`` is a regular file fleetslurm wrote as a shim."""
    p = Path(path)
    if p.is_symlink() or not p.is_file():
        return False
    try:
        with open(p, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return any(line.startswith((MARKER, _LEGACY_MARKER)) for line in head.splitlines()[:4])


def install_shims(directory: "str | Path", python: str = sys.executable) -> list[Path]:
    """Write one executable per SLURM command into ``directory`` (idempotent).

    Refuses, writing nothing, when a file of the same name there is not one
    of ours: fleetslurm never replaces someone else's ``sbatch``.
    """
    d = Path(directory).expanduser().absolute()
    foreign = [d / n for n in COMMANDS
               if (os.path.lexists(d / n)) and not is_shim(d / n)]
    if foreign:
        raise FleetError(
            f"{', '.join(map(str, foreign))}: not written by fleetslurm; left untouched and "
            f"no shim installed. Remove {'them' if len(foreign) > 1 else 'it'} or choose "
            "another directory")
    try:
        d.mkdir(parents=True, exist_ok=True)
        paths = _import_paths()
        written = []
        for name in COMMANDS:
            path = d / name
            text = shim_text(name, python, paths)
            if not path.exists() or path.read_text() != text:
                tmp = d / f".{name}.fleetslurm-tmp"
                tmp.write_text(text)
                os.chmod(tmp, 0o755)
                os.replace(tmp, path)
            written.append(path)
    except OSError as exc:
        raise FleetError(f"cannot write shims into {d}: {exc.strerror or exc}") from exc
    return written


def uninstall_shims(directory: "str | Path") -> tuple[list[Path], list[Path]]:
    """Remove our shims from ``directory``. Returns (removed, left): ``left``
    are files with a SLURM command's name that fleetslurm did not write."""
    d = Path(directory).expanduser().absolute()
    removed, left = [], []
    for name in COMMANDS:
        path = d / name
        if not os.path.lexists(path):
            continue
        if not is_shim(path):
            left.append(path)
            continue
        try:
            path.unlink()
        except OSError as exc:
            raise FleetError(f"cannot remove {path}: {exc.strerror or exc}") from exc
        removed.append(path)
    return removed, left


def shadowing_commands(directory: "str | Path",
                       path_env: Optional[str] = None) -> tuple[bool, dict[str, list[str]]]:
    """Which real SLURM commands would run instead of the shims in ``directory``.

    Returns ``(on_path, {earlier_dir: [command, ...]})``: whether ``directory``
    is on ``PATH`` at all, and the executables named like a SLURM command
    (and not our shims) in the directories that come before it.
    """
    target = os.path.realpath(Path(directory).expanduser().absolute())
    entries: Iterable[str] = (os.environ.get("PATH", "") if path_env is None
                              else path_env).split(os.pathsep)
    found: dict[str, list[str]] = {}
    seen: set[str] = set()
    for entry in entries:
        real = os.path.realpath(entry or ".")
        if real == target:
            return True, found
        if real in seen:  # /bin and /usr/bin are one directory on merged-/usr systems
            continue
        seen.add(real)
        for name in COMMANDS:
            exe = os.path.join(real, name)
            if (os.path.isfile(exe) and os.access(exe, os.X_OK) and not is_shim(exe)
                    and name not in found.get(entry or ".", [])):
                found.setdefault(entry or ".", []).append(name)
    return False, found

"""fleetslurm's one writer of batch scripts: every script it submits or hands
out (the Executor's, :class:`~fleetslurm.api.compat.constructor.SLURMConstructor`'s,
DataBench's, SLURMDriver's wrapper) is :func:`compose`'d from the pieces
below, so ``#SBATCH`` lines, set-up lines and embedded files are written one
way. Pure: no I/O.

Every script is a plain SLURM batch script (``#!/bin/bash``, ``#SBATCH``
lines, a body), so it runs unchanged under ``fleetslurm sbatch``, a real
SLURM's ``sbatch`` and :class:`fleetslurm.SLURMDriver`. Every value that
reaches shell text is quoted exactly once (:func:`shlex.quote`).

The Executor's script (:func:`batch_script`)::

    #!/bin/bash
    #SBATCH --job-name=square
    #SBATCH --cpus-per-task=2
    #SBATCH --output=/home/u/.fleetslurm/executor/3f2a.../job.out
    #SBATCH --error=/home/u/.fleetslurm/executor/3f2a.../job.err
    module load gcc || { echo "fleetslurm: module load gcc failed on $(hostname)" >&2; exit 1; }
    eval "$(conda shell.bash hook)" && conda activate ml || { echo "..." >&2; exit 1; }
    export OMP_NUM_THREADS=2
    stage="${FLEETSLURM_STAGE_DIR:-/home/u/.fleetslurm/executor/3f2a...}"
    exec python "$stage/fleetslurm_runner.py" "$stage/call.pkl" "$stage/result.pkl"

``$FLEETSLURM_STAGE_DIR`` is set by the fleet backend on a machine without a
shared filesystem (the payload was staged there); elsewhere the payload
directory is used in place.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

from ...errors import InvalidValue, UsageError
from .client import options_argv

__all__ = ["compose", "sbatch_lines", "setup_lines", "checked_setup_lines", "embedded_file",
           "private_dir_lines", "check_memory", "check_time", "batch_script", "RUNNER_NAME",
           "call_name", "result_name", "log_names"]

RUNNER_NAME = "fleetslurm_runner.py"


# ``module`` is a shell function that login shells define; a batch script's
# non-login bash gets it from the first init file found (Lmod, then
# Environment Modules).
_MODULE_INIT = (
    "if ! type module >/dev/null 2>&1; then\n"
    "    for f in /etc/profile.d/lmod.sh /etc/profile.d/modules.sh "
    "/usr/share/lmod/lmod/init/bash /usr/share/modules/init/bash; do\n"
    "        if [ -r \"$f\" ]; then . \"$f\"; break; fi\n"
    "    done\n"
    "fi\n"
    "if ! type module >/dev/null 2>&1; then\n"
    "    echo \"fleetslurm: 'module' is not available on $(hostname); install Lmod or "
    "Environment Modules there, or submit without modules=\" >&2\n"
    "    exit 1\n"
    "fi"
)

_CONDA_INIT = (
    "if ! command -v conda >/dev/null 2>&1; then\n"
    "    for f in \"$HOME/miniconda3/etc/profile.d/conda.sh\" "
    "\"$HOME/anaconda3/etc/profile.d/conda.sh\" /opt/conda/etc/profile.d/conda.sh; do\n"
    "        if [ -r \"$f\" ]; then . \"$f\"; break; fi\n"
    "    done\n"
    "fi\n"
    "if ! command -v conda >/dev/null 2>&1; then\n"
    "    echo \"fleetslurm: conda is not installed on $(hostname); install it there, or "
    "submit without conda_env=\" >&2\n"
    "    exit 1\n"
    "fi\n"
    "eval \"$(conda shell.bash hook)\""
)


def check_memory(memory: Union[int, str, None], what: str = "memory") -> Optional[str]:
    """A memory size as ``--mem`` takes it. An int is MB (SLURM's rule for a
    plain number); a string may carry K/M/G/T (``"4G"``). None: no request.
    Raises InvalidValue naming ``what`` and the accepted forms."""
    if memory is None:
        return None
    from ...slurm.units import parse_mem

    text = str(memory).strip()
    if isinstance(memory, bool) or (isinstance(memory, int) and memory < 0):
        raise InvalidValue(f"{what}: {memory!r} is not a memory size; give MB as an int "
                           "or a string such as '512M' or '4G'")
    try:
        parse_mem(text, option=what)
    except InvalidValue as exc:
        raise InvalidValue(f"{exc}; give MB as an int or a string such as '512M' or '4G'") \
            from None
    return text


def check_time(limit: Union[int, str, None], what: str = "time") -> Optional[str]:
    """A time limit as ``--time`` takes it: an int is minutes (SLURM's rule),
    a string is SLURM's grammar (``"30"``, ``"1:00:00"``, ``"2-00:00"``,
    ``"UNLIMITED"``). None: the partition's default. Raises InvalidValue."""
    if limit is None:
        return None
    from ...slurm.units import parse_time_limit

    if isinstance(limit, bool) or (isinstance(limit, int) and limit < 0):
        raise InvalidValue(f"{what}: {limit!r} is not a time limit; give minutes as an int "
                           "or a string such as '30:00' or '2:00:00'")
    text = str(limit).strip()
    try:
        parse_time_limit(text, option=what)
    except InvalidValue as exc:
        raise InvalidValue(f"{exc}; give minutes as an int or a string such as '30:00' "
                           "or '2:00:00'") from None
    return text


def sbatch_lines(options: Mapping[str, Any]) -> list[str]:
    """``#SBATCH`` lines for sbatch options by long name (``cpus_per_task``
    or ``cpus-per-task``). Values are shell-quoted once, as ``#SBATCH`` lines
    are split shell-style. Raises UsageError for an unknown name (listing the
    valid ones) or a flag given a value."""
    lines = []
    for arg in options_argv(options):
        name, sep, value = arg.partition("=")
        lines.append(f"#SBATCH {name}={shlex.quote(value)}" if sep else f"#SBATCH {name}")
    return lines


def setup_lines(conda_env: Optional[str] = None, modules: Sequence[str] = (),
                setup: Sequence[str] = ()) -> list[str]:
    """Shell lines run before the job: ``module load`` each module, activate a
    conda environment, then the caller's own ``setup`` lines (verbatim: they
    are shell code the caller wrote). A missing ``module``/``conda`` on the
    machine fails the job with a message naming the machine."""
    if isinstance(modules, str):
        raise InvalidValue(f"modules must be a list of module names, not the string "
                           f"{modules!r}; write modules=[{modules!r}]")
    if isinstance(setup, str):
        raise InvalidValue("setup must be a list of shell lines, not one string; "
                           f"write setup=[{setup!r}]")
    lines: list[str] = []
    if modules:
        lines.append(_MODULE_INIT)
        lines.extend(f"module load {shlex.quote(str(m))}" for m in modules)
    if conda_env:
        lines.append(_CONDA_INIT)
        lines.append(f"conda activate {shlex.quote(str(conda_env))}")
    lines.extend(str(s) for s in setup)
    return lines


def _delimiter(text: str, base: str = "FLEETSLURM_EOF") -> str:
    """A heredoc delimiter that is no line of ``text``."""
    lines = set(text.splitlines())
    delim, n = base, 0
    while delim in lines:
        n += 1
        delim = f"{base}_{n}"
    return delim


def embedded_file(var: str, name: str, text: str, mode: str = "600") -> list[str]:
    """Shell lines that write ``text`` to ``$fleetslurm_dir/name`` (a private
    directory made by :func:`private_dir_lines`) and set ``var`` to its path."""
    if not text.endswith("\n"):
        text += "\n"
    delim = _delimiter(text)
    path = f'"$fleetslurm_dir"/{shlex.quote(name)}'
    return [f"{var}={path}",
            f"cat > \"${var}\" <<'{delim}'\n{text}{delim}",
            f"chmod {mode} \"${var}\""]


def private_dir_lines() -> list[str]:
    # Under the job's temporary directory, owner-only, removed when the job ends
    return ['fleetslurm_dir=$(umask 077 && mktemp -d "${TMPDIR:-/tmp}/fleetslurm-job.XXXXXXXX")',
            "trap 'rm -rf \"$fleetslurm_dir\"' EXIT"]


def compose(directives: Sequence[str], comments: Sequence[str], body: Sequence[str], *,
            exit_on_error: bool = False) -> str:
    """A batch script's text: ``#!/bin/bash``, the ``#SBATCH`` ``directives``
    (:func:`sbatch_lines`, or lines kept as a user wrote them), the
    ``comments`` (full lines), ``set -e`` when ``exit_on_error``, then the
    ``body`` lines."""
    lines = ["#!/bin/bash", *directives, *comments]
    if exit_on_error:
        lines.append("set -e")
    lines.extend(body)
    return "\n".join(lines) + "\n"


def checked_setup_lines(conda_env: Optional[str] = None, modules: Sequence[str] = (),
                        setup: Sequence[str] = ()) -> list[str]:
    """The Executor's set-up lines, for a script without ``set -e``: each step
    checks itself and exits with a message naming the machine (``module load
    a b || { echo ...; exit 1; }``), then the caller's ``setup`` lines."""
    lines: list[str] = []
    if modules:
        names = " ".join(shlex.quote(m) for m in modules)
        lines.append(f"module load {names} || {{ echo \"fleetslurm: module load {_dq(names)} "
                     "failed on $(hostname)\" >&2; exit 1; }")
    if conda_env:
        env = shlex.quote(conda_env)
        lines.append('eval "$(conda shell.bash hook)" && conda activate ' + env +
                     " || { echo \"fleetslurm: cannot activate conda environment \"" + env +
                     "\" on $(hostname)\" >&2; exit 1; }")
    lines.extend(str(s) for s in setup)
    return lines


def call_name(array: bool) -> str:
    """The call file's name; an array task's has its index (a pattern)."""
    return "call_%a.pkl" if array else "call.pkl"


def result_name(array: bool) -> str:
    return "result_%a.pkl" if array else "result.pkl"


def log_names(array: bool) -> tuple[str, str]:
    """stdout and stderr file names (SLURM patterns)."""
    return ("task_%a.out", "task_%a.err") if array else ("job.out", "job.err")


def _shell_name(pattern: str) -> str:
    # inside the script the array index comes from SLURM's variable
    return pattern.replace("%a", "${SLURM_ARRAY_TASK_ID}")


def batch_script(options: Mapping[str, Any], folder: str, *, array: Optional[str] = None,
                 python: Optional[str] = None, conda_env: Optional[str] = None,
                 modules: Sequence[str] = (), setup: Sequence[str] = ()) -> str:
    """The script text. ``options``: sbatch options by long name (checked, so an
    unknown name raises listing the valid ones); ``folder``: the payload
    directory on the submit host; ``array``: ``--array`` (``0-9%2``) for a
    job array, whose task i runs call_i.pkl; ``python``: the interpreter when
    no ``conda_env`` is given (with one, the environment's ``python``; with
    neither, the machine's: ``$FLEETSLURM_PYTHON``, which fleetslurm sets from
    the machine's configured ``python``, else ``python3``)."""
    if "\n" in folder or "\0" in folder:
        raise UsageError(f"the payload directory {folder!r} has a newline in its name; "
                         "choose another FLEETSLURM_HOME", prog="fleetslurm")
    is_array = array is not None
    out, err = log_names(is_array)
    opts = dict(options)
    opts.setdefault("output", f"{folder}/{out}")
    opts.setdefault("error", f"{folder}/{err}")
    if is_array:
        opts["array"] = array
    directives = sbatch_lines(opts)
    if conda_env:
        py_word = "python"
    elif python:
        py_word = shlex.quote(python)
    else:
        py_word = '"${FLEETSLURM_PYTHON:-python3}"'
    call = _shell_name(call_name(is_array))
    result = _shell_name(result_name(is_array))
    body = [*checked_setup_lines(conda_env, modules, setup),
            f"stage=\"${{FLEETSLURM_STAGE_DIR:-{_dq(folder)}}}\"",
            f'exec {py_word} "$stage/{RUNNER_NAME}" "$stage/{call}" "$stage/{result}"']
    return compose(directives,
                   ["# generated by fleetslurm's Executor: runs one pickled Python call"], body)


def _dq(text: str) -> str:
    """``text`` safe inside a double-quoted ``${var:-text}``."""
    return "".join("\\" + c if c in '"$`\\}' else c for c in text)

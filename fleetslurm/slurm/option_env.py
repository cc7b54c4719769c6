"""SLURM's input environment variables and the precedence between sources.

``env_options`` maps each command's input variables (man page "INPUT
ENVIRONMENT VARIABLES"/"ENVIRONMENT VARIABLES", cross-checked with the
variables the 22.05 binaries actually read, in the order they read them) to
option dests. ``sbatch_options`` merges command line > ``SBATCH_*`` >
``#SBATCH`` lines as sbatch's ``process_options_second_pass`` does;
``command_options`` does the same for the other commands. Pure: the
environment is a mapping passed in.

How SLURM reads a value:

* sbatch/srun (``slurm_process_option``): a flag variable is on when empty,
  ``yes`` (any case) or a non-zero integer, and ignored otherwise (``0``,
  ``no``, ``true``, ``foo``); an optional-argument variable that is empty
  means the bare option; any other value is the option's argument.
* squeue, sinfo, sacct: a flag variable is on when set at all.
* scancel: a flag variable is ``true``/``t`` or ``false``/``f`` (any case);
  anything else is reported (``error: Unrecognized SCANCEL_BATCH value: 1``)
  and ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from fleetslurm.errors import UsageError
from fleetslurm.slurm.option_tables import TABLES, Opt
from fleetslurm.slurm.options import OptPairs, apply_value, getopt, script_options

__all__ = ["ENV_VARS", "env_options", "sbatch_options", "command_options"]

# "VAR [dest]" in the order the 22.05 binary reads them (later wins); dest
# defaults to VAR without its prefix, lower-cased.
_SBATCH_ENV = """
SBATCH_IGNORE_PBS SBATCH_ACCOUNT SBATCH_ARRAY_INX:array SBATCH_ACCTG_FREQ SBATCH_BATCH
SBATCH_BURST_BUFFER:bb SBATCH_CLUSTER_CONSTRAINT SBATCH_CLUSTERS SLURM_CLUSTERS SBATCH_CONTAINER
SBATCH_CONSTRAINT SBATCH_CORE_SPEC SBATCH_CPU_FREQ_REQ:cpu_freq SBATCH_CPUS_PER_GPU
SBATCH_DEBUG:verbose SBATCH_DELAY_BOOT SBATCH_DISTRIBUTION SBATCH_EXCLUSIVE SBATCH_EXPORT
SBATCH_GET_USER_ENV SBATCH_GRES SBATCH_GRES_FLAGS SBATCH_GPUS SBATCH_GPU_BIND SBATCH_GPU_FREQ
SBATCH_GPUS_PER_NODE SBATCH_GPUS_PER_SOCKET SBATCH_GPUS_PER_TASK SLURM_HINT SBATCH_HINT
SBATCH_JOB_NAME SBATCH_MEM_BIND SBATCH_MEM_PER_CPU SBATCH_MEM_PER_GPU SBATCH_MEM_PER_NODE:mem
SBATCH_NETWORK SBATCH_NO_KILL SBATCH_NO_REQUEUE SBATCH_OPEN_MODE SBATCH_OVERCOMMIT
SBATCH_PARTITION SBATCH_POWER SBATCH_PROFILE SBATCH_QOS SBATCH_REQ_SWITCH:switches
SBATCH_REQUEUE SBATCH_RESERVATION SBATCH_SIGNAL SBATCH_SPREAD_JOB SBATCH_THREAD_SPEC
SBATCH_THREADS_PER_CORE SBATCH_TIMELIMIT:time SBATCH_USE_MIN_NODES SBATCH_WAIT
SBATCH_WAIT_ALL_NODES SBATCH_WCKEY SBATCH_ERROR SBATCH_INPUT SBATCH_OUTPUT
"""
_SRUN_ENV = """
SLURM_ACCOUNT SLURM_ACCTG_FREQ SLURM_BCAST SLURM_BCAST_EXCLUDE SLURM_BURST_BUFFER:bb
SLURM_CLUSTERS SLURM_CLUSTER_CONSTRAINT SLURM_COMPRESS SLURM_CONSTRAINT SLURM_CORE_SPEC
SRUN_CPUS_PER_TASK SLURM_CPU_BIND SLURM_CPU_FREQ_REQ:cpu_freq SLURM_CPUS_PER_GPU
SLURM_DELAY_BOOT SLURM_DEPENDENCY SLURM_DISABLE_STATUS SLURM_DISTRIBUTION SLURM_EPILOG
SLURM_EXACT SLURM_EXCLUSIVE SLURM_EXPORT_ENV:export SRUN_EXPORT_ENV:export SLURM_GPUS
SLURM_GPU_BIND SLURM_GPU_FREQ SLURM_GPUS_PER_NODE SLURM_GPUS_PER_SOCKET SLURM_GPUS_PER_TASK
SLURM_GRES SLURM_GRES_FLAGS SLURM_HINT SLURM_JOB_ID:jobid SLURM_JOB_NAME
SLURM_JOB_NUM_NODES:nodes SLURM_KILL_BAD_EXIT:kill_on_bad_exit SLURM_LABELIO:label SLURM_MEM_BIND
SLURM_MEM_PER_CPU SLURM_MEM_PER_GPU SLURM_MEM_PER_NODE:mem SLURM_MPI_TYPE:mpi
SLURM_NCORES_PER_SOCKET:cores_per_socket SLURM_NETWORK SLURM_NO_KILL SLURM_NPROCS:ntasks
SLURM_NTASKS SLURM_NSOCKETS_PER_NODE:sockets_per_node SLURM_NTASKS_PER_NODE
SLURM_NTASKS_PER_GPU SLURM_NTASKS_PER_TRES SLURM_OPEN_MODE SLURM_OVERCOMMIT SLURM_OVERLAP
SLURM_PARTITION SLURM_POWER SLURM_PROFILE SLURM_PROLOG SLURM_QOS SLURM_REMOTE_CWD:chdir
SLURM_REQ_SWITCH:switches SLURM_RESERVATION SLURM_RESV_PORTS SLURM_SEND_LIBS SLURM_SIGNAL
SLURM_SPREAD_JOB SLURM_STDERRMODE:error SLURM_STDINMODE:input SLURM_STDOUTMODE:output
SLURM_TASK_EPILOG SLURM_TASK_PROLOG SLURM_THREAD_SPEC SLURM_THREADS SLURM_THREADS_PER_CORE
SLURM_TIMELIMIT:time SLURM_UNBUFFEREDIO:unbuffered SLURM_USE_MIN_NODES SLURM_WAIT SLURM_WCKEY
SLURM_WORKING_DIR:chdir SRUN_CONTAINER SLURM_DEBUG:verbose
"""
# squeue reads SQUEUE_ALL..SQUEUE_SIBLING before its getopt loop and the rest
# after it, each only when the command line left that option unset. (22.05
# reads SQUEUE_LICENSES only when -p is unset, a slip not copied here.)
_SQUEUE_ENV = """
SQUEUE_ALL SQUEUE_ARRAY SQUEUE_SORT SQUEUE_ARRAY_UNIQUE SLURM_CLUSTERS SQUEUE_FEDERATION
SQUEUE_LOCAL SQUEUE_PRIORITY SQUEUE_SIB:sibling SQUEUE_SIBLING SQUEUE_FORMAT
SQUEUE_FORMAT2:format_long SQUEUE_ACCOUNT:accounts SQUEUE_NAMES:name SQUEUE_LICENSES
SQUEUE_PARTITION:partitions SQUEUE_QOS SQUEUE_STATES SQUEUE_USERS:user
"""
_SINFO_ENV = """
SINFO_ALL SINFO_FEDERATION SINFO_LOCAL SINFO_PARTITION SINFO_SORT SLURM_CLUSTERS SINFO_FORMAT
"""
_SCANCEL_ENV = """
SCANCEL_ACCOUNT SCANCEL_BATCH SCANCEL_CTLD SCANCEL_FULL SCANCEL_HURRY SCANCEL_INTERACTIVE
SCANCEL_NAME SCANCEL_PARTITION SCANCEL_QOS SCANCEL_STATE SCANCEL_USER SCANCEL_VERBOSE
SCANCEL_WCKEY SLURM_CLUSTERS
"""
_SACCT_ENV = "SACCT_FEDERATION SACCT_LOCAL SACCT_FORMAT"


def _env_table(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in text.split():
        var, _, dest = item.partition(":")
        pairs.append((var, dest or var.split("_", 1)[1].lower()))
    return tuple(pairs)


#: prog -> ((VARIABLE, dest), ...) in the order SLURM reads them
ENV_VARS: dict[str, tuple[tuple[str, str], ...]] = {
    "sbatch": _env_table(_SBATCH_ENV),
    "srun": _env_table(_SRUN_ENV),
    "squeue": _env_table(_SQUEUE_ENV),
    "sinfo": _env_table(_SINFO_ENV),
    "scancel": _env_table(_SCANCEL_ENV),
    "sacct": _env_table(_SACCT_ENV),
    "sstat": (),  # sstat reads no option from the environment
}

_INTEGER = re.compile(r"[ \t\n\r\v\f]*[+-]?[0-9]+")

# Options that set one SLURM field: within and across sources the last wins.
_GROUPS: dict[str, tuple[frozenset[str], ...]] = {
    "sbatch": (frozenset({"requeue", "no_requeue"}), frozenset({"exclusive", "oversubscribe"})),
    "srun": (frozenset({"exclusive", "oversubscribe"}),),
    "squeue": (frozenset({"all", "hide"}), frozenset({"user", "me"})),
}
_MEMORY = ("mem", "mem_per_cpu", "mem_per_gpu")


def _by_dest(prog: str) -> dict[str, Opt]:
    out: dict[str, Opt] = {}
    for opt in TABLES[prog]:
        out.setdefault(opt.dest, opt)
    return out


def _env_pairs(
    prog: str, environ: Mapping[str, str], warnings: list[str] | None
) -> OptPairs:
    """The environment as ``(Opt, value)`` pairs in SLURM's reading order."""
    opts = _by_dest(prog)
    pairs: OptPairs = []
    for var, dest in ENV_VARS[prog]:
        value = environ.get(var)
        if value is None:
            continue
        opt = opts[dest]
        if opt.arg == "required":
            pairs.append((opt, value))
        elif opt.arg == "optional":
            pairs.append((opt, value or None))
        elif prog in ("sbatch", "srun"):
            is_int = _INTEGER.fullmatch(value) is not None
            if value == "" or value.lower() == "yes" or (is_int and int(value) != 0):
                pairs.append((opt, None))
        elif prog == "scancel":
            if value.lower() in ("true", "t"):
                pairs.append((opt, None))
            elif value.lower() not in ("false", "f") and warnings is not None:
                warnings.append(f"error: Unrecognized {var} value: {value}")
        else:
            pairs.append((opt, None))
    return pairs


def _fold(prog: str, sources: Sequence[OptPairs]) -> dict[str, object]:
    """Merge sources, lowest precedence first, as SLURM applies them in turn.

    A later value replaces an earlier one, except that counts add up and
    lists (``--mail-type``, sacct's selectors) grow; setting one member of a
    group (``--requeue``/``--no-requeue`` ...) drops the others.
    """
    groups = _GROUPS.get(prog, ())
    out: dict[str, object] = {}
    for pairs in sources:
        for opt, value in pairs:
            for group in groups:
                if opt.dest in group:
                    for other in group - {opt.dest}:
                        out.pop(other, None)
            apply_value(out, opt, value)
    return out


def env_options(
    prog: str, environ: Mapping[str, str], *, warnings: list[str] | None = None
) -> dict[str, object]:
    """``prog``'s input environment variables as ``{dest: value}``.

    Values have the same shapes as ``parse_args`` gives (see the module doc
    for how each command reads a flag). Messages SLURM prints without
    stopping are appended to ``warnings``.
    """
    return _fold(prog, [_env_pairs(prog, environ, warnings)])


def _check_memory(prog: str, script: OptPairs, env: OptPairs, cli: OptPairs) -> OptPairs:
    """SLURM's ``_validate_memory_options``: returns ``env`` minus overridden memory."""
    given = {opt.dest for opt, _ in [*script, *cli] if opt.dest in _MEMORY}
    if len(given) > 1:
        raise UsageError(
            "fatal: --mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive.",
            prog=prog,
        )
    if given:
        return [(opt, value) for opt, value in env if opt.dest not in _MEMORY]
    if len({opt.dest for opt, _ in env if opt.dest in _MEMORY}) > 1:
        raise UsageError(
            "fatal: SLURM_MEM_PER_CPU, SLURM_MEM_PER_GPU, and SLURM_MEM_PER_NODE "
            "are mutually exclusive.",
            prog=prog,
        )
    return env


def sbatch_options(
    argv: Sequence[str],
    script_text: str,
    environ: Mapping[str, str],
    *,
    filename: str = "stdin",
    warnings: list[str] | None = None,
) -> tuple[dict[str, object], list[str], list[str]]:
    """sbatch's options from all three sources: command line > env > script.

    ``argv`` is sbatch's command line without the program name, ``script_text``
    the batch script (for ``--wrap``, the script sbatch generates), ``filename``
    the script's base name or ``stdin`` for messages. Returns the merged
    ``{dest: value}``, the command line's positionals (script path, then its
    arguments) and the argv found in the ``#SBATCH`` lines.

    Raises ``UsageError`` as sbatch fails: a bad command-line option (glibc's
    text; checked first, like sbatch's first pass), an unmatched quote in a
    ``#SBATCH`` line, a bad option there (glibc's text) or a word that is not
    an option (``error: Invalid directive found in batch script: foo``), and
    conflicting memory options.
    """
    table = TABLES["sbatch"]
    cli, positionals = getopt("sbatch", table, argv, posix_stop=True)
    script_argv = script_options(script_text, filename=filename, warnings=warnings)
    for word in script_argv:
        if word.lower() in ("hetjob", "packjob"):
            raise UsageError(
                "error: heterogeneous jobs ('#SBATCH hetjob') are not supported "
                "by fleetslurm; submit the components as separate jobs",
                prog="sbatch",
            )
    script, stray = getopt("sbatch", table, script_argv, posix_stop=True)
    if stray:
        raise UsageError(
            f"error: Invalid directive found in batch script: {stray[0]}", prog="sbatch"
        )
    env = _check_memory("sbatch", script, _env_pairs("sbatch", environ, warnings), cli)
    return _fold("sbatch", [script, env, cli]), positionals, script_argv


# squeue/sinfo/sacct ignore their FORMAT variables when the command line
# chooses an output format some other way.
_FORMAT_OVERRIDES = {
    "squeue": ("format", "format_long", "long", "steps", "start"),
    # sinfo takes SINFO_FORMAT only when none of -s -N -R is given (opts.c)
    "sinfo": ("format", "format_long", "summarize", "node_oriented", "list_reasons"),
    "sacct": ("format", "brief", "long"),
}


def command_options(
    prog: str,
    argv: Sequence[str],
    environ: Mapping[str, str],
    *,
    warnings: list[str] | None = None,
) -> tuple[dict[str, object], list[str]]:
    """Options of srun, squeue, sinfo, scancel or sacct: command line > env.

    Returns ``({dest: value}, positionals)``; srun stops at its program (the
    positionals are the command to run), the others collect positionals
    anywhere. Raises ``UsageError`` with glibc's text for a bad option.
    """
    cli, positionals = getopt(prog, TABLES[prog], argv, posix_stop=prog == "srun")
    env = _env_pairs(prog, environ, warnings)
    given = {opt.dest for opt, _ in cli}
    if prog in _FORMAT_OVERRIDES and given & set(_FORMAT_OVERRIDES[prog]):
        env = [(opt, v) for opt, v in env if opt.dest not in ("format", "format_long")]
    if prog == "squeue" and any(opt.dest == "format" for opt, _ in env):
        env = [(opt, v) for opt, v in env if opt.dest != "format_long"]
    if prog == "srun":
        env = _check_memory("srun", [], env, cli)
    return _fold(prog, [env, cli]), positionals

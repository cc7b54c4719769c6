"""``fleetslurm`` entry point.

SLURM's own commands (``fleetslurm sbatch ...``) are dispatched to small
hand-written front ends: they must parse options exactly as SLURM's getopt
does (abbreviations, ``-n1``, ``--opt value``), which typer/click do not, and
must start fast (sbatch's target is 80 ms per call, and typer plus pydantic
cost more than that to import). The administrative commands
(``controller``, ``nodes``, ``tail``, ``explain``) use typer.
"""

from __future__ import annotations

import os
import sys

SLURM_COMMANDS = ("sbatch", "squeue", "sinfo", "scancel", "sacct", "scontrol", "srun",
                  "sacctmgr", "sshare", "sprio", "sstat")


def main(argv: "list[str] | None" = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    prog = os.path.basename(sys.argv[0]) if argv is None else "fleetslurm"
    if prog in SLURM_COMMANDS:  # installed under SLURM's own name (a shim)
        args.insert(0, prog)
        prog = "fleetslurm"
    if args and args[0] in SLURM_COMMANDS:
        cmd = args[0]
        if cmd == "squeue":  # polled in loops: its common calls skip the option tables
            from .fast import squeue

            code = squeue(args[1:])
            if code is not None:
                sys.stdout.flush()
                return code
        import importlib

        from .common import run

        module = importlib.import_module(f"fleetslurm.cli.{cmd}_cmd")
        code = run(cmd, module.main, args[1:])
        sys.stdout.flush()
        return code
    if args[:2] == ["lab", "bridge"] and len(args) == 2:
        # every remote command starts here: no typer, standard library only
        from ..lab import bridge

        return bridge()
    from .admin import app_main

    return app_main(args)


if __name__ == "__main__":
    sys.exit(main())

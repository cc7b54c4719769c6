"""``sbatch``: submit a batch script (file, standard input, or --wrap)."""

from __future__ import annotations

import os
import socket
import sys

from ..errors import UsageError

PROG = "sbatch"

USAGE = """\
Usage: sbatch [OPTIONS(0)...] [ : [OPTIONS(N)...]] script(0) [args(0)...]
"""


WRAP_HEADER = "#!/bin/sh\n# This script was created by sbatch --wrap.\n\n"


def wrap_script(command: str) -> str:
    """The script SLURM generates for ``--wrap`` (also in slurm.jobspec, kept
    here so sbatch need not import it)."""
    return f"{WRAP_HEADER}{command}\n"


def read_script(path: str | None, here=None) -> tuple[str, str]:
    """The script's text and the job's default name (``here``: whose file
    and standard input, common.Here)."""
    if here is None:
        from .common import Here

        here = Here()
    if path is None:
        data = here.read(None)
        name = "sbatch"
    else:
        try:
            data = here.read(path)
        except OSError:
            raise UsageError(f"Unable to open file {path}", prog=PROG) from None
        name = os.path.basename(path)
    if not data:
        raise UsageError("Batch script is empty!", prog=PROG)
    try:
        text = data.decode()
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text, name


def command_text(positionals: list[str], cwd: str | None = None) -> str:
    """scontrol's Command for a script file: the path as given when it
    starts with ``/`` or ``.``, else joined to the working directory (as
    sbatch 22.05 finds it), then the script's arguments; standard input has
    none."""
    if not positionals:
        return ""
    path = positionals[0]
    if not path.startswith(("/", ".")):
        path = os.path.join(os.getcwd() if cwd is None else cwd, path)
    return " ".join([path, *positionals[1:]])


def main(argv: list[str], here=None) -> int:
    """sbatch ``argv``, reading and writing what ``here`` (common.Here: this
    process's by default; a thin client's in the controller) gives."""
    from ..slurm.option_env import sbatch_options
    from ..slurm.option_support import refuse_unsupported
    from ..slurm.options import SBATCH, parse_args

    if here is None:
        from .common import Here

        here = Here()
    environ = here.environ
    cli, positionals = parse_args(PROG, SBATCH, argv, posix_stop=True)
    refuse_unsupported(PROG, cli, argv=argv)
    if cli.get("help") or cli.get("usage"):
        here.out(USAGE)
        return 0
    if cli.get("version"):
        here.out("slurm 22.05.8 (fleetslurm)\n")
        return 0
    wrap = cli.get("wrap")
    if wrap is not None:
        if positionals:
            raise UsageError("Script arguments not permitted with --wrap option", prog=PROG)
        script, name = wrap_script(str(wrap)), "wrap"
        script_args: list[str] = []
    else:
        script, name = read_script(positionals[0] if positionals else None, here)
        script_args = positionals[1:]
    from ..slurm.jobspec import SCRIPT_TOO_LONG, script_too_long

    if script_too_long(script):
        # the controller refuses it too; saying so here spares sending it
        from ..errors import SubmitError

        raise SubmitError(SCRIPT_TOO_LONG)
    opts, _pos, _ = sbatch_options(argv, script, environ,
                                   filename=name if name not in ('wrap', 'sbatch') else 'stdin')
    if opts.get("wrap") is not None and wrap is None:
        # --wrap given only inside the script or environment: SLURM ignores it there
        opts.pop("wrap", None)
    refuse_unsupported(PROG, opts, argv=argv, environ=environ)  # #SBATCH lines, SBATCH_*
    for what in ("clusters", "test_only", "wait"):
        if opts.get(what):  # (a thin client's sbatch runs these in its own process)
            here.here_only(what)
    if opts.get("clusters"):
        check_clusters(PROG, str(opts["clusters"]))

    cwd = here.cwd()
    env = dict(environ)
    env.setdefault("SLURM_UMASK", "%04o" % here.umask())  # (umask.with_umask's rule)
    request = dict(options=opts, script=script, script_args=script_args,
                   env=env, cwd=cwd,
                   submit_host=socket.gethostname(),
                   script_name=name,
                   prio_process=here.nice(),
                   command=command_text(positionals, cwd) if wrap is None else "",
                   # secrets.token_hex's bytes, without importing secrets (hmac,
                   # hashlib, random: 3 ms of every sbatch)
                   token=os.urandom(16).hex())
    if opts.get("test_only"):
        return test_only(request)
    reply = submit_once(here.client, request)
    job_id = reply["job_id"]
    if reply.get("warning"):
        here.err(f"{PROG}: warning: {reply['warning']}\n")
    if opts.get("parsable"):
        if opts.get("clusters"):
            here.out(f"{job_id};{reply['cluster']}\n")
        else:
            here.out(f"{job_id}\n")
    else:
        here.out(f"Submitted batch job {job_id}\n")
    if opts.get("wait"):
        return wait_for(job_id)
    return 0


def test_only(request: dict) -> int:
    """``--test-only``: SLURM's one line on stderr (``sbatch: Job N to start at
    ... using C processors on nodes X in partition P``), nothing submitted; a
    refusal is SLURM's ``allocation failure: REASON`` (oracle, SLURM 22.05)."""
    import time

    from ..errors import SubmitError
    from .common import client

    try:
        with client() as c:
            reply = c.call("submit", **request)
    except SubmitError as exc:
        failed = "Batch job submission failed: "
        for line in str(exc).splitlines():
            if line.startswith(failed):
                sys.stderr.write(f"allocation failure: {line[len(failed):]}\n")
            elif line != "Memory specification can not be satisfied":  # not said here
                sys.stderr.write(f"{PROG}: error: {line}\n")
        return 1
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(reply["start"]))
    sys.stderr.write(f"{PROG}: Job {reply['job_id']} to start at {start} using {reply['cpus']} "
                     f"processors on nodes {reply['node']} in partition {reply['partition']}\n")
    return 0


def check_clusters(prog: str, names: str) -> None:
    """``-M``: only this fleet's own cluster; another name gets what SLURM's
    database answers for a cluster it does not know."""
    from .sshare_cmd import cluster_name

    ours = cluster_name()
    for name in [n for n in names.split(",") if n]:
        if name.lower() != ours.lower():
            raise UsageError(f"No cluster '{name}' known by database.\n"
                             f"'{name}' can't be reached now, or it is an invalid entry for "
                             f"--cluster.  Use 'sacctmgr list clusters' to see available "
                             f"clusters.", prog=prog)


def wait_for(job_id: int) -> int:
    """--wait: block until the job ends; exit with its exit code (SLURM's rule).
    The controller answers the wait request when the job ends (no polling);
    a lost controller is asked again through a new connection."""
    import time

    from ..errors import ControllerLost
    from ..jobwait import HOLD, MARGIN, block
    from .common import client

    ids = [str(job_id)]
    lost = 0
    while True:
        try:
            with client() as c:
                c.set_timeout(HOLD + MARGIN)
                over, pause = False, 0.05
                while True:
                    recs = c.call("jobs", ids=ids, steps=False)
                    if recs and all(r["state"] not in ("PENDING", "RUNNING", "COMPLETING",
                                                       "REQUEUED") for r in recs):
                        codes = [r.get("exit_code") or 0 for r in recs]
                        sigs = [r.get("exit_signal") or 0 for r in recs]
                        return max(codes) if any(codes) else (1 if any(sigs) else 0)
                    if over:  # over for the controller, not yet for us (or unknown)
                        time.sleep(pause)
                        pause = min(0.5, pause * 2)
                    over = block(c.call, ids, HOLD)
        except ControllerLost:
            # the controller stopped (a restart): the next connection starts one
            lost += 1
            if lost >= 3:
                raise
            time.sleep(0.2)


def submit_once(client, request: dict, attempts: int = 3) -> dict:
    """Send a submission; when the connection is lost before the answer (the
    controller died under it), send it again to the controller the next
    command starts: its token makes the same job, never a second one."""
    from ..errors import ControllerLost

    for attempt in range(attempts):
        try:
            with client() as c:
                return c.call("submit", **request)
        except ControllerLost:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")

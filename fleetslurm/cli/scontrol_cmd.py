"""``scontrol``: show and change jobs, nodes and partitions."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from ..errors import InvalidJobId, UsageError

REQUEUE_SIGNAL_WAIT_S = 5.0  # see _main: a job requeueing itself
PROG = "scontrol"
#: what fleetslurm's scontrol takes (docs/OPTIONS.md lists every SLURM option)
USAGE = """\
Usage: scontrol [-o] COMMAND
  show job [ID] | show node [NAME] | show partition [NAME] | show config
  hold | uhold | release | requeue | requeuehold JOB[,JOB...]
  update JobId=ID KEY=VALUE... | update NodeName=NAME State=DRAIN|RESUME Reason=...
  reconfigure | version
"""


def _ids(words: list[str]) -> list[str]:
    ids = [i for w in words for i in w.split(",") if i]
    if not ids:
        raise UsageError("too few arguments for keyword:hold", prog=PROG)
    return ids


def main(argv: list[str]) -> int:
    """scontrol prints its errors bare (no ``scontrol: error:`` prefix)."""
    from ..errors import JobError

    try:
        return _main(argv)
    except JobError as exc:
        text = str(exc)
        sys.stderr.write(text + "\n")
        if _suspend_op(argv):
            reason = text.split(" for job ")[0]
            sys.stderr.write(f"slurm_suspend error: {reason}\n")
        return 1


def _suspend_op(argv: list[str]) -> bool:
    words = [a.lower() for a in argv if not a.startswith("-")]
    return bool(words) and words[0] in ("hold", "uhold", "release")


def _main(argv: list[str]) -> int:
    from ..slurm.option_support import refuse_unsupported
    from ..slurm.options import SCONTROL, parse_args

    # scontrol's getopt permutes: options may follow the command words
    opts, args = parse_args(PROG, SCONTROL, argv, posix_stop=False)
    refuse_unsupported(PROG, opts, argv=argv)
    if opts.get("help"):
        sys.stdout.write(USAGE)
        return 0
    if opts.get("version") or (args and args[0] == "version"):
        sys.stdout.write("slurm 22.05.8 (fleetslurm)\n")
        return 0
    if not args:
        raise UsageError("no command given; try: scontrol show job|node|partition|config, "
                         "hold, release, requeue, update", prog=PROG)
    cmd, rest = args[0].lower(), args[1:]
    from .common import client

    if cmd == "show":
        return _show(rest, one_liner=bool(opts.get("oneliner")))
    if cmd in ("reconfigure", "reconfig"):
        return _reconfigure()
    if cmd == "write":
        return _write(rest)
    if cmd in ("hold", "uhold", "release", "requeue", "requeuehold"):
        ids = _ids(rest)
        itself = cmd.startswith("requeue") and os.environ.get("SLURM_JOB_ID") in ids
        with client() as c:
            if itself:
                # A job requeueing itself: its processes get SIGTERM for it,
                # which must not kill this scontrol before it reports success.
                # Held pending rather than ignored, so that we can wait for it
                # below; blocked only now that we are connected, so a
                # controller this call may have started does not inherit it.
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            if cmd in ("hold", "uhold"):
                c.call("hold", ids=ids, user=cmd == "uhold")
            elif cmd == "release":
                c.call("release", ids=ids)
            else:
                c.call("requeue", ids=ids, hold=cmd == "requeuehold")
        if itself:
            # The job's process group (this scontrol included) is signalled
            # once the node hears of the requeue, a moment after our reply.
            # Returning only when the signal is here means the script's next
            # line runs after its TERM trap, as it does under SLURM, on a busy
            # machine too; the bound covers an scontrol outside the group.
            signal.sigtimedwait({signal.SIGTERM}, REQUEUE_SIGNAL_WAIT_S)
        return 0
    if cmd == "update":
        from ..slurm.job_update import UpdateRefused, parse_job_update, split_words

        if not rest:
            raise UpdateRefused("too few arguments for update keyword")

        fields = split_words(rest)
        lowered = {k.lower(): k for k in fields}
        if "jobid" in lowered or "job" in lowered:
            key = lowered.get("jobid") or lowered["job"]
            job = fields.pop(key)
            # scontrol's own checks first (unknown keys, bad values), as SLURM's
            warnings: list[str] = []
            try:
                parse_job_update(fields, time.time(), warnings)
            finally:
                for line in warnings:
                    sys.stderr.write(line + "\n")
            with client() as c:
                c.call("update_job", ids=[j for j in job.split(",") if j], fields=fields)
            return 0
        if "nodename" in lowered:
            nodes = fields.pop(lowered["nodename"])
            rest_l = {k.lower(): v for k, v in fields.items()}
            unknown = set(rest_l) - {"state", "reason"}
            if unknown:
                raise UsageError(f"Update of this parameter is not supported: "
                                 f"{sorted(unknown)[0]}", prog=PROG)
            with client() as c:
                c.call("update_node", nodes=nodes, state=rest_l.get("state", ""),
                       reason=rest_l.get("reason", ""))
            return 0
        raise UpdateRefused("No valid entity in update command\n"
                            "Input line must include \"NodeName\", \"PartitionName\", "
                            "\"Reservation\", \"JobId\", or \"SlurmctldDebug\"")
    raise UsageError(f'invalid keyword: {args[0]}', prog=PROG)


def _write(rest: list[str]) -> int:
    """``scontrol write batch_script JOBID [FILE|-]``: the job's script, to its
    owner and root; others get SLURM 22.05's "Invalid user id" (and, as
    22.05's scontrol, exit 0)."""
    from ..errors import AccessDenied, InvalidJobId
    from .common import client

    if not rest or rest[0].lower() not in ("batch_script", "batch_scripts"):
        raise UsageError("invalid write keyword: use `scontrol write batch_script JOBID "
                         "[FILE]`", prog=PROG)
    if len(rest) < 2:
        raise UsageError("too few arguments for keyword:batch_script", prog=PROG)
    job = rest[1]
    try:
        with client() as c:
            reply = c.call("batch_script", id=job)
    except (AccessDenied, InvalidJobId) as exc:
        sys.stderr.write(f"{exc}\n")
        return 0
    target = rest[2] if len(rest) > 2 else f"slurm-{reply['job_id']}.sh"
    if target == "-":
        sys.stdout.write(reply["script"])
        return 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(reply["script"])
    sys.stdout.write(f"batch script for job {reply['job_id']} written to {target}\n")
    return 0


def _show(rest: list[str], one_liner: bool = False) -> int:
    from ..slurm import scontrol_fmt
    from .common import client

    if not rest:
        raise UsageError("too few arguments for keyword:show", prog=PROG)
    what, name = rest[0].lower(), (rest[1] if len(rest) > 1 else None)
    now = time.time()
    with client() as c:
        if what in ("job", "jobs", "jobid"):
            # a pending array is one record (ArrayTaskId=0-9%4), as in SLURM
            query: dict = {"steps": True, "group_arrays": True}
            if name:
                query["ids"] = [name]
            else:
                query["squeue"] = True
                query["states"] = "all"
            # rendered by the controller: a finished 100,000-task array is text here
            reply = c.call("show_jobs", now=now, one_liner=one_liner, **query)
            if not reply["count"]:
                if name:
                    raise InvalidJobId("slurm_load_jobs error: Invalid job id specified")
                sys.stdout.write("No jobs in the system\n")
                return 0
            sys.stdout.write(reply["text"])
            return 0
        if what in ("node", "nodes"):
            reply = c.call("nodes")
            nodes = reply["nodes"]
            if name:
                from ..slurm.hostlist import expand

                wanted = set(expand(name))
                nodes = [n for n in nodes if n["name"] in wanted]
                if not nodes:
                    # scontrol 22.05 says this on stdout (and exits 1)
                    sys.stdout.write(f"Node {name} not found\n")
                    return 1
            sys.stdout.write("".join(scontrol_fmt.show_node(n, now, one_liner=one_liner)
                                     for n in nodes))
            return 0
        if what in ("partition", "partitions"):
            reply = c.call("nodes")
            parts = reply["partitions"]
            if name:
                parts = [p for p in parts if p["name"] == name]
                if not parts:
                    sys.stdout.write(f"Partition {name} not found\n")
                    return 1
            sys.stdout.write("".join(scontrol_fmt.show_partition(p, nodes=reply["nodes"],
                                                                 one_liner=one_liner)
                                     for p in parts))
            return 0
        if what == "config":
            items = c.call("config")
            import socket

            # SLURM ends with where its controller runs: here, this host
            footer = [f"Slurmctld(primary) at {socket.gethostname()} is UP"]
            sys.stdout.write(scontrol_fmt.show_config([tuple(i) for i in items], now=now,
                                                      footer=footer))
            return 0
    raise UsageError(f"invalid entity:{rest[0]} for keyword:show", prog=PROG)


def _reconfigure() -> int:
    """``scontrol reconfigure``: the controller reads its config again, the
    file this command's lookup finds (else the one it runs with). Running
    jobs are kept: the controller stops and a new one starts with the new
    config, which finds every job on its machine as after any restart. A
    config that does not validate, or that drops a machine where jobs still
    run, changes nothing. Silent on success, as SLURM's."""
    from ..errors import ConfigError
    from ..rpc import target

    if os.environ.get("FLEETSLURM_STEPS_DIR") and not os.environ.get(
            "FLEETSLURM_CONTROLLER_HOST"):
        # (the commands a machine's agent carries hold no config reader)
        raise ConfigError("scontrol reconfigure is not available inside a job on a machine: "
                          "run it on the controller's host")
    if target().kind != "personal":
        raise ConfigError("this command uses a lab's controller: its admin edits "
                          "/etc/fleetslurm/fleet_config.json and restarts it "
                          "(`systemctl restart fleetslurm`, or `fleetslurm lab stop` then "
                          "`fleetslurm lab start`); running jobs are kept")
    from ..config import default_config, load_config
    from ..config_in_force import in_force
    from ..paths import find_config, state_paths
    from ..rpc import connect, ensure_controller
    from .common import wait_gone

    paths = state_paths()
    found = find_config()
    if found is None:
        running = (in_force(paths) or {}).get("path")
        found = Path(running) if running else None
    new = default_config() if found is None else load_config(found)
    with connect(paths) as c:
        pid = c.call("ping")["pid"]
        busy = [j for j in c.call("jobs", steps=False)
                if j["state"] in ("RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED")
                and set(j.get("nodes") or []) - set(new.machines)]
        if busy:
            where = ", ".join(sorted({n for j in busy for n in j["nodes"]} - set(new.machines)))
            raise ConfigError(
                f"{found or 'the embedded default'} has no machine {where}, where job(s) "
                f"{', '.join(str(j['job_id']) for j in busy)} still run: wait for them (drain "
                "the machine: scontrol update NodeName=... State=DRAIN) or keep it in the config")
        c.call("shutdown")
    wait_gone(pid, 60.0)
    ensure_controller(str(found) if found else None, paths).close()
    return 0


"""Malformed input never gets an internal error, never stores anything and
never stops the controller (issue 10, cases 8, 12 and 15).

A real controller (the embedded default: this machine, local transport) gets
a table of bad sbatch options, each answered with SLURM 22.05's message and
exit status (checked against the real sbatch on this machine), and a table
of malformed RPC requests, each refused with a message naming the field;
after each one the controller still answers. A job record that cannot be
launched (stored by an older version) fails with a reason instead of taking
the controller down.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest


class Ctl:
    """A controller in its own FLEETSLURM_HOME, driven as a user would."""

    def __init__(self, home: Path, work: Path) -> None:
        self.home, self.work = home, work
        work.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        self.env.update(FLEETSLURM_HOME=str(home))
        self.env.pop("FLEETSLURM_CONFIG", None)
        self.env.pop("FLEETSLURM_CONTROLLER", None)

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fleetslurm.cli.main", *args],
                              capture_output=True, text=True, env=self.env, cwd=str(self.work),
                              timeout=timeout)

    def raw(self, line: bytes) -> dict:
        """One request line over the socket, as any local program may send it."""
        from fleetslurm.paths import StatePaths

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(str(StatePaths(self.home).socket))
            s.sendall(line + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                buf += chunk
        return json.loads(buf)

    def call(self, op: str, args: object) -> dict:
        return self.raw(json.dumps({"op": op, "args": args}).encode())

    def alive(self) -> bool:
        reply = self.call("ping", {})
        return reply.get("ok") is True

    def records(self) -> list[dict]:
        out = self.run("squeue", "-t", "all", "-h", "-o", "%i %T %r")
        assert out.returncode == 0, out.stderr
        return [dict(zip(("id", "state", "reason"), line.split())) for line in
                out.stdout.splitlines()]

    def wait_state(self, job: str, states: set[str], timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            rec = {r["id"]: r for r in self.records()}.get(job)
            if rec and rec["state"] in states:
                return rec
            assert time.monotonic() < deadline, f"job {job} never reached {states}: {rec}"
            time.sleep(0.1)

    def stop(self) -> None:
        self.run("controller", "stop")


@pytest.fixture
def ctl(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    c = Ctl(home, tmp_path / "work")
    started = c.run("controller", "start")
    assert started.returncode == 0, started.stderr
    yield c
    c.stop()


# (sbatch options, SLURM 22.05's message, its exit status); from the real sbatch
# on this machine unless noted
SBATCH_CASES = [
    (["--dependency=afterok:9223372036854775808"],
     "Batch job submission failed: Job dependency problem", 1),
    (["--dependency=afterok:1:99999999999999999999999"],
     "Batch job submission failed: Job dependency problem", 1),
    # SLURM takes it and shows a StartTime in the year 1290470566; a time no
    # clock here can hold is refused with SLURM's --begin message instead
    (["--begin=now+99999999999999999999"], "Invalid --begin specification", 255),
    (["--nice=99999999999999"], "Invalid --nice value, out of range (+/- 2147483645)", 255),
    (["--nice=2147483646"], "Invalid --nice value, out of range (+/- 2147483645)", 255),
    (["--cpus-per-task=99999999999999999999"],
     "Numeric argument (9223372036854775807) to big for --cpus-per-task.", 1),
    (["--cpus-per-task=2147483648"], "invalid number of cpus per task (-c -2147483648)", 1),
    (["--cpus-per-task=4294967296"], "invalid number of cpus per task (-c 0)", 1),
    (["--ntasks=2147483648"], "invalid number of tasks (-n -2147483648)", 1),
    (["--ntasks=99999999999999999999"],
     "Numeric argument (9223372036854775807) to big for --ntasks.", 1),
    (["--ntasks-per-node=99999999999999999999"],
     "Numeric argument (9223372036854775807) to big for --ntasks-per-node.", 1),
    (["--cpus-per-gpu=99999999999999999999"],
     "Numeric argument (9223372036854775807) to big for --cpus-per-gpu.", 1),
    (["--mem=99999999999999999999"], "Invalid --mem specification", 255),
    (["--mem-per-cpu=99999999999999999999"], "Invalid --mem-per-cpu specification", 255),
    (["--nodes=99999999999999999999"], '"99999999999999999999" is not a valid node count', 255),
    (["--array=0-99999999999999999999"],
     "Batch job submission failed: Invalid job array specification", 1),
    (["--signal=USR1@99999999999999999999"], "Invalid --signal specification", 255),
    (["--gpus=99999999999999999999"], "Invalid generic resource (gres) specification", 1),
]


def test_bad_sbatch_options_get_slurms_message(ctl):
    before = ctl.records()
    for argv, message, code in SBATCH_CASES:
        proc = ctl.run("sbatch", *argv, "--wrap", "true")
        assert "internal error" not in proc.stderr, (argv, proc.stderr)
        assert "Traceback" not in proc.stderr, (argv, proc.stderr)
        assert f"sbatch: error: {message}" in proc.stderr, (argv, proc.stderr)
        assert (proc.returncode, proc.stdout) == (code, ""), (argv, proc.returncode, proc.stdout)
        assert ctl.alive(), argv
    assert ctl.records() == before  # nothing was stored


def test_scontrol_update_with_a_time_no_clock_holds(ctl):
    job = ctl.run("sbatch", "-H", "--parsable", "--wrap", "true").stdout.strip()
    proc = ctl.run("scontrol", "update", f"JobId={job}", "StartTime=now+99999999999999999999")
    assert proc.returncode == 1 and "internal error" not in proc.stderr
    assert proc.stderr == ("Invalid time specification: now+99999999999999999999\n"
                           "No changes specified\n")
    assert ctl.alive()


def test_a_script_over_max_script_size_is_refused(ctl, tmp_path):
    big = tmp_path / "big.sh"
    big.write_text("#!/bin/sh\n" + ("#" * 1000 + "\n") * 10_000 + "true\n")  # 10 MB
    proc = ctl.run("sbatch", str(big))
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == ("sbatch: error: Batch job submission failed: Pathname of a file, "
                           "directory or other parameter too long\n")
    # the same over the socket, for a client that skips sbatch's own check
    reply = ctl.call("submit", {"options": {}, "script": big.read_text(), "cwd": str(tmp_path),
                                "env": {}})
    assert reply["ok"] is False
    assert reply["message"] == ("Batch job submission failed: Pathname of a file, directory "
                                "or other parameter too long")
    # 4 MiB (SLURM's max_script_size) still goes
    fits = tmp_path / "fits.sh"
    fits.write_text("#!/bin/sh\n" + ("#" * 1000 + "\n") * 4000 + "true\n")
    ok = ctl.run("sbatch", "-H", "--parsable", str(fits))
    assert ok.returncode == 0, ok.stderr
    ctl.run("scancel", ok.stdout.strip())
    assert ctl.alive()


def _submit(**over: object) -> dict:
    args = {"options": {}, "script": "#!/bin/sh\ntrue\n", "cwd": "/tmp", "env": {"A": "1"}}
    args.update(over)
    return args


# (op, args, words the refusal must contain)
RPC_CASES = [
    ("submit", {"options": {"hold": True}, "script": "#!/bin/sh\n", "cwd": 5, "env": {}},
     "cwd"),
    ("submit", _submit(env={"A": "x\0y"}), "NUL"),
    ("submit", _submit(env={"A": 5}), "env.A"),
    ("submit", _submit(env={"": "x"}), "not a valid variable name"),
    ("submit", _submit(env={"A=B": "x"}), "not a valid variable name"),
    ("submit", _submit(env=["A"]), "env"),
    ("submit", _submit(script=5), "script"),
    ("submit", _submit(script_args=[1]), "script_args"),
    ("submit", _submit(options={"job_name": {"a": 1}}), "options"),
    ("submit", _submit(options={"job_name": "a\0b"}), "NUL"),
    ("submit", _submit(options={"../x": "1"}), "options"),
    ("submit", _submit(cwd="relative/dir"), "absolute"),
    ("submit", _submit(gid="0"), "gid"),
    ("submit", _submit(prio_process=10**30), "prio_process"),
    ("submit", _submit(surprise=1), "surprise"),
    ("submit", _submit(stage="x"), "stage"),
    ("submit", {"script": "#!/bin/sh\n"}, "cwd"),
    ("cancel", {"ids": 5}, "ids"),
    ("cancel", {"ids": ["1"], "signal": "x"}, "signal"),
    ("cancel", {"ids": ["1"], "signal": 10**30}, "signal"),
    ("cancel", {"ids": [None]}, "ids"),
    ("hold", {"ids": [{"a": 1}]}, "ids"),
    ("release", {"ids": ["99999999999999999999999"]}, "Invalid job id"),
    ("requeue", {"ids": "1"}, "ids"),
    ("update_job", {"ids": ["1"], "fields": 5}, "fields"),
    ("update_job", {"ids": ["1"], "fields": {"TimeLimit": 5}}, "fields"),
    ("update_node", {"nodes": 5, "state": "DRAIN"}, "nodes"),
    ("step_begin", {"job_id": 99999999999999999999999}, "job"),
    ("step_end", {"job_id": "1", "step_id": "y"}, "step_id"),
    ("stdin", {"id": "1", "data": 5}, "data"),
    ("jobs", {"ids": "1"}, "ids"),
    ("squeue", {"format": 5}, "format"),
    ("history", {"task_id": 10**30}, "task_id"),
    ("history", {"task_id": "x"}, "task_id"),
    ("read_output", {"id": "1", "offset": -1}, "offset"),
    ("acct", {"fields": "x"}, "fields"),
    ("acct", {"fields": [["JobID", "x", "s"]]}, "fields"),
    ("acct", {}, "fields is required"),
    ("history", {}, "task_id is required"),
    ("squeue", {}, "format is required"),
    ("step_end", {"job_id": "1"}, "step_id is required"),
    ("update_job", {"ids": ["1"], "fields": ["1"]}, "fields"),
    ("acct", {"fields": [], "since": float("inf")}, "since"),
    ("explain", {"id": "99999999999999999999999"}, "Invalid job id"),
    ("no_such_op", {}, "unknown request"),
    ("cancel", [], "malformed request"),
]


def test_malformed_rpc_requests_are_refused_with_the_field_named(ctl):
    before = ctl.records()
    for op, args, words in RPC_CASES:
        reply = ctl.raw(json.dumps({"op": op, "args": args}, allow_nan=True).encode())
        assert reply.get("ok") is False, (op, args, reply)
        message = str(reply.get("message") or "")
        assert "internal error" not in message, (op, args, message)
        assert words in message, (op, args, message)
        assert ctl.alive(), (op, args)
    # a cancel of an id no job can have is SLURM's "Invalid job id", not a crash
    reply = ctl.call("cancel", {"ids": ["99999999999999999999999"], "signal": 9})
    assert reply["ok"] is True and "Invalid job id specified" in reply["result"]["errors"][0]
    assert ctl.records() == before  # nothing was stored


def test_a_job_record_that_cannot_be_launched_fails_and_the_controller_lives(ctl):
    """Case 8's record, stored before submit checked its fields (an older
    version, a hand-edited store): releasing it must fail that job with a
    reason, not stop the controller at every release and every restart."""
    from fleetslurm.paths import StatePaths

    bad = ctl.run("sbatch", "-H", "--parsable", "--wrap", "true")
    assert bad.returncode == 0, bad.stderr
    job = bad.stdout.strip()
    ctl.stop()
    db = sqlite3.connect(StatePaths(ctl.home).db)
    with db:
        db.execute("UPDATE jobs SET spec = json_set(spec, '$.workdir', 5) WHERE job_id = ?",
                   (int(job),))
    db.close()
    assert ctl.run("controller", "start").returncode == 0
    released = ctl.run("scontrol", "release", job)
    assert released.returncode == 0, released.stderr
    rec = ctl.wait_state(job, {"FAILED"})
    assert rec["reason"] == "JobLaunchFailure"
    assert ctl.alive()
    # the machine was not blamed: the next job runs there
    good = ctl.run("sbatch", "--parsable", "--wrap", "true")
    assert good.returncode == 0, good.stderr
    assert ctl.wait_state(good.stdout.strip(), {"COMPLETED"})["state"] == "COMPLETED"
    nodes = ctl.run("sinfo", "-h", "-p", "debug", "-o", "%t").stdout.split()
    assert nodes == ["idle"] or nodes == ["mix"] or nodes == ["alloc"], nodes


def test_a_malformed_stored_request_fails_its_job_and_the_controller_starts(ctl):
    """A stored request the scheduler cannot compare (cpus "x") used to stop
    every controller start: now that one job fails with the reason."""
    from fleetslurm.paths import StatePaths

    bad = ctl.run("sbatch", "-H", "--parsable", "--wrap", "true").stdout.strip()
    ctl.stop()
    db = sqlite3.connect(StatePaths(ctl.home).db)
    with db:
        db.execute("UPDATE tasks SET req = json_set(req, '$.cpus', 'x') WHERE task_id = ?",
                   (int(bad),))
    db.close()
    started = ctl.run("controller", "start")
    assert started.returncode == 0, started.stderr
    assert ctl.wait_state(bad, {"FAILED"})["reason"] == "JobLaunchFailure"
    good = ctl.run("sbatch", "--parsable", "--wrap", "true").stdout.strip()
    assert ctl.wait_state(good, {"COMPLETED"})["state"] == "COMPLETED"
    log = (ctl.home / "controller.log").read_text()
    assert f"job {bad}: its stored request is malformed (cpus='x'): failed" in log


def test_export_item_without_a_name_is_skipped_as_slurm_does(ctl):
    """``--export=ALL,=x``: the real sbatch runs the job (the item is dropped);
    it used to reach the agent as a variable without a name and drain the
    machine."""
    proc = ctl.run("sbatch", "--parsable", "--export=ALL,=x,FOO=bar", "--wrap",
                   "env | grep -c '^=' ; echo FOO=$FOO")
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip()
    assert ctl.wait_state(job, {"COMPLETED", "FAILED"})["state"] == "COMPLETED"
    assert (ctl.work / f"slurm-{job}.out").read_text() == "0\nFOO=bar\n"
    assert ctl.run("sinfo", "-h", "-p", "debug", "-o", "%t").stdout.split() == ["idle"]


def _peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def test_parallel_huge_lines_are_refused_within_bounded_memory(ctl):
    """Eight clients each sending a 60 MB line at once used to take the
    controller to 556 MB: each is now refused past the line limit, and lines
    over 256 KiB are read two at a time, so the peak stays bounded."""
    import threading

    from fleetslurm.paths import StatePaths

    pid = int((ctl.home / "controller.pid").read_text().split()[0])
    before = _peak_rss_kb(pid)
    line = b'{"op":"submit","args":{"script":"' + b"x" * (60 << 20) + b'"}}\n'
    replies: list[bytes] = []

    def one() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(60)
            s.connect(str(StatePaths(ctl.home).socket))
            try:
                s.sendall(line)
            except OSError:
                pass  # refused and closed before the whole line went
            replies.append(s.recv(1 << 16))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(replies) == 8
    for raw in replies:
        reply = json.loads(raw)
        assert reply["ok"] is False and "request too large" in reply["message"]
    # two 32 MiB lines in flight at most, and their copies (556 MB before)
    assert _peak_rss_kb(pid) - before < 150 * 1024
    assert ctl.alive()

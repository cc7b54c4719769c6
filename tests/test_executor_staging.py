"""Staged files (the core feature under the Python API's fleet backend): put
into the job's directory on its machine before it runs, copied home when it
ends, kept in the job's record across a controller restart. A real agent on
this machine plays a machine WITHOUT a shared filesystem (its own workdir)."""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

import pytest
from stepping import pump, submit

from fleetslurm.config import FleetConfig, MachineConfig
from fleetslurm.ctld.inbox import Pending, Request
from fleetslurm.ctld.loop import Controller
from fleetslurm.errors import SubmitError
from fleetslurm.paths import StatePaths
from fleetslurm.transport.local import LocalTransport


def _controller(tmp_path: Path, shared: bool = False) -> Controller:
    cfg = FleetConfig(cluster_name="unit", kill_wait=1, heartbeat_interval=0.5, machines={
        "n1": MachineConfig(transport="local", cpus=2, memory_gb=2)})
    t = LocalTransport("n1", tmp_path / "node-n1")
    t.shared_fs = shared  # a machine that does not see the submit host's files
    ctl = Controller(cfg, StatePaths(tmp_path / "home"), transports={"n1": t})
    ctl.start(time.time())
    return ctl


def _pump(ctl: Controller, until, timeout: float = 30.0) -> None:
    pump(ctl, until, timeout=timeout)


def _submit(ctl: Controller, script: str, stage: dict, **options) -> int:
    return submit(ctl, time.time(), options, script=script, cwd=str(ctl.paths.home),
                  env={"PATH": os.environ["PATH"]}, stage=stage)


def _final(ctl: Controller, task_id: int) -> dict:
    _pump(ctl, lambda: ctl.store.task(task_id)["state"] not in
          ("PENDING", "RUNNING", "COMPLETING"))
    return ctl.store.task(task_id)


_COPY = """#!/bin/sh
d="${FLEETSLURM_STAGE_DIR:-%s}"
echo "dir=$FLEETSLURM_STAGE_DIR"
stat -c '%%a' "$d" "$d/in.txt"
tr a-z A-Z < "$d/in.txt" > "$d/out.txt"
"""


def test_files_go_to_the_machine_and_results_come_home(tmp_path):
    sub = tmp_path / "submit"
    sub.mkdir()
    (sub / "in.txt").write_text("hello stage\n")
    ctl = _controller(tmp_path)
    try:
        job = _submit(ctl, _COPY % sub, {"in": [str(sub / "in.txt")],
                                         "out": [str(sub / "out.txt")]})
        task = _final(ctl, job)
        assert task["state"] == "COMPLETED", ctl.store.history(job)
        assert (sub / "out.txt").read_text() == "HELLO STAGE\n"
        assert stat.S_IMODE((sub / "out.txt").stat().st_mode) == 0o600
        out = Path(task["stdout"]).read_text().splitlines()
        node_stage = f"{tmp_path}/node-n1/jobs/{task['run_key']}/stage"
        assert out == [f"dir={node_stage}", "700", "600"]
        # the machine's copy is gone once the results are home
        _pump(ctl, lambda: not os.path.exists(node_stage))
        assert not os.listdir(tmp_path / "node-n1" / "stage")
    finally:
        ctl.close()


def test_array_tasks_get_their_own_files(tmp_path):
    sub = tmp_path / "submit"
    sub.mkdir()
    for i in range(3):
        (sub / f"in_{i}.txt").write_text(f"task{i}\n")
    script = ("#!/bin/sh\nd=$FLEETSLURM_STAGE_DIR\ni=$SLURM_ARRAY_TASK_ID\n"
              "cat $d/in_$i.txt $d/in_$i.txt > $d/out_$i.txt\n")
    ctl = _controller(tmp_path)
    try:
        job = _submit(ctl, script, {"in": [str(sub / "in_%a.txt")],
                                    "out": [str(sub / "out_%a.txt")]}, array="0-2")
        for t in ctl.store.tasks_of_job(job):
            assert _final(ctl, t["task_id"])["state"] == "COMPLETED"
        for i in range(3):
            assert (sub / f"out_{i}.txt").read_text() == f"task{i}\ntask{i}\n"
    finally:
        ctl.close()


def test_a_missing_input_fails_the_job_not_the_machine(tmp_path):
    sub = tmp_path / "submit"
    sub.mkdir()
    ctl = _controller(tmp_path)
    try:
        job = _submit(ctl, "#!/bin/sh\ntrue\n", {"in": [str(sub / "gone_%a.txt")]})
        task = _final(ctl, job)
        assert task["state"] == "FAILED" and task["reason"] == "JobLaunchFailure"
        hist = " ".join(h["detail"] for h in ctl.store.history(job))
        assert f"cannot read its staged file {sub}/gone_4294967294.txt" in hist
        assert ctl.store.node("n1")["admin_state"] != "drain"
        # the machine still runs the next job
        ok = _submit(ctl, "#!/bin/sh\ntrue\n", {})
        assert _final(ctl, ok)["state"] == "COMPLETED"
    finally:
        ctl.close()


def test_an_input_that_fails_while_read_fails_the_job_not_the_machine(tmp_path):
    """Opened, then a read error in the middle of its copy (here: reading
    /proc/self/mem from offset 0 gives EIO): the file's fault, named, the job
    fails; the machine was not drained (the local transport used to report any
    OSError of the copy as "cannot write" on the machine)."""
    ctl = _controller(tmp_path)
    try:
        job = _submit(ctl, "#!/bin/sh\ntrue\n", {"in": ["/proc/self/mem"]})
        task = _final(ctl, job)
        assert task["state"] == "FAILED"
        hist = " ".join(h["detail"] for h in ctl.store.history(job))
        assert "cannot read its staged file /proc/self/mem: Input/output error" in hist
        assert ctl.store.node("n1")["admin_state"] != "drain"
        ok = _submit(ctl, "#!/bin/sh\ntrue\n", {})
        assert _final(ctl, ok)["state"] == "COMPLETED"
    finally:
        ctl.close()


def test_with_a_shared_filesystem_nothing_is_copied(tmp_path):
    sub = tmp_path / "submit"
    sub.mkdir()
    (sub / "in.txt").write_text("shared\n")
    ctl = _controller(tmp_path, shared=True)
    try:
        job = _submit(ctl, _COPY % sub, {"in": [str(sub / "in.txt")],
                                         "out": [str(sub / "out.txt")]})
        task = _final(ctl, job)
        assert task["state"] == "COMPLETED"
        lines = Path(task["stdout"]).read_text().splitlines()
        assert lines[0] == "dir="  # unset: the job used the files in place
        assert (sub / "out.txt").read_text() == "SHARED\n"
        assert not (tmp_path / "node-n1" / "stage").exists()
    finally:
        ctl.close()


def test_a_restarted_controller_still_brings_the_results_home(tmp_path):
    sub = tmp_path / "submit"
    sub.mkdir()
    (sub / "in.txt").write_text("restart\n")
    gate = sub / "go"
    script = (f"#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.1; done\n"
              'tr a-z A-Z < "$FLEETSLURM_STAGE_DIR/in.txt" > "$FLEETSLURM_STAGE_DIR/out.txt"\n')
    ctl = _controller(tmp_path)
    job = _submit(ctl, script, {"in": [str(sub / "in.txt")], "out": [str(sub / "out.txt")]})
    _pump(ctl, lambda: any(s["pid"] for s in ctl.store.steps_of(job)))
    ctl.close()  # the controller goes away; the job keeps running on its machine
    gate.write_text("")
    time.sleep(1.0)
    assert not (sub / "out.txt").exists()
    ctl = _controller(tmp_path)
    try:
        assert _final(ctl, job)["state"] == "COMPLETED"
        assert (sub / "out.txt").read_text() == "RESTART\n"
    finally:
        ctl.close()


def test_bad_stage_requests_are_refused(tmp_path):
    ctl = _controller(tmp_path)
    try:
        with pytest.raises(SubmitError, match="is not an absolute file path"):
            _submit(ctl, "#!/bin/sh\ntrue\n", {"in": ["relative.txt"]})
        with pytest.raises(SubmitError, match="two staged files are named 'a'"):
            _submit(ctl, "#!/bin/sh\ntrue\n", {"in": ["/x/a"], "out": ["/y/a"]})
        with pytest.raises(SubmitError, match="must be a list of paths"):
            _submit(ctl, "#!/bin/sh\ntrue\n", {"in": "/x/a"})
        assert ctl.store.tasks() == []  # nothing half-written
    finally:
        ctl.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act for another user")
def test_another_users_staged_files_are_read_and_written_as_theirs(tmp_path):
    """A root controller reads a user's inputs only where that user could, and
    hands the results to them. (Running such a job end to end on a machine
    without a shared filesystem needs the agent to let the job create its
    output in the job directory, which it does not yet.)"""
    import pwd

    from fleetslurm.ctld.staging import read_as
    from fleetslurm.paths import write_private

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    uid = nobody.pw_uid
    sub = tmp_path / "submit"
    sub.mkdir()
    theirs = sub / "in.txt"
    theirs.write_text("theirs\n")
    os.chown(theirs, uid, nobody.pw_gid)
    secret = tmp_path / "secret.txt"
    secret.write_text("root only\n")
    (sub / "link.txt").symlink_to(secret)
    assert read_as(str(theirs), uid) == b"theirs\n"
    with pytest.raises(PermissionError, match="not a regular file of the job's owner"):
        read_as(str(secret), uid)
    with pytest.raises(OSError):  # O_NOFOLLOW: ELOOP
        read_as(str(sub / "link.txt"), uid)
    assert read_as(str(secret), os.getuid()) == b"root only\n"  # the controller's own user
    # results are written as the user: in a directory of theirs...
    import shutil
    import tempfile

    outdir = Path(tempfile.mkdtemp(prefix="fsl-out-", dir="/tmp"))
    try:
        os.chown(outdir, uid, nobody.pw_gid)
        write_private(str(outdir / "out.txt"), b"result", uid)
        st = (outdir / "out.txt").stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, nobody.pw_gid, 0o600)
        assert (outdir / "out.txt").read_bytes() == b"result"
    finally:
        shutil.rmtree(outdir)
    # ...never as root where they may not write (here: root's private tmp_path)
    with pytest.raises(PermissionError, match="Permission denied: ") as denied:
        write_private(str(sub / "out.txt"), b"result", uid)
    # named: the directory on the way that they may not enter (which one
    # depends on how deep pytest's tmp_path is: one level more under xdist)
    named = re.search(r"Permission denied: '([^']+)'", str(denied.value))
    assert named and (str(tmp_path) + "/").startswith(named.group(1) + "/"), denied.value
    assert not (sub / "out.txt").exists()
    # a directory that is not theirs is refused at submit
    ctl = _controller(tmp_path)
    try:
        p = Pending("submit", {"options": {}, "script": "#!/bin/sh\ntrue\n", "script_args": [],
                                "env": {}, "cwd": str(sub), "script_name": "s",
                                "stage": {"in": [str(secret)]}}, uid)
        ctl.inbox.put(Request(p))
        ctl.step(time.time())
        assert isinstance(p.error, SubmitError)
        assert f"stage.in: {secret}: its directory must exist and belong to you" == str(p.error)
        assert ctl.store.tasks() == []
    finally:
        ctl.close()

"""The controller driven by step(now) in-process, the store, the config lookup,
and the socket's peer-uid check, with real SQLite, a real agent subprocess and
a real Unix socket."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from pathlib import Path

import pytest
from second_user import other_user  # noqa: F401  (fixture)
from stepping import pump, submit

from fleetslurm import errors
from fleetslurm.config import FleetConfig, MachineConfig, load_config
from fleetslurm.ctld.loop import Controller
from fleetslurm.paths import StatePaths, find_config
from fleetslurm.store import Store


def _controller(tmp_path: Path) -> Controller:
    cfg = FleetConfig(cluster_name="unit", kill_wait=1, heartbeat_interval=0.5, machines={
        "n1": MachineConfig(transport="local", cpus=2, memory_gb=2)})
    ctl = Controller(cfg, StatePaths(tmp_path / "home"))
    ctl.start(time.time())
    return ctl


def _pump(ctl: Controller, until, timeout: float = 20.0) -> None:
    pump(ctl, until, timeout=timeout)


def _submit(ctl: Controller, uid: int, **options) -> int:
    return submit(ctl, time.time(), options, script="#!/bin/sh\nsleep 30\n",
                  cwd=str(ctl.paths.home), uid=uid, env={"PATH": os.environ["PATH"]})


def _request(ctl: Controller, op: str, uid: int, **args):
    from fleetslurm.ctld.inbox import Pending, Request

    p = Pending(op, args, uid)
    ctl.inbox.put(Request(p))
    ctl.step(time.time())
    if p.error:
        raise p.error
    return p.result


def test_only_the_owner_or_root_may_touch_a_job(tmp_path, other_user):
    ctl = _controller(tmp_path)
    try:
        me = os.getuid()
        job = _submit(ctl, me, hold=True)
        other = other_user.pw_uid  # a real second user
        reply = _request(ctl, "cancel", other, ids=[str(job)])
        assert reply["errors"] == [f"Kill job error on job id {job}: Access/permission denied"]
        for op in ("hold", "release", "requeue"):
            with pytest.raises(errors.AccessDenied, match=f"Access/permission denied for job {job}"):
                _request(ctl, op, other, ids=[str(job)])
        with pytest.raises(errors.AccessDenied):
            _request(ctl, "update_job", other, ids=[str(job)], fields={"TimeLimit": "5"})
        assert ctl.store.task(job)["state"] == "PENDING"
        # the owner can
        _request(ctl, "cancel", me, ids=[str(job)])
        assert ctl.store.task(job)["state"] == "CANCELLED"
        # and root can cancel anybody's job
        job2 = _submit(ctl, other, hold=True)
        _request(ctl, "cancel", 0, ids=[str(job2)])
        assert ctl.store.task(job2)["cancelled_by"] == 0
    finally:
        ctl.close()


def test_step_runs_a_job_to_completion_and_records_usage(tmp_path):
    ctl = _controller(tmp_path)
    try:
        job = _submit(ctl, os.getuid(), time="1")
        _pump(ctl, lambda: ctl.store.task(job)["state"] == "RUNNING")
        assert ctl.store.history(job)[-1]["event"] == "start"
        _request(ctl, "cancel", os.getuid(), ids=[str(job)])
        _pump(ctl, lambda: ctl.store.task(job)["state"] == "CANCELLED")
        step = ctl.store.steps_of(job)[0]
        assert step["state"] == "CANCELLED" and step["max_rss_kb"] > 0
        assert ctl.store.count_events(job, "start") == 1
        ctl.sched.validate()
    finally:
        ctl.close()


def test_refused_submission_leaves_nothing(tmp_path):
    ctl = _controller(tmp_path)
    try:
        with pytest.raises(errors.SubmitError):
            _submit(ctl, os.getuid(), cpus_per_task="64")
        with pytest.raises(errors.UsageError):
            _submit(ctl, os.getuid(), time="nonsense")
        assert ctl.store.tasks() == []
        assert _submit(ctl, os.getuid(), hold=True) == 1
    finally:
        ctl.close()


def test_store_is_wal_and_migrated(tmp_path):
    s = Store(tmp_path / "state.db")
    s.close()
    db = sqlite3.connect(tmp_path / "state.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    from fleetslurm.store import _MIGRATIONS

    assert db.execute("PRAGMA user_version").fetchone()[0] == len(_MIGRATIONS)
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with pytest.raises(errors.StoreError, match="newer fleetslurm"):
        Store(tmp_path / "state.db")


def test_store_transaction_rolls_back(tmp_path):
    s = Store(":memory:")
    with pytest.raises(RuntimeError):
        with s.transaction():
            s.add_job(1, 0, "root", 1.0, {}, "#!/bin/sh", None)
            raise RuntimeError("boom")
    assert s.job(1) is None


def test_config_lookup_order(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "fleet_config.json").write_text("{}")
    cwd = tmp_path / "cwd"
    (cwd / "config").mkdir(parents=True)
    (cwd / "config" / "fleet_config.json").write_text("{}")
    env = {"FLEETSLURM_HOME": str(home)}
    assert find_config(None, env, cwd) == cwd / "config" / "fleet_config.json"
    assert find_config(None, {**env, "FLEETSLURM_CONFIG": "/x/y.json"}, cwd) == Path("/x/y.json")
    assert find_config("/a/b.json", {**env, "FLEETSLURM_CONFIG": "/x/y.json"}, cwd) == \
        Path("/a/b.json")
    assert find_config(None, env, tmp_path) == home / "fleet_config.json"
    assert find_config(None, {"FLEETSLURM_HOME": str(tmp_path / "none")}, tmp_path) is None


def test_template_config_is_valid():
    root = Path(__file__).resolve().parent.parent
    cfg = load_config(root / "config" / "fleet_config.json.template")
    assert set(cfg.machines) == {"node01", "gpu01"}
    assert cfg.default_partition == "debug"
    assert cfg.machines["gpu01"].gpu_count == 2


def test_socket_learns_the_callers_uid(tmp_path):
    """SO_PEERCRED: a client running as another user is seen as that user."""
    from fleetslurm.rpc import Server

    if os.getuid() != 0:
        pytest.skip("needs root to run a client as another user")
    import tempfile

    # pytest's tmp_path is private to root: use a directory "nobody" can reach
    d = Path(tempfile.mkdtemp(prefix="fleetslurm-peercred-")) / "sock"
    os.chmod(d.parent, 0o755)
    seen = []
    server = Server(d / "ctl.sock", lambda op, args, uid: seen.append(uid) or uid)
    server.start()
    os.chmod(d, 0o755)
    os.chmod(d / "ctl.sock", 0o777)
    # a forked child turned into "nobody" (the interpreter under /root is not
    # executable for nobody, so no new process)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setuid(65534)
            c = socket.socket(socket.AF_UNIX)
            c.connect(str(d / "ctl.sock"))
            c.sendall(b'{"op":"ping"}\n')
            os.write(w, c.makefile("rb").readline())
        finally:
            os._exit(0)
    os.close(w)
    line = os.fdopen(r, "rb").read()
    os.waitpid(pid, 0)
    server.close()
    assert json.loads(line)["result"] == 65534
    assert seen == [65534]


def test_socket_is_private(tmp_path):
    from fleetslurm.rpc import Server

    server = Server(tmp_path / "s" / "ctl.sock", lambda *a: None)
    try:
        assert (tmp_path / "s").stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "s" / "ctl.sock").stat().st_mode & 0o077 == 0
    finally:
        server.close()


def test_negative_nice_needs_root(tmp_path, other_user):
    ctl = _controller(tmp_path)
    user = other_user.pw_uid
    try:
        with pytest.raises(errors.SubmitError, match="Access/permission denied"):
            _submit(ctl, user, nice="-10")
        job = _submit(ctl, user, nice="5", hold=True)
        with pytest.raises(errors.AccessDenied):
            _request(ctl, "update_job", user, ids=[str(job)], fields={"Nice": "-5"})
        _request(ctl, "update_job", 0, ids=[str(job)], fields={"Nice": "-5"})
        assert ctl.store.task(job)["req"]["nice"] == -5
        assert _submit(ctl, 0, nice="-10", hold=True) > job
    finally:
        ctl.close()


def test_sacct_window_counts_whole_seconds(tmp_path):
    """-E names a second: a job submitted during it is inside the window."""
    ctl = _controller(tmp_path)
    try:
        job = _submit(ctl, os.getuid(), hold=True)
        submitted = ctl.store.task(job)["submit_time"]
        got = ctl.queries.answer("jobs", {"until": float(int(submitted))}, os.getuid())
        assert [r["job_id"] for r in got] == [job]
        before = ctl.queries.answer("jobs", {"until": float(int(submitted) - 1)}, os.getuid())
        assert before == []
    finally:
        ctl.close()


def test_a_message_whose_handling_fails_is_undone_and_the_loop_goes_on(tmp_path, monkeypatch,
                                                                       capsys):
    """A bug in handling one agent message (here: a handler that writes, queues
    a scheduler event and a message, then raises) is logged and undone; the
    controller keeps serving, and the next job runs."""
    from fleetslurm.ctld import agent_events
    from fleetslurm.ctld.inbox import Wake
    from fleetslurm.scheduler import JobHeld

    ctl = _controller(tmp_path)
    try:
        job = _submit(ctl, os.getuid(), hold=True)

        def broken(ctx, item, now):
            ctx.store.update_task(job, reason="half-written")
            ctx.emit(JobHeld(job))
            ctx.send("n1", {"op": "ping"})
            raise KeyError("a bug")

        monkeypatch.setitem(agent_events._HANDLERS, Wake, broken)
        ctl.inbox.put(Wake())
        ctl.step(time.time())
        err = capsys.readouterr().err
        assert "internal error: Wake() was dropped, nothing it changed is kept" in err
        assert "KeyError: 'a bug'" in err
        assert ctl.store.task(job)["reason"] != "half-written"
        assert (ctl._events, ctl._outbox) == ([], [])
        monkeypatch.undo()
        other = _submit(ctl, os.getuid(), time="1")
        _pump(ctl, lambda: ctl.store.task(other)["state"] == "RUNNING")
    finally:
        ctl.close()

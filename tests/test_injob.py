"""The agent's side of SLURM's commands inside jobs (node/agent/injob.py):
what the archive carries for them, the shims, and each job's socket: only
the job's user may connect (its mode, and SO_PEERCRED), and requests go to
the controller as ``rpc`` events naming the job, answers come back."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from fleetslurm import shims
from fleetslurm.node import artifact
from fleetslurm.node.agent import injob, protocol

from second_user import fork_as, other_user, shared_tmp  # noqa: F401  (fixtures)


def test_the_agents_commands_are_fleetslurms():
    assert injob.COMMANDS == shims.COMMANDS and injob.MARKER == shims.MARKER


def test_every_client_module_in_the_archive_imports_from_it_alone(tmp_path: Path):
    """With only the archive on sys.path (-I -S: no site-packages, where
    fleetslurm and its dependencies are installed here), each module the
    archive carries for the commands imports: all standard library."""
    pyz = tmp_path / "a.pyz"
    pyz.write_bytes(artifact.agent_archive())
    names = [n for n in zipfile.ZipFile(pyz).namelist() if n.startswith("fleetslurm/")]
    assert "fleetslurm/cli/srun_step.py" in names and "fleetslurm/config.py" not in names
    mods = [n[:-3].replace("/", ".").removesuffix(".__init__") for n in names]
    code = ("import importlib, sys\nsys.path.insert(0, sys.argv[1])\n"
            "for m in sys.argv[2:]:\n    importlib.import_module(m)\n"
            "import fleetslurm; print(fleetslurm.__file__)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(pyz), *mods],
                          capture_output=True, text=True, cwd=str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{pyz}/fleetslurm/__init__.py"


def test_the_archive_is_still_reproducible_from_its_sources():
    assert artifact.build_archive() == artifact.build_archive()


class _Agent:
    """The agent archive run as a subprocess in ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        data = artifact.agent_archive()
        workdir.mkdir(parents=True, exist_ok=True)
        pyz = workdir / artifact.agent_file_name(data)
        pyz.write_bytes(data)
        pyz.chmod(0o600)  # as the transports upload it
        self.pyz = pyz
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        self.proc = subprocess.Popen([sys.executable, "-I", str(pyz), "--workdir", str(workdir)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.send(protocol.hello([]))
        assert self.next("hello")

    def send(self, msg: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()

    def next(self, ev: str, timeout: float = 20) -> dict:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            assert line, "the agent ended"
            msg = json.loads(line)
            if msg["ev"] == ev:
                return msg
        raise AssertionError(f"no {ev}")

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(timeout=20)


def _spec(out: Path, user: "str | None" = None) -> dict:
    spec = {"script": "#!/bin/sh\necho \"$PATH|$FLEETSLURM_CONTROLLER\"\nsleep 60\n",
            "argv": [], "env": {"PATH": "/usr/bin:/bin", "SLURM_JOB_ID": "7",
                                "FLEETSLURM_CONTROLLER": "ssh://head"},
            "cwd": "/", "stdout": str(out), "injob": True}
    if user:
        spec["user"] = user
    return spec


def _ask(path: str, request: dict) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(path)
        s.sendall((json.dumps(request) + "\n").encode())
        return json.loads(s.makefile("rb").readline())


def test_a_jobs_socket_is_its_users_alone_and_carries_its_requests(shared_tmp, other_user):
    """A root agent: job A runs as root, job B as another user. Each finds
    the agent's shims first on PATH and its own socket named in
    FLEETSLURM_CONTROLLER (whatever the submitter exported). B's user
    cannot open A's socket (its mode); root cannot speak through B's
    (SO_PEERCRED, checked against B's user); B's user can, and the request
    reaches the controller as an ``rpc`` event naming B, the answer comes back."""
    work = shared_tmp / "w"
    agent = _Agent(work)
    try:
        out_a, out_b = shared_tmp / "a.out", shared_tmp / "b.out"
        (shared_tmp / "b.out").touch()
        os.chown(out_b, other_user.pw_uid, other_user.pw_gid)
        agent.send(protocol.launch("7.0.a", _spec(out_a)))
        agent.next("started")
        agent.send(protocol.launch("8.0.b", _spec(out_b, other_user.pw_name)))
        agent.next("started")
        deadline = time.monotonic() + 20
        while not all(p.exists() and p.read_text().endswith("\n") for p in (out_a, out_b)) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        bin_dir = work / "bin"
        sock_a, sock_b = str(work / "injob" / "7.0.a"), str(work / "injob" / "8.0.b")
        assert out_a.read_text() == f"{bin_dir}:/usr/bin:/bin|{sock_a}\n"
        assert out_b.read_text() == f"{bin_dir}:/usr/bin:/bin|{sock_b}\n"
        for name in shims.COMMANDS:  # the shims: executable by all, the archive readable
            assert os.stat(bin_dir / name).st_mode & 0o777 == 0o755
            assert shims.MARKER in (bin_dir / name).read_text().splitlines()[1]
        assert agent.pyz.stat().st_mode & 0o777 == 0o644
        st = os.stat(sock_b)
        assert stat.S_ISSOCK(st.st_mode) and st.st_mode & 0o777 == 0o600
        assert st.st_uid == other_user.pw_uid
        assert os.stat(work / "injob").st_mode & 0o777 == 0o711
        # the commands compiled beside the archive (zipimport compiles on every
        # call), readable by every user; the shims use them once they are whole
        lib = work / "clients" / agent.pyz.name[len("agent-"):-len(".pyz")]
        deadline = time.monotonic() + 60
        while not lib.is_dir():
            assert time.monotonic() < deadline, "the commands were not compiled"
            time.sleep(0.1)
        tag = sys.implementation.cache_tag
        assert (lib / "fleetslurm" / "cli" / "__pycache__" / f"srun_step.{tag}.pyc").is_file()
        assert os.stat(lib / "fleetslurm" / "cli" / "srun_step.py").st_mode & 0o777 == 0o644
        assert os.stat(lib / "fleetslurm" / "cli").st_mode & 0o777 == 0o755
        assert sorted(p.name for p in (work / "clients").iterdir()) == [lib.name]
        version = subprocess.run([str(bin_dir / "squeue"), "--version"], capture_output=True,
                                 text=True, env={"PATH": "/usr/bin:/bin"})
        assert version.stdout == "slurm 22.05.8 (fleetslurm)\n", version.stderr

        # root speaking through B's socket: refused by its peer check
        refused = _ask(sock_b, {"op": "cancel", "args": {"ids": ["7"]}})
        assert refused["ok"] is False and refused["error"] == "AccessDenied", refused
        assert f"belongs to job 8.0.b's user (uid {other_user.pw_uid}), not to uid 0" in \
            refused["message"]
        # as the commands' own client sees it: AccessDenied, saying why
        from fleetslurm.errors import AccessDenied
        from fleetslurm.rpc import Client

        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.connect(sock_b)
        with Client(raw) as c, pytest.raises(AccessDenied, match="belongs to job 8.0.b's user"):
            c.call("cancel", ids=["7"])

        # B's user: A's socket is closed to it; B's own carries a request
        r, w = os.pipe()

        def as_user() -> None:
            os.close(r)
            try:
                _ask(sock_a, {"op": "cancel", "args": {"ids": ["8"]}})
                said = "A open"
            except PermissionError:
                said = "A denied"
            said += "|" + json.dumps(_ask(sock_b, {"op": "jobs", "args": {"ids": ["8"]}}))
            os.write(w, said.encode())

        pid = fork_as(other_user, as_user)
        os.close(w)
        rpc = agent.next("rpc")
        assert rpc == protocol.ev_rpc("8.0.b", rpc["conn"], "jobs", {"ids": ["8"]})
        agent.send(protocol.rpc_reply(rpc["conn"], {"ok": True, "result": ["from the ctld"]}))
        os.waitpid(pid, 0)
        with os.fdopen(r) as f:
            said = f.read()
        assert said == 'A denied|{"ok": true, "result": ["from the ctld"]}', said

        # the job's end closes its socket
        agent.send(protocol.cancel("8.0.b", 9))
        agent.next("ended")
        assert not os.path.exists(sock_b) and os.path.exists(sock_a)
        agent.send(protocol.cancel("7.0.a", 9))
        agent.next("ended")
    finally:
        agent.close()


def test_a_new_agent_listens_again_for_a_running_job(tmp_path: Path):
    """The agent restarts (its SSH link dropped) while the job runs: the
    next one opens the job's socket again, so its commands keep working."""
    work = tmp_path / "w"
    out = tmp_path / "out"
    agent = _Agent(work)
    agent.send(protocol.launch("9.0.c", _spec(out)))
    agent.next("started")
    agent.close()
    sock = str(work / "injob" / "9.0.c")
    agent = _Agent(work)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(sock)
            s.sendall(b'{"op": "ping", "args": {}}\n')
            rpc = agent.next("rpc")
            assert (rpc["key"], rpc["op"]) == ("9.0.c", "ping")
        agent.send(protocol.cancel("9.0.c", 9))
        agent.next("ended")
    finally:
        agent.close()


# -- the controller's side (ctld/injob.py), with fake machines ------------------------
def test_the_controller_answers_a_run_as_its_jobs_owner_and_only_from_its_machine(tmp_path):
    """A request from inside a job is answered as that job's owner, known
    from the run the controller launched on that machine: another user's job
    cannot be cancelled through it; the same run key from another machine,
    or a key of no running job, gets nothing but a refusal."""
    import pwd

    from stepping import pump, submit

    from fleetslurm.config import FleetConfig, MachineConfig
    from fleetslurm.ctld.loop import Controller
    from fleetslurm.paths import StatePaths
    from fleetslurm.transport.fake import FakeTransport

    nobody = pwd.getpwnam("nobody")
    cfg = FleetConfig(cluster_name="ij", machines={
        n: MachineConfig(hostname=f"192.0.2.{i}", cpus=1, memory_gb=1)
        for i, n in enumerate(("m1", "m2"), 1)})
    # root agents: they run each job as its own user (and so give it commands)
    fakes = {n: FakeTransport(n, auto_end=False, facts={"uid": 0}) for n in ("m1", "m2")}
    ctl = Controller(cfg, StatePaths(tmp_path / "home"), transports=fakes)
    clock = [time.time()]
    try:
        ctl.start(clock[0])
        pump(ctl, lambda: all(ctl.sched.node_state(n) == "idle" for n in fakes), clock, 0.1)
        mine = submit(ctl, clock[0], {"nodelist": "m2"}, script="#!/bin/sh\n", cwd="/")
        theirs = submit(ctl, clock[0], {"nodelist": "m1"}, script="#!/bin/sh\n", cwd="/",
                        uid=nobody.pw_uid)
        pump(ctl, lambda: all(ctl.store.task(j)["state"] == "RUNNING" for j in (mine, theirs)),
             clock, 0.1)
        launch = next(r for r in fakes["m1"].requests if r.get("op") == "launch")
        assert launch["spec"]["injob"] is True
        key = ctl.store.task(theirs)["run_key"]

        def ask(node: str, run_key: str, op: str, args: dict, conn: int) -> dict:
            fakes[node].push(protocol.ev_rpc(run_key, conn, op, args))

            def replied():
                return next((r for r in fakes[node].requests
                             if r.get("op") == "rpc_reply" and r["conn"] == conn), None)
            pump(ctl, replied, clock, 0.1)
            return replied()["reply"]

        denied = ask("m1", key, "cancel", {"ids": [str(mine)]}, 1)
        assert denied["ok"] is True and denied["result"]["failed"], denied
        assert denied["result"]["errors"] == [
            f"Kill job error on job id {mine}: Access/permission denied"], denied
        assert ctl.store.task(mine)["state"] == "RUNNING"
        shown = ask("m1", key, "jobs", {"ids": [str(theirs)]}, 2)
        assert shown["ok"] and shown["result"][0]["user"] == "nobody", shown
        for node, run_key, conn in (("m2", key, 3), ("m1", "99.0.nope", 4)):
            refused = ask(node, run_key, "cancel", {"ids": [str(theirs)]}, conn)
            assert refused == {"ok": False, "error": "AccessDenied", "message":
                               f"run {run_key} is not a job running on {node}: the controller "
                               "answers commands inside a job only while that job runs "
                               "there"}, refused
        assert ctl.store.task(theirs)["state"] == "RUNNING"
        # its own job, it may cancel
        own = ask("m1", key, "cancel", {"ids": [str(theirs)]}, 5)
        assert own["ok"] and not own["result"]["failed"], own
    finally:
        ctl.close()


def test_a_workdir_too_long_for_a_socket_path_gets_its_sockets_under_tmp(tmp_path: Path):
    """AF_UNIX takes 107 bytes of path: a deep workdir's job sockets go to a
    directory of the agent's own under /tmp (0711), and still work."""
    import select

    work = tmp_path / ("d" * 60) / ("e" * 60)
    work.mkdir(parents=True)
    archive = work / "agent-000000000000.pyz"
    archive.write_bytes(b"")
    events: list = []
    ij = injob.InJob(str(work), select.poll(), events.append, str(archive), sys.executable)
    path = ij.open_job("12.0.x", None, None)
    try:
        assert path is not None and path.startswith(f"/tmp/fleetslurm-injob-{os.geteuid()}-")
        assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o711
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert os.path.isfile(work / "bin" / "srun")
    finally:
        ij.close_job("12.0.x")
    assert not os.path.exists(path)


def test_a_shim_runs_the_command_from_the_archive_whatever_the_paths(tmp_path: Path):
    """A workdir with quotes and ``$`` in its name, a Python whose path a
    shebang line cannot hold (a space, a ``$``): the shim still runs the
    command from the workdir's archive, with nothing but /usr/bin:/bin."""
    work = tmp_path / "w 'a\"$b\\"
    work.mkdir()
    data = artifact.agent_archive()
    (work / artifact.agent_file_name(data)).write_bytes(data)
    py_dir = tmp_path / "sp ace"
    py_dir.mkdir()
    python = py_dir / "py$x"
    python.symlink_to(os.path.realpath(sys.executable))
    shim = tmp_path / "squeue"
    shim.write_text(injob.shim_text("squeue", str(python), str(work)))
    shim.chmod(0o755)
    proc = subprocess.run([str(shim), "--version"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "slurm 22.05.8 (fleetslurm)\n", "")
    gone = tmp_path / "gone"
    shim.write_text(injob.shim_text("squeue", str(python), str(gone)))
    proc = subprocess.run([str(shim)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path))
    assert (proc.returncode, proc.stderr) == (1, (
        f"squeue: error: fleetslurm's agent archive is gone from {gone}: the controller "
        "puts it back when it next connects\n"))


def test_commands_inside_jobs_only_where_a_job_runs_as_its_owner() -> None:
    """An agent that is not root runs every user's job as its own account:
    their sockets would then be open to each other's jobs, which could act
    as each other's owners through them. Such jobs get no in-job commands;
    the controller's user's own jobs, and every job on a root agent, do."""
    import os
    from types import SimpleNamespace

    from fleetslurm.ctld.launch import _runs_as_owner

    def ctx(agent_uid):  # type: ignore[no-untyped-def]
        return SimpleNamespace(links={"m1": SimpleNamespace(facts={"uid": agent_uid})})

    mine, theirs = {"uid": os.getuid()}, {"uid": os.getuid() + 4242}
    assert _runs_as_owner(ctx(1000), "m1", mine)
    assert not _runs_as_owner(ctx(1000), "m1", theirs)
    assert _runs_as_owner(ctx(0), "m1", theirs)
    assert not _runs_as_owner(SimpleNamespace(links={}), "m1", theirs)


def test_many_requests_from_jobs_are_answered_by_a_few_threads(tmp_path):
    """Thirty ``wait`` requests from inside a job (held by the loop until the
    job ends) and a hundred queries: every query is answered while the waits
    are held, the waits when the job ends, and the controller never runs
    more than its pool's threads for them (it took one thread each)."""
    import threading

    from stepping import pump, submit

    from fleetslurm.config import FleetConfig, MachineConfig
    from fleetslurm.ctld.injob import POOL_WORKERS
    from fleetslurm.ctld.loop import Controller
    from fleetslurm.paths import StatePaths
    from fleetslurm.transport.fake import FakeTransport

    cfg = FleetConfig(cluster_name="ij", machines={
        "m1": MachineConfig(hostname="192.0.2.1", cpus=1, memory_gb=1)})
    fake = FakeTransport("m1", auto_end=False, facts={"uid": 0})
    ctl = Controller(cfg, StatePaths(tmp_path / "home"), transports={"m1": fake})
    clock = [time.time()]
    try:
        ctl.start(clock[0])
        pump(ctl, lambda: ctl.sched.node_state("m1") == "idle", clock, 0.1)
        job = submit(ctl, clock[0], {}, script="#!/bin/sh\n", cwd="/")
        pump(ctl, lambda: ctl.store.task(job)["state"] == "RUNNING", clock, 0.1)
        key = ctl.store.task(job)["run_key"]
        before = threading.active_count()
        most = [before]

        def replies() -> dict:
            most[0] = max(most[0], threading.active_count())
            return {r["conn"]: r["reply"] for r in fake.requests if r.get("op") == "rpc_reply"}

        for conn in range(1, 31):
            fake.push(protocol.ev_rpc(key, conn, "wait", {"ids": [job], "timeout": 25}))
        for conn in range(31, 131):
            fake.push(protocol.ev_rpc(key, conn, "jobs", {"ids": [str(job)]}))
        pump(ctl, lambda: all(c in replies() for c in range(31, 131)), clock, 0.01)
        got = replies()
        assert all(got[c]["ok"] and got[c]["result"][0]["job_id"] == job
                   for c in range(31, 131)), got
        assert not any(c in got for c in range(1, 31))  # held by the loop, not by threads
        fake.end(key)
        pump(ctl, lambda: all(c in replies() for c in range(1, 31)), clock, 0.01)
        got = replies()
        assert all(got[c] == {"ok": True, "result": {"done": True}} for c in range(1, 31)), got
        assert len(fake.requests) == len({id(r) for r in fake.requests})
        assert sum(1 for r in fake.requests if r.get("op") == "rpc_reply") == 130  # once each
        assert most[0] <= before + POOL_WORKERS, (before, most[0])
    finally:
        ctl.close()


def _job_socket(agent: "_Agent", work: Path, key: str) -> str:
    out = work / f"{key}.out"
    agent.send(protocol.launch(key, _spec(out)))
    agent.next("started")
    path = str(work / "injob" / key)
    deadline = time.monotonic() + 20
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "no socket"
        time.sleep(0.05)
    return path


def test_an_oversize_request_from_a_job_is_refused_and_the_agent_goes_on(tmp_path: Path):
    """A request line over the controller's own limit (MAX_LINE, what a 4 MiB
    script may take JSON-escaped, with its environment) gets the socket's
    error, as the head's socket says it; the agent serves the next one."""
    from fleetslurm.rpc import Server

    assert (injob.MAX_LINE, injob.SMALL_LINE) == (Server.MAX_LINE, Server.SMALL_LINE)
    work = tmp_path / "w"
    agent = _Agent(work)
    try:
        path = _job_socket(agent, work, "7.0.a")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(60)
            s.connect(path)
            s.sendall(b'{"op":"jobs","args":{"ids":["' + b"7" * injob.MAX_LINE)
            reply = json.loads(s.makefile("rb").readline())
        assert reply == {"ok": False, "error": "ControllerError", "message":
                         f"request too large: over {injob.MAX_LINE} bytes (a batch script "
                         "may have at most 4 MiB)"}, reply
        import threading

        got: list = []
        asker = threading.Thread(target=lambda: got.append(
            _ask(path, {"op": "jobs", "args": {"ids": ["7"]}})))
        asker.start()
        rpc = agent.next("rpc")
        assert rpc["args"] == {"ids": ["7"]}
        agent.send(protocol.rpc_reply(rpc["conn"], {"ok": True, "result": ["still here"]}))
        asker.join(20)
        assert got == [{"ok": True, "result": ["still here"]}]
        assert agent.proc.poll() is None
    finally:
        agent.send(protocol.cancel("7.0.a", 9))
        agent.close()


def test_one_big_request_at_a_time_per_job(tmp_path: Path):
    """While one connection of a job is part-way through a request over
    SMALL_LINE, another of its connections is read no further than SMALL_LINE
    (its writer waits: the agent does not hold 16 big requests of a job);
    once the first request is answered, the second is read whole; both reach
    the controller intact. Another job's big request is not held up."""
    work = tmp_path / "w"
    agent = _Agent(work)
    big = 4 << 20
    try:
        path = _job_socket(agent, work, "7.0.a")
        other = _job_socket(agent, work, "8.0.b")
        first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        first.connect(path)
        first.sendall(b'{"op":"jobs","args":{"ids":["' + b"1" * (1 << 20))
        time.sleep(0.5)  # (the agent reads it: the job's big slot is taken)
        second = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        second.connect(path)
        second.setblocking(False)
        data = b'{"op":"jobs","args":{"ids":["' + b"2" * big + b'"]}}\n'
        sent = 0
        deadline = time.monotonic() + 2  # what it can write before it blocks
        while time.monotonic() < deadline:
            try:
                sent += second.send(data[sent:sent + 65536])
            except BlockingIOError:
                time.sleep(0.05)
        assert sent < injob.SMALL_LINE + (1 << 20), sent  # (socket buffers: some 200 KiB)
        # another job's big request goes through meanwhile
        third = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        third.connect(other)
        third.sendall(b'{"op":"jobs","args":{"ids":["' + b"3" * big + b'"]}}\n')
        rpc = agent.next("rpc")
        assert rpc["key"] == "8.0.b" and rpc["args"]["ids"] == ["3" * big]
        first.sendall(b'"]}}\n')
        rpc = agent.next("rpc")
        assert rpc["key"] == "7.0.a" and rpc["args"]["ids"] == ["1" * (1 << 20)]
        # with the controller, the first still holds the job's slot: the second waits
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            try:
                sent += second.send(data[sent:sent + 65536])
            except BlockingIOError:
                time.sleep(0.05)
        assert sent < injob.SMALL_LINE + (1 << 20), sent
        agent.send(protocol.rpc_reply(rpc["conn"], {"ok": True, "result": []}))
        assert json.loads(first.makefile("rb").readline()) == {"ok": True, "result": []}
        second.setblocking(True)
        second.sendall(data[sent:])
        rpc = agent.next("rpc")
        assert rpc["key"] == "7.0.a" and rpc["args"]["ids"] == ["2" * big]
        for s in (first, second, third):
            s.close()
        assert agent.proc.poll() is None
    finally:
        for key in ("7.0.a", "8.0.b"):
            agent.send(protocol.cancel(key, 9))
        agent.close()

"""The node agent package (``fleetslurm/node/agent/``) and the archive it is
shipped as: standard library only, reproducible, runnable on its own."""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetslurm.node import artifact
from fleetslurm.node.agent import protocol

AGENT_DIR = artifact.AGENT_DIR
MODULES = sorted(AGENT_DIR.glob("*.py"))


def _imports(path: Path) -> list[tuple[int, str, int]]:
    """(level, module, line) of every import in ``path``, at any depth."""
    tree = ast.parse(path.read_text(), filename=str(path), feature_version=(3, 8))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(0, a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.level, node.module or "", node.lineno))
    return out


def test_package_has_the_modules_the_archive_needs() -> None:
    names = {p.name for p in MODULES}
    assert {"__init__.py", "__main__.py", "protocol.py", "fsio.py", "host.py", "supervisor.py",
            "server.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_imports_only_the_standard_library(path: Path) -> None:
    """Every module runs on machines without fleetslurm: it may import the
    standard library and, relatively, its siblings; nothing else."""
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    bad = []
    for level, module, line in _imports(path):
        top = module.split(".")[0]
        if level == 1:
            if module and not (AGENT_DIR / f"{top}.py").is_file():
                bad.append(f"line {line}: from .{module} (no such module in the package)")
        elif level > 1:
            bad.append(f"line {line}: a relative import leaving the package (level {level})")
        elif top == "fleetslurm" or top not in stdlib:
            bad.append(f"line {line}: import {module}")
    assert not bad, f"{path.name} imports outside the standard library: {bad}"


def test_the_import_check_catches_what_it_must(tmp_path: Path) -> None:
    """The check above is not vacuous: each kind of forbidden import is seen."""
    for text in ("import paramiko\n", "from fleetslurm.errors import X\n",
                 "def f():\n    from fleetslurm import paths\n", "from .. import errors\n",
                 "import fleetslurm.node.agent\n"):
        bad = tmp_path / "bad.py"
        bad.write_text(text)
        with pytest.raises(AssertionError):
            test_module_imports_only_the_standard_library(bad)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_module_is_over_700_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 700


def test_archive_names_the_package_as_its_main_does() -> None:
    from fleetslurm.node.agent import __main__ as boot

    assert boot.ARCHIVE_PACKAGE == artifact.ARCHIVE_PACKAGE


def test_two_builds_give_the_same_bytes(tmp_path: Path) -> None:
    """Same sources, same bytes, same name: a copy of the sources with other
    file times and another order on disk builds the identical archive."""
    first = artifact.build_archive()
    assert artifact.build_archive() == first
    copy = tmp_path / "agent"
    copy.mkdir()
    for path in reversed(MODULES):
        shutil.copyfile(path, copy / path.name)
        os.utime(copy / path.name, (12345678, 12345678))
    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "junk.pyc").write_bytes(b"x")
    assert artifact.build_archive(copy) == first
    assert artifact.agent_file_name(first) == artifact.agent_file_name(artifact.agent_archive())
    assert artifact.AGENT_FILE_RE.match(artifact.agent_file_name(first))
    # and other sources give other bytes
    (copy / "fsio.py").write_text((copy / "fsio.py").read_text() + "\n# changed\n")
    assert artifact.build_archive(copy) != first


def _ask(proc: subprocess.Popen, req: dict, ev: str, timeout: float = 20.0) -> dict:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write((json.dumps(req) + "\n").encode())
    proc.stdin.flush()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, "the agent closed stdout: %r" % proc.stderr.read()  # type: ignore[union-attr]
        msg = json.loads(line)
        if msg["ev"] == ev and msg.get("re") == req.get("id"):
            return msg
    raise AssertionError(f"no {ev} in time")


@pytest.mark.parametrize("flags", [["-I"], ["-I", "-S"]], ids=["isolated", "no-site"])
def test_archive_runs_alone_under_an_isolated_python(tmp_path: Path, flags: list[str]) -> None:
    """``python3 -I agent-<hash>.pyz`` from a directory without fleetslurm, with
    no PYTHONPATH (and with -S: no site-packages either, where an installed
    fleetslurm would be): it answers hello with the protocol's fields and
    runs a job."""
    data = artifact.agent_archive()
    pyz = tmp_path / artifact.agent_file_name(data)
    pyz.write_bytes(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.Popen([sys.executable, *flags, str(pyz), "--workdir", str(tmp_path / "w")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=str(tmp_path), env=env)
    try:
        hello = _ask(proc, {"op": "hello", "id": 1}, "hello")
        # it re-executed itself as a lean interpreter that got the modules
        # compiled (an fd, not "-") instead of compiling them in its own heap
        argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert argv[1:4] == [b"-I", b"-S", b"-c"] and argv[5] == str(pyz).encode()
        assert argv[6].isdigit() and argv[7:9] == [b"--workdir", str(tmp_path / "w").encode()]
        assert set(hello) == {"ev", "re", *protocol.EVENTS["hello"][0]}
        assert hello["version"] == protocol.PROTOCOL_VERSION
        assert set(hello["facts"]) == set(protocol.EVENTS["facts"][0])
        spec = {"script": "#!/bin/sh\necho from-the-archive\n", "stdout": str(tmp_path / "out")}
        started = _ask(proc, {"op": "launch", "id": 2, "key": "1.0", "spec": spec}, "started")
        assert set(started) == {"ev", "re", *protocol.EVENTS["started"][0]}
        ended = _ask(proc, {"op": "status", "id": 3}, "status")
        assert [j["key"] for j in ended["jobs"]] == ["1.0"]
        deadline = time.monotonic() + 20
        while not (tmp_path / "w" / "jobs" / "1.0" / "result.json").exists():
            assert time.monotonic() < deadline, "the job did not end"
            time.sleep(0.05)
        assert (tmp_path / "out").read_text() == "from-the-archive\n"
        assert _ask(proc, {"op": "shutdown", "id": 4}, "shutdown") == {"ev": "shutdown", "re": 4}
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # the agent (after its lean re-exec) imported the package from the archive,
    # never from this checkout: nothing of fleetslurm is needed on the machine
    assert not list(tmp_path.rglob("__pycache__"))


def test_protocol_tables_name_every_op_the_agent_serves() -> None:
    from fleetslurm.node.agent import server

    assert set(server._OPS) == set(protocol.REQUESTS)
    assert set(protocol.ACK_EVENTS) <= set(protocol.EVENTS)


def test_protocol_constructors_make_the_documented_messages() -> None:
    for name, (required, optional) in protocol.REQUESTS.items():
        assert callable(getattr(protocol, name)), name
    assert protocol.launch("1.0", {"script": "x"}) == {"op": "launch", "key": "1.0",
                                                       "spec": {"script": "x"}}
    assert protocol.cancel("1.0", 9, requeue=True) == {"op": "cancel", "key": "1.0", "signal": 9,
                                                       "requeue": True}
    assert protocol.ev_ack("cancelling", 7, "1.0", None) == {
        "ev": "cancelling", "re": 7, "key": "1.0", "ok": True, "error": None}
    assert protocol.ev_ended(protocol.UNSOLICITED, "1.0", {}) == {"ev": "ended", "key": "1.0",
                                                                  "result": {}}
    assert protocol.ev_ended(3, "1.0", {})["re"] == 3
    assert protocol.key_error("1.0") is None and protocol.key_error("../x")


def test_embedded_default_finds_gpus_with_the_agents_query(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """``node.facts`` (the embedded default's sizing) and the agent's FACTS
    read nvidia-smi through one query: a fake nvidia-smi shows up in both."""
    from fleetslurm.node.agent import host
    from fleetslurm.node.facts import local_facts

    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '0, NVIDIA A100-SXM4-40GB, GPU-aaaa, 40960'\n"
                   "echo '1, NVIDIA A100-SXM4-40GB, GPU-bbbb, 40960.0'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    want = [{"index": 0, "name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-aaaa", "memory_mb": 40960},
            {"index": 1, "name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-bbbb", "memory_mb": 40960}]
    assert local_facts()["gpus"] == want
    assert host.machine_facts(str(tmp_path), str(tmp_path), 0.0, host.query_gpus())["gpus"] == want
    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    assert local_facts()["gpus"] == []


def test_local_transport_runs_the_archive_from_its_workdir(tmp_path: Path) -> None:
    """LocalTransport puts the archive into the workdir under its hash (as SSH
    does on a machine), runs it from there, and removes older agents (an
    agent-*.py of before the archive, another version's .pyz)."""
    from fleetslurm.transport.local import LocalTransport

    wd = tmp_path / "w"
    wd.mkdir()
    (wd / "agent-0123456789ab.py").write_text("old agent")
    (wd / "agent-ba9876543210.pyz").write_bytes(b"older archive")
    (wd / "agent-notes.txt").write_text("not an agent: kept")
    t = LocalTransport("n1", wd)
    channel = t.start_agent()
    try:
        channel.send({"op": "hello", "id": 1})
        msg = channel.recv()
        assert msg is not None and msg["ev"] == "hello" and msg["facts"]["workdir"] == str(wd)
    finally:
        channel.close()
    name = artifact.agent_file_name(artifact.agent_archive())
    assert sorted(p.name for p in wd.iterdir() if p.name.startswith("agent-")) == [
        name, "agent-notes.txt"]
    assert (wd / name).read_bytes() == artifact.agent_archive()
    assert (wd / name).stat().st_mode & 0o777 == 0o600

"""Node agent tests: a real agent subprocess, real supervisors, real jobs.

Each test talks JSON lines to ``python agent-<hash>.pyz --workdir W`` (the
archive the controller ships, built from ``fleetslurm/node/agent/``) through a
small client whose reads time out, so a broken agent fails the test instead of
hanging it.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import select
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest



def _agent_archive() -> Path:
    """The agent archive as shipped, written once per version to the temp dir."""
    from fleetslurm.node.artifact import agent_archive, agent_file_name

    data = agent_archive()
    path = Path(tempfile.gettempdir()) / f"fleetslurm-test-{agent_file_name(data)}"
    if not path.is_file() or path.read_bytes() != data:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


AGENT = _agent_archive()
PY = sys.executable
# The agent must run on any Python >= 3.8: point this at an old interpreter to check.
AGENT_PY = os.environ.get("FLEETSLURM_TEST_AGENT_PYTHON", sys.executable)


class AgentClient:
    """Drive one agent process over its stdin/stdout."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc = subprocess.Popen(
            [AGENT_PY, str(AGENT), "--workdir", str(workdir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._buf = b""
        self._events: List[Dict[str, Any]] = []
        self._next_id = 0

    # -- raw I/O ---------------------------------------------------------

    def send_raw(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line)
        self.proc.stdin.flush()

    def send(self, obj: Dict[str, Any]) -> int:
        """Send a request with a fresh id; return the id."""
        self._next_id += 1
        obj = dict(obj, id=self._next_id)
        self.send_raw((json.dumps(obj) + "\n").encode())
        return self._next_id

    def _read_line(self, deadline: float) -> Dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("agent sent nothing in time; events so far: %r" % self._events)
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError("agent closed stdout; stderr: %r"
                                         % self.proc.stderr.read() if self.proc.stderr else b"")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)  # anything else on stdout is a bug: this raises

    def wait_for(self, pred: Callable[[Dict[str, Any]], bool], timeout: float = 10.0) -> Dict[str, Any]:
        """Return (and consume) the first message matching ``pred``."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self._events):
                if pred(ev):
                    return self._events.pop(i)
            self._events.append(self._read_line(deadline))

    def request(self, obj: Dict[str, Any], timeout: float = 10.0) -> Dict[str, Any]:
        rid = self.send(obj)
        return self.wait_for(lambda ev: ev.get("re") == rid, timeout)

    # -- conveniences ------------------------------------------------------

    def launch(self, key: str, spec: Dict[str, Any]) -> Dict[str, Any]:
        return self.request({"op": "launch", "key": key, "spec": spec})

    def ended(self, key: str, timeout: float = 10.0) -> Dict[str, Any]:
        ev = self.wait_for(lambda e: e.get("ev") == "ended" and e.get("key") == key, timeout)
        return ev["result"]

    def close(self) -> int:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
        return self.proc.returncode


def kill_leftovers(workdir: Path) -> None:
    """Kill jobs a failed test left running (they would outlive pytest)."""
    for sup_file in workdir.glob("jobs/*/supervisor.json"):
        if (sup_file.parent / "result.json").exists():
            continue
        try:
            sup = json.loads(sup_file.read_text())
        except ValueError:
            continue
        for kill, pid in ((os.killpg, sup.get("job_pid")), (os.kill, sup.get("pid"))):
            if pid and alive(pid):
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "w"
    yield path
    kill_leftovers(path)


@pytest.fixture
def agent(workdir: Path) -> Iterator[AgentClient]:
    client = AgentClient(workdir)
    yield client
    client.close()


def spec(script: str, tmp_path: Path, **kw: Any) -> Dict[str, Any]:
    """A launch spec with sensible test defaults."""
    out = {"script": script, "argv": [], "env": dict(os.environ), "cwd": str(tmp_path),
           "stdout": str(tmp_path / "out.txt"), "stderr": str(tmp_path / "err.txt")}
    out.update(kw)
    return out


def wait_for_text(path: Path, text: str, timeout: float = 5.0) -> None:
    """Wait until a job has written exactly ``text`` to ``path``."""
    deadline = time.monotonic() + timeout
    while not path.exists() or path.read_text() != text:
        assert time.monotonic() < deadline, "%s never read %r" % (path, text)
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


RESULT_KEYS = {"key", "pid", "start_time", "end_time", "state", "exit_code", "signal",
               "user_cpu", "system_cpu", "max_rss_kb", "error"}


# ---------------------------------------------------------------------------


def test_hello_and_facts(agent: AgentClient, workdir: Path) -> None:
    hello = agent.request({"op": "hello"})
    assert hello["ev"] == "hello" and hello["jobs"] == [] and hello["pid"] == agent.proc.pid
    assert isinstance(hello["version"], str)
    facts = agent.request({"op": "facts"})
    assert facts["ev"] == "facts"
    for f in (hello["facts"], facts):
        assert f["cpus"] >= 1 and f["mem_mb"] > 0 and 0 < f["free_mem_mb"] <= f["mem_mb"]
        assert isinstance(f["load1"], float) and isinstance(f["gpus"], list)
        assert f["hostname"] and f["python"].count(".") == 2 and f["os"].startswith("Linux")
        assert f["arch"] and f["boot_time"] > 0 and f["workdir"] == str(workdir)
        assert f["disk_free_mb"] > 0 and f["workdir_writable"] is True and f["uid"] == os.getuid()


def test_completed_job_output_and_task_pid(agent: AgentClient, tmp_path: Path) -> None:
    s = spec('#!/bin/sh\necho "hello $1"\necho "pid=$SLURM_TASK_PID"\necho oops >&2\n', tmp_path,
             argv=["world"])
    started = agent.launch("1.0", s)
    assert started["ev"] == "started" and started["key"] == "1.0"
    assert started["pid"] > 0 and abs(started["start_time"] - time.time()) < 30
    result = agent.ended("1.0")
    assert set(result) == RESULT_KEYS
    assert (result["state"], result["exit_code"], result["signal"]) == ("COMPLETED", 0, 0)
    assert result["pid"] == started["pid"] and result["end_time"] >= result["start_time"]
    assert result["error"] is None and result["max_rss_kb"] > 0
    assert (tmp_path / "out.txt").read_text() == "hello world\npid=%d\n" % started["pid"]
    assert (tmp_path / "err.txt").read_text() == "oops\n"


def test_exit_code_and_killed_by_signal(agent: AgentClient, tmp_path: Path) -> None:
    agent.launch("2.0", spec("#!/bin/sh\nexit 3\n", tmp_path))
    agent.launch("3.0", spec("#!/bin/sh\nkill -9 $$\n", tmp_path))
    r2, r3 = agent.ended("2.0"), agent.ended("3.0")
    assert (r2["state"], r2["exit_code"], r2["signal"]) == ("FAILED", 3, 0)
    assert (r3["state"], r3["exit_code"], r3["signal"]) == ("FAILED", 0, 9)


def test_exec_failure_is_reported_like_slurm(agent: AgentClient, tmp_path: Path) -> None:
    agent.launch("4.0", spec("echo no shebang\n", tmp_path))
    result = agent.ended("4.0")
    assert (result["state"], result["exit_code"]) == ("FAILED", 127)
    script = agent.workdir / "jobs" / "4.0" / "script"
    msg = "slurmstepd: error: execve(): %s: Exec format error" % script
    assert result["error"] == msg
    assert (tmp_path / "err.txt").read_text() == msg + "\n"


def test_time_limit_and_signal_before_limit(agent: AgentClient, tmp_path: Path) -> None:
    # All three run at once to keep the wall time down.
    d1, d2, d3 = (tmp_path / n for n in ("a", "b", "c"))
    for d in (d1, d2, d3):
        d.mkdir()
    agent.launch("5.0", spec("#!/bin/sh\nsleep 30\n", d1, cwd=str(d1), stdout=str(d1 / "o"),
                             time_limit_s=1, kill_wait_s=1))
    # Ignores SIGTERM (and so does its sleep, which inherits the ignore).
    agent.launch("6.0", spec("#!/bin/sh\ntrap '' TERM\nsleep 30\necho survived\n", d2,
                             cwd=str(d2), stdout=str(d2 / "o"), time_limit_s=1, kill_wait_s=1))
    # --signal=B:USR1@2 with a 3 s limit: the batch shell hears USR1 at ~1 s.
    agent.launch("7.0", spec("#!/bin/sh\ntrap 'echo got USR1; exit 0' USR1\n"
                             "while :; do sleep 0.1; done\n", d3, cwd=str(d3),
                             stdout=str(d3 / "o"), time_limit_s=3, kill_wait_s=1,
                             signal={"num": signal.SIGUSR1, "secs_before": 2, "batch_only": True}))
    r5, r6, r7 = agent.ended("5.0"), agent.ended("6.0"), agent.ended("7.0")
    assert (r5["state"], r5["exit_code"], r5["signal"]) == ("TIMEOUT", 0, signal.SIGTERM)
    assert 0.9 <= r5["end_time"] - r5["start_time"] < 3.0
    assert (r6["state"], r6["signal"]) == ("TIMEOUT", signal.SIGKILL)
    assert 1.9 <= r6["end_time"] - r6["start_time"] < 4.0
    assert (d2 / "o").read_text() == ""
    assert (r7["state"], r7["exit_code"]) == ("COMPLETED", 0)
    assert 0.9 <= r7["end_time"] - r7["start_time"] < 2.9
    assert (d3 / "o").read_text() == "got USR1\n"


def test_memory_limit_kills_job(agent: AgentClient, tmp_path: Path) -> None:
    hog = "a = b'x' * (300 << 20)\nimport time\ntime.sleep(20)\n"
    (tmp_path / "hog.py").write_text(hog)
    started = agent.launch("8.0", spec("#!/bin/sh\n'%s' '%s'\necho after\n" % (PY, tmp_path / "hog.py"),
                                       tmp_path, mem_limit_mb=50, node="n1", job_id=8))
    assert started["ev"] == "started"
    result = agent.ended("8.0", timeout=15)
    # SLURM's SIG_OOM: ExitCode 0:125 (src/slurmctld/job_mgr.c)
    assert (result["state"], result["exit_code"], result["signal"]) == ("OUT_OF_MEMORY", 0, 125)
    assert result["max_rss_kb"] > 50 * 1024
    assert result["end_time"] - result["start_time"] < 10
    assert (tmp_path / "out.txt").read_text() == ""  # the group died, not just the hog
    # slurmstepd's line (task/cgroup's task_cgroup_memory_check_oom), node n1, job 8
    assert (tmp_path / "err.txt").read_text() == (
        "slurmstepd-n1: error: Detected 1 oom-kill event(s) in StepId=8.batch. Some of your "
        "processes may have been killed by the cgroup out-of-memory handler.\n")


def test_cancel(agent: AgentClient, tmp_path: Path) -> None:
    agent.launch("9.0", spec("#!/bin/sh\nsleep 30\n", tmp_path))
    agent.launch("10.0", spec("#!/bin/sh\ntrap '' TERM\necho ready\nsleep 30\n", tmp_path,
                              stdout=str(tmp_path / "o10"), kill_wait_s=1))
    wait_for_text(tmp_path / "o10", "ready\n")  # the trap is in place
    for key in ("9.0", "10.0"):
        reply = agent.request({"op": "cancel", "key": key})
        assert (reply["ev"], reply["key"], reply["ok"]) == ("cancelling", key, True)
    r9, r10 = agent.ended("9.0"), agent.ended("10.0")
    assert (r9["state"], r9["exit_code"], r9["signal"]) == ("CANCELLED", 0, signal.SIGTERM)
    assert r9["end_time"] - r9["start_time"] < 5
    assert (r10["state"], r10["signal"]) == ("CANCELLED", signal.SIGKILL)
    assert 0.9 <= r10["end_time"] - r10["start_time"] < 5
    again = agent.request({"op": "cancel", "key": "9.0"})
    assert again["ok"] is False and "already ended" in again["error"]
    missing = agent.request({"op": "cancel", "key": "77.0"})
    assert missing["ok"] is False and "no job 77.0" in missing["error"]


def test_slurmstepd_line_when_a_job_is_ended(agent: AgentClient, tmp_path: Path) -> None:
    # as slurmstepd writes into the job's stderr (oracle, SLURM 22.05):
    # "slurmstepd-localhost: error: *** JOB 311 ON localhost CANCELLED AT
    #  2026-11-21T14:04:56 DUE TO TIME LIMIT ***"
    common = dict(node="n1", kill_wait_s=1)
    agent.launch("21.0", spec("#!/bin/sh\nsleep 30\n", tmp_path, stderr=str(tmp_path / "e21"),
                              time_limit_s=1, job_id=21, **common))
    for key in ("22.0", "23.1"):
        out = str(tmp_path / f"o{key}")  # stderr with stdout, sbatch's default
        agent.launch(key, spec("#!/bin/sh\necho ready\nsleep 30\n", tmp_path, stdout=out,
                               stderr=out, **common))
        wait_for_text(tmp_path / f"o{key}", "ready\n")
    assert agent.request({"op": "cancel", "key": "22.0"})["ok"]
    assert agent.request({"op": "cancel", "key": "23.1", "signal": 9, "requeue": True})["ok"]
    for key in ("21.0", "22.0", "23.1"):
        agent.ended(key)
    stamp = r"CANCELLED AT \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"
    assert re.fullmatch(rf"slurmstepd-n1: error: \*\*\* JOB 21 ON n1 {stamp} DUE TO TIME LIMIT "
                        r"\*\*\*\n", (tmp_path / "e21").read_text())
    assert re.fullmatch(rf"ready\nslurmstepd-n1: error: \*\*\* JOB 22 ON n1 {stamp} \*\*\*\n",
                        (tmp_path / "o22.0").read_text())
    assert re.fullmatch(rf"ready\nslurmstepd-n1: error: \*\*\* JOB 23 ON n1 {stamp} DUE TO JOB "
                        r"REQUEUE \*\*\*\n", (tmp_path / "o23.1").read_text())


def test_signal_op_reaches_trap(agent: AgentClient, tmp_path: Path) -> None:
    agent.launch("11.0", spec("#!/bin/sh\ntrap 'echo got USR1; exit 0' USR1\necho ready\n"
                              "while :; do sleep 0.1; done\n", tmp_path))
    wait_for_text(tmp_path / "out.txt", "ready\n")  # the trap is in place
    reply = agent.request({"op": "signal", "key": "11.0", "signal": signal.SIGUSR1, "batch_only": True})
    assert (reply["ev"], reply["ok"], reply["error"]) == ("signalled", True, None)
    result = agent.ended("11.0")
    assert result["state"] == "COMPLETED"
    assert (tmp_path / "out.txt").read_text() == "ready\ngot USR1\n"
    late = agent.request({"op": "signal", "key": "11.0", "signal": signal.SIGUSR1})
    assert late["ok"] is False and "already ended" in late["error"]


def test_open_mode_truncate_and_append(agent: AgentClient, tmp_path: Path) -> None:
    out = tmp_path / "log.txt"
    out.write_text("old\n")
    agent.launch("12.0", spec("#!/bin/sh\necho one\n", tmp_path, stdout=str(out), stderr=str(out)))
    agent.ended("12.0")
    assert out.read_text() == "one\n"
    agent.launch("12.1", spec("#!/bin/sh\necho two\necho err >&2\necho three\n", tmp_path,
                              stdout=str(out), stderr=str(out), open_mode="append"))
    agent.ended("12.1")
    assert out.read_text() == "one\ntwo\nerr\nthree\n"


def test_missing_output_dir_is_created(agent: AgentClient, tmp_path: Path) -> None:
    out = tmp_path / "x" / "y" / "z" / "out.txt"
    agent.launch("13.0", spec("#!/bin/sh\necho made\n", tmp_path, stdout=str(out)))
    assert agent.ended("13.0")["state"] == "COMPLETED"
    assert out.read_text() == "made\n"


def test_missing_cwd_falls_back_to_tmp(agent: AgentClient, tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    agent.launch("14.0", spec("#!/bin/sh\npwd\n", tmp_path, cwd=str(missing)))
    assert agent.ended("14.0")["state"] == "COMPLETED"
    assert (tmp_path / "out.txt").read_text() == "/tmp\n"
    assert (tmp_path / "err.txt").read_text() == (
        "slurmstepd: error: couldn't chdir to `%s': No such file or directory: "
        "going to /tmp instead\n" % missing)


def test_relaunch_with_same_key_never_runs_twice(workdir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    s = spec("#!/bin/sh\necho run >> '%s'\nsleep 0.5\n" % runs, tmp_path)
    agent = AgentClient(workdir)
    try:
        first = agent.launch("15.0", s)
        second = agent.launch("15.0", s)  # while running
        assert second["ev"] == "started" and second["pid"] == first["pid"]
        result = agent.ended("15.0")
        third = agent.launch("15.0", s)   # after it ended: the result, no new run
        assert third["ev"] == "ended" and third["result"] == result
    finally:
        agent.close()
    agent = AgentClient(workdir)          # a new agent (controller restarted)
    try:
        fourth = agent.launch("15.0", s)
        assert fourth["ev"] == "ended" and fourth["result"]["pid"] == first["pid"]
    finally:
        agent.close()
    assert runs.read_text() == "run\n"


def test_job_survives_agent_kill_and_is_adopted(workdir: Path, tmp_path: Path) -> None:
    flag = tmp_path / "go"
    s = spec("#!/bin/sh\nwhile [ ! -e '%s' ]; do sleep 0.05; done\necho done\nexit 7\n" % flag,
             tmp_path)
    agent = AgentClient(workdir)
    started = agent.launch("16.0", s)
    agent.proc.kill()
    agent.close()
    assert alive(started["pid"])
    agent = AgentClient(workdir)
    try:
        hello = agent.request({"op": "hello"})
        assert hello["jobs"] == [{"key": "16.0", "status": "running", "pid": started["pid"],
                                  "result": None}]
        flag.touch()
        result = agent.ended("16.0", timeout=5)
        assert (result["state"], result["exit_code"], result["pid"]) == ("FAILED", 7, started["pid"])
        assert (tmp_path / "out.txt").read_text() == "done\n"
        status = agent.request({"op": "status"})
        assert status["jobs"][0]["status"] == "ended"
        forgotten = agent.request({"op": "forget", "key": "16.0"})
        assert forgotten["ok"] is True and not (workdir / "jobs" / "16.0").exists()
        assert agent.request({"op": "status"})["jobs"] == []
    finally:
        agent.close()


def test_ended_while_agent_was_down_is_reported_after_hello(workdir: Path, tmp_path: Path) -> None:
    agent = AgentClient(workdir)
    agent.launch("17.0", spec("#!/bin/sh\nsleep 0.3\nexit 4\n", tmp_path))
    agent.proc.kill()
    agent.close()
    time.sleep(0.8)
    agent = AgentClient(workdir)
    try:
        hello = agent.request({"op": "hello"})
        [info] = hello["jobs"]
        assert info["status"] == "ended" and info["result"]["exit_code"] == 4
        assert agent.ended("17.0", timeout=2) == info["result"]
    finally:
        agent.close()


def test_killed_supervisor_means_lost(workdir: Path, tmp_path: Path) -> None:
    s = spec("#!/bin/sh\nsleep 30\n", tmp_path)
    agent = AgentClient(workdir)
    try:
        # Supervisor dies while its agent runs: reported at once.
        started = agent.launch("18.0", s)
        sup = json.loads((workdir / "jobs" / "18.0" / "supervisor.json").read_text())
        assert sup["job_pid"] == started["pid"]
        os.kill(sup["pid"], signal.SIGKILL)
        result = agent.ended("18.0")
        assert result["state"] == "LOST" and "killed by signal 9" in result["error"]
        # Supervisor dies while no agent runs: the next agent finds out.
        started = agent.launch("19.0", s)
    finally:
        agent.proc.kill()
        agent.close()
    sup = json.loads((workdir / "jobs" / "19.0" / "supervisor.json").read_text())
    os.kill(sup["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(sup["pid"]):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    agent = AgentClient(workdir)
    try:
        hello = agent.request({"op": "hello"})
        info = {j["key"]: j for j in hello["jobs"]}["19.0"]
        assert info["status"] == "ended"
        assert (info["result"]["state"], info["result"]["exit_code"], info["result"]["signal"]) == ("LOST", 0, 0)
        assert info["result"]["error"] == "supervisor vanished"
        assert agent.ended("19.0", timeout=2)["state"] == "LOST"
        deadline = time.monotonic() + 5
        while alive(started["pid"]):  # the orphaned job is not left running
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        agent.close()


def test_stale_job_dir_without_supervisor_is_lost(workdir: Path) -> None:
    # What an agent killed between mkdir and fork leaves behind.
    stale = workdir / "jobs" / "26.0"
    stale.mkdir(parents=True)
    (stale / "script").write_text("#!/bin/sh\n")
    old = time.time() - 60
    os.utime(stale, (old, old))
    agent = AgentClient(workdir)
    try:
        [info] = agent.request({"op": "hello"})["jobs"]
        assert info["status"] == "ended" and info["result"]["state"] == "LOST"
        assert info["result"]["error"] == "supervisor vanished before starting the job"
        relaunch = agent.launch("26.0", {"script": "#!/bin/sh\n"})
        assert relaunch["ev"] == "ended" and relaunch["result"]["state"] == "LOST"
    finally:
        agent.close()


def test_files_are_private(agent: AgentClient, workdir: Path, tmp_path: Path) -> None:
    agent.launch("20.0", spec("#!/bin/sh\ntrue\n", tmp_path))
    agent.ended("20.0")
    jobdir = workdir / "jobs" / "20.0"

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)
    assert mode(jobdir) == 0o700 and mode(jobdir / "script") == 0o700
    assert mode(jobdir / "result.json") == 0o600 and mode(jobdir / "supervisor.json") == 0o600
    assert sorted(p.name for p in jobdir.iterdir()) == ["result.json", "script", "supervisor.json"]


@pytest.mark.parametrize("key", ["../evil", "..", ".", "a/b", "", "a b", "x\n", 5, None, "a..b"])
def test_hostile_key_rejected(agent: AgentClient, workdir: Path, tmp_path: Path, key: Any) -> None:
    reply = agent.launch(key, spec("#!/bin/sh\ntouch '%s'\n" % (tmp_path / "ran"), tmp_path))
    assert reply["ev"] == "launch_failed" and "invalid job key" in reply["error"]
    assert "[A-Za-z0-9._-]" in reply["error"]
    assert not (tmp_path / "ran").exists() and not (workdir / "evil").exists()
    assert os.listdir(workdir / "jobs") == []


def test_hostile_paths_and_argv_survive_verbatim(agent: AgentClient, tmp_path: Path) -> None:
    weird = tmp_path / "a'; echo foo \"$(touch pwned)\" `id`\nb $HOME"
    weird.mkdir()
    argv = ["a'; echo foo", 'a"=0"', "a\n0", "$(touch pwned2)", "  spaced  ", "*", ""]
    out = weird / "o u t;$(x).txt"
    agent.launch("21.0", spec("#!/bin/sh\npwd\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\"; done\n",
                              tmp_path, cwd=str(weird), stdout=str(out), stderr=str(out), argv=argv))
    assert agent.ended("21.0")["state"] == "COMPLETED"
    assert out.read_text() == str(weird) + "\n" + "".join("[%s]\n" % a for a in argv)
    for name in ("pwned", "pwned2"):
        assert not (tmp_path / name).exists() and not (weird / name).exists()


def test_bad_requests_get_errors_and_agent_keeps_working(agent: AgentClient, tmp_path: Path) -> None:
    agent.send_raw(b"this is not json\n")
    assert "bad JSON" in agent.wait_for(lambda e: e["ev"] == "error")["error"]
    agent.send_raw(b"[1, 2]\n")
    assert "JSON object" in agent.wait_for(lambda e: e["ev"] == "error")["error"]
    reply = agent.request({"op": "frobnicate"})
    assert reply["ev"] == "error" and "unknown op 'frobnicate'" in reply["error"]
    assert "launch" in reply["error"]  # lists the valid ops
    reply = agent.launch("22.0", {"script": "#!/bin/sh\n", "argv": "not a list"})
    assert reply["ev"] == "launch_failed" and "spec.argv" in reply["error"]
    reply = agent.launch("22.0", {"script": "#!/bin/sh\n", "open_mode": "sideways"})
    assert reply["ev"] == "launch_failed" and "truncate, append" in reply["error"]
    assert agent.request({"op": "hello"})["ev"] == "hello"
    agent.launch("22.0", spec("#!/bin/sh\necho fine\n", tmp_path))  # key still free after failures
    assert agent.ended("22.0")["state"] == "COMPLETED"


def test_forget_only_ended_jobs(agent: AgentClient, workdir: Path, tmp_path: Path) -> None:
    agent.launch("23.0", spec("#!/bin/sh\nsleep 30\n", tmp_path, kill_wait_s=1))
    reply = agent.request({"op": "forget", "key": "23.0"})
    assert reply["ok"] is False and "still running" in reply["error"]
    assert (workdir / "jobs" / "23.0").is_dir()
    agent.request({"op": "cancel", "key": "23.0", "signal": signal.SIGKILL})
    assert agent.ended("23.0")["signal"] == signal.SIGKILL
    assert agent.request({"op": "forget", "key": "23.0"})["ok"] is True
    assert not (workdir / "jobs" / "23.0").exists()
    assert agent.request({"op": "forget", "key": "23.0"})["ok"] is True  # idempotent


def test_forget_with_keep_moves_the_run_aside(agent: AgentClient, workdir: Path,
                                              tmp_path: Path) -> None:
    """A run whose output could not go home: no longer reported, not deleted."""
    agent.launch("25.0", spec("#!/bin/sh\necho keep me\n", tmp_path))
    assert agent.ended("25.0")["state"] == "COMPLETED"
    reply = agent.request({"op": "forget", "key": "25.0", "keep": True})
    assert reply["ok"] is True, reply
    assert not (workdir / "jobs" / "25.0").exists()
    kept = workdir / "kept" / "25.0"
    assert (kept / "result.json").is_file()
    assert oct((workdir / "kept").stat().st_mode & 0o777) == "0o700"
    assert "25.0" not in [j["key"] for j in agent.request({"op": "hello"})["jobs"]]
    # a new agent on the same workdir does not adopt it either
    again = AgentClient(workdir)
    try:
        assert "25.0" not in [j["key"] for j in again.request({"op": "hello"})["jobs"]]
    finally:
        again.close()
    assert kept.is_dir()


def test_eof_exits_without_touching_jobs(workdir: Path, tmp_path: Path) -> None:
    agent = AgentClient(workdir)
    started = agent.launch("24.0", spec("#!/bin/sh\nsleep 0.5\necho finished\n", tmp_path))
    assert agent.close() == 0
    assert alive(started["pid"])
    result_file = workdir / "jobs" / "24.0" / "result.json"
    deadline = time.monotonic() + 5
    while not result_file.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert json.loads(result_file.read_text())["state"] == "COMPLETED"
    assert (tmp_path / "out.txt").read_text() == "finished\n"


def test_shutdown_op(agent: AgentClient) -> None:
    assert agent.request({"op": "shutdown"})["ev"] == "shutdown"
    assert agent.proc.wait(5) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_runs_as_requested_uid() -> None:
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    # pytest's tmp dirs are 0700 under root: use one the job user can reach.
    base = Path(tempfile.mkdtemp(prefix="fleetslurm-agent-"))
    try:
        base.chmod(0o755)
        outdir = base / "out"
        outdir.mkdir(mode=0o777)
        outdir.chmod(0o777)
        agent = AgentClient(base / "w")
        try:
            agent.launch("25.0", spec("#!/bin/sh\nid -u\nid -g\n", outdir, cwd=str(outdir),
                                      uid=nobody.pw_uid, gid=nobody.pw_gid))
            result = agent.ended("25.0")
            assert result["state"] == "COMPLETED", (outdir / "err.txt").read_text()
            assert (outdir / "out.txt").read_text() == "%d\n%d\n" % (nobody.pw_uid, nobody.pw_gid)
            assert (outdir / "out.txt").stat().st_uid == nobody.pw_uid
            assert stat.S_IMODE((base / "w" / "jobs" / "25.0" / "result.json").stat().st_mode) == 0o600
        finally:
            agent.close()
            kill_leftovers(base / "w")
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


def test_format_exc_helper() -> None:
    from fleetslurm.node import agent as agent_mod
    try:
        raise ValueError("boom")
    except ValueError:
        text = agent_mod.format_exc()
    assert "ValueError: boom" in text

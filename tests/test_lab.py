"""The lab (issue 12): one controller under a service account, every local
user's commands use it, identity comes from the kernel, a job's script is
its owner's, and a lab client never starts a private controller.

Real Unix users (``useradd``; needs root), a real controller process under a
service account created by ``fleetslurm lab init``; every file under a
temporary FLEETSLURM_LAB_ROOT (never the machine's /etc, /var/lib, /run).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from second_user import other_user, run_as  # noqa: E402,F401  (fixture)

REPO = str(Path(__file__).resolve().parents[1])
PY = sys.executable


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": REPO,
           "FLEETSLURM_LAB_ROOT": str(root), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def _user(name: str) -> pwd.struct_passwd:
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True,
                   capture_output=True)
    return pwd.getpwnam(name)


@pytest.fixture
def second_user() -> Iterator[pwd.struct_passwd]:
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("needs root and useradd")
    pw = _user(f"fsl{uuid.uuid4().hex[:10]}")
    try:
        yield pw
    finally:
        subprocess.run(["userdel", "-r", pw.pw_name], capture_output=True)


class Lab:
    """A lab set up by ``fleetslurm lab init`` under a temporary root."""

    def __init__(self, root: Path, svc: str, work: Path) -> None:
        self.root, self.svc, self.work = root, svc, work
        self.env = _env(root)

    @property
    def socket(self) -> Path:
        return self.root / "run" / "fleetslurm" / "ctl.sock"

    @property
    def state(self) -> Path:
        return self.root / "var" / "lib" / "fleetslurm"

    def fs(self, *args: str, user: "pwd.struct_passwd | None" = None,
           env: "dict | None" = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """``fleetslurm ARGS`` as root, or as ``user``."""
        e = dict(env or self.env)
        argv = [PY, "-m", "fleetslurm", *args]
        if user is None:
            return subprocess.run(argv, capture_output=True, text=True, env=e,
                                  cwd=self.work, timeout=timeout)
        e["HOME"] = user.pw_dir
        return run_as(user, argv, e, str(self.work), timeout=timeout)

    def fs_python(self, code: str, *args: str, user: "pwd.struct_passwd | None" = None,
                  timeout: float = 120) -> subprocess.CompletedProcess:
        """``python -c CODE ARGS`` as root, or as ``user``, as ``fs`` runs commands."""
        e = dict(self.env)
        argv = [PY, "-c", code, *args]
        if user is None:
            return subprocess.run(argv, capture_output=True, text=True, env=e,
                                  cwd=self.work, timeout=timeout)
        e["HOME"] = user.pw_dir
        return run_as(user, argv, e, str(self.work), timeout=timeout)

    def start(self) -> None:
        """``fleetslurm lab start`` as the service account (in this test
        environment its Python lives under root's 0700 home: run_as opens it)."""
        svc = pwd.getpwnam(self.svc)
        proc = self.fs("lab", "start", user=svc)
        assert proc.returncode == 0, proc.stderr
        assert "lab controller started" in proc.stdout

    def pid(self) -> "int | None":
        try:
            return int((self.state / "controller.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


@contextlib.contextmanager
def lab_with(config: dict) -> Iterator[Lab]:
    """A lab made by ``fleetslurm lab init`` with ``config`` under a new service
    account and a temporary root; everything of it removed afterwards."""
    # short: the socket path must fit in sun_path
    root = Path(tempfile.mkdtemp(prefix="fsl-lab-", dir="/tmp"))
    os.chmod(root, 0o755)
    work = root / "work"
    work.mkdir()
    os.chmod(work, 0o1777)  # until jobs run as their users, the service account writes here
    svc = f"fsv{uuid.uuid4().hex[:8]}"
    cfg = root / "cfg.json"
    cfg.write_text(json.dumps(config))
    the_lab = Lab(root, svc, work)
    proc = subprocess.run([PY, "-m", "fleetslurm", "lab", "init", "--config", str(cfg),
                           "--service-user", svc], capture_output=True, text=True,
                          env=the_lab.env, timeout=60)
    try:
        assert proc.returncode == 0, proc.stderr
        the_lab.init_output = proc.stdout  # type: ignore[attr-defined]
        yield the_lab
    finally:
        pid = the_lab.pid()
        if pid:
            subprocess.run([PY, "-m", "fleetslurm", "lab", "stop"], env=the_lab.env,
                           capture_output=True, timeout=60)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, 9)
        # the service account's jobs and agent, if any survived (an account
        # this test made: every process of it is the test's)
        try:
            svc_uid = pwd.getpwnam(svc).pw_uid
        except KeyError:
            svc_uid = None
        for pid in _pids_of(svc_uid) if svc_uid is not None else ():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        subprocess.run(["userdel", svc], capture_output=True)
        subprocess.run(["groupdel", svc], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("setpriv"):
        pytest.skip("needs root, useradd and setpriv")
    with lab_with({
            "cluster_name": "lab", "kill_wait": 2, "heartbeat_interval": 1.0,
            "machines": {"localhost": {"transport": "local", "cpus": 2, "memory_gb": 4,
                                       "hostname": "localhost"}}}) as the_lab:
        yield the_lab


def _pids_of(uid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    pids.append(int(name))
            except OSError:
                pass
    return pids


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_lab_init_installs_the_lab_under_its_service_account(lab: Lab) -> None:
    svc = pwd.getpwnam(lab.svc)
    etc = lab.root / "etc" / "fleetslurm"
    assert json.loads((etc / "fleet_config.json").read_text())["cluster_name"] == "lab"
    assert _mode(etc / "fleet_config.json") == 0o644
    assert json.loads((etc / "lab.json").read_text()) == {"service_user": lab.svc}
    st = os.stat(lab.state)
    assert (st.st_uid, _mode(lab.state)) == (svc.pw_uid, 0o700)
    run = lab.root / "run" / "fleetslurm"
    assert (os.stat(run).st_uid, _mode(run)) == (svc.pw_uid, 0o755)
    unit = (lab.root / "etc" / "systemd" / "system" / "fleetslurm.service").read_text()
    assert f"User={lab.svc}\n" in unit
    assert "lab run\n" in unit and f"FLEETSLURM_LAB_ROOT={lab.root}" in unit
    out = lab.init_output  # type: ignore[attr-defined]
    assert f"created the service account {lab.svc}" in out
    assert "systemctl daemon-reload && systemctl enable --now fleetslurm" in out
    # a second init is fine and says the account exists
    again = lab.fs("lab", "init", "--config", str(lab.root / "cfg.json"),
                   "--service-user", lab.svc)
    assert again.returncode == 0, again.stderr
    assert f"service account {lab.svc} (uid {svc.pw_uid}) exists already" in again.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed here (Debian's systemd package)")
def test_the_unit_lab_init_writes_is_one_systemd_accepts(lab: Lab, tmp_path: Path) -> None:
    """systemd's own checker on the unit `lab init` wrote (this machine has
    no systemd as PID 1 to start it under): no syntax error, no unknown
    directive, an ExecStart that exists, a User that exists. It is run on a
    copy named as systemd names it, so a broken unit fails here."""
    unit = lab.root / "etc" / "systemd" / "system" / "fleetslurm.service"
    copy = tmp_path / "fleetslurm.service"
    copy.write_text(unit.read_text())
    proc = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                          text=True, timeout=60)
    # (warnings about the host's own units, which verify also loads, are not ours)
    ours = [line for line in proc.stderr.splitlines() if "fleetslurm.service" in line]
    assert proc.returncode == 0 and ours == [], proc.stderr
    broken = tmp_path / "broken" / "fleetslurm.service"
    broken.parent.mkdir()
    broken.write_text(unit.read_text().replace("ExecStart=", "ExecStrat="))
    bad = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True,
                         text=True, timeout=60)
    assert "ExecStrat" in bad.stderr  # the checker does read the file


def test_lab_init_needs_root(lab: Lab, other_user) -> None:
    proc = lab.fs("lab", "init", "--config", str(lab.root / "cfg.json"), user=other_user)
    assert proc.returncode == 1
    assert "run it as root" in proc.stderr and "Traceback" not in proc.stderr


def test_lab_client_with_the_controller_down_gets_an_error_not_a_private_controller(
        lab: Lab, other_user) -> None:
    proc = lab.fs("squeue", user=other_user)
    assert proc.returncode == 1
    assert f"the lab's controller does not answer at {lab.socket}" in proc.stderr
    assert "fleetslurm lab status" in proc.stderr and "systemctl start fleetslurm" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not Path(other_user.pw_dir, ".fleetslurm").exists()  # nothing private started
    status = lab.fs("lab", "status", user=other_user)
    assert status.returncode == 1 and "not running" in status.stdout


def _script(tag: str) -> str:
    # the job's own record of when it held its CPUs
    return ("#!/bin/sh\n"
            f"echo start $(date +%s.%N) >> {tag}.times\n"
            "sleep 1.5\n"
            f"echo end $(date +%s.%N) >> {tag}.times\n")


def test_two_users_share_one_queue_and_never_oversubscribe(lab: Lab, other_user,
                                                           second_user) -> None:
    lab.start()
    users = [other_user, second_user]
    ids: dict[str, list[str]] = {u.pw_name: [] for u in users}
    errors: list[str] = []

    def submit(user: pwd.struct_passwd) -> None:
        for i in range(3):
            tag = f"{user.pw_name}-{i}"
            (lab.work / f"{tag}.sh").write_text(_script(tag))
            os.chmod(lab.work / f"{tag}.sh", 0o644)
            p = lab.fs("sbatch", "--parsable", "-c", "2", "-o", f"{tag}.out", f"{tag}.sh",
                       user=user)
            if p.returncode != 0:
                errors.append(p.stderr)
            else:
                ids[user.pw_name].append(p.stdout.strip())

    threads = [threading.Thread(target=submit, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    # each user sees every job, with its owner's name
    for user in users:
        q = lab.fs("squeue", "-h", "-o", "%i %u", "--states=all", user=user)
        assert q.returncode == 0, q.stderr
        seen = dict(line.split() for line in q.stdout.splitlines())
        for owner, jobs in ids.items():
            for j in jobs:
                assert seen.get(j) == owner, (j, q.stdout)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        q = lab.fs("squeue", "-h", "-o", "%i")
        if not q.stdout.strip():
            break
        time.sleep(0.5)
    assert not q.stdout.strip(), "jobs did not finish"
    spans = []
    for path in lab.work.glob("*.times"):
        lines = dict(line.split() for line in path.read_text().splitlines())
        spans.append((float(lines["start"]), float(lines["end"])))
    assert len(spans) == 6
    spans.sort()
    # 2 CPUs declared, each job takes 2: never two at once
    for (s1, e1), (s2, _e2) in zip(spans, spans[1:]):
        assert s2 >= e1, f"two -c 2 jobs overlapped on a 2-CPU machine: {spans}"
    acct = lab.fs("sacct", "-a", "-X", "-n", "-P", "-o", "JobID,User,State", user=other_user)
    rows = [line.split("|") for line in acct.stdout.splitlines()]
    assert sorted(r[0] for r in rows) == sorted(ids[other_user.pw_name] + ids[second_user.pw_name])
    assert all(r[2] == "COMPLETED" for r in rows), rows
    owner = {r[0]: r[1] for r in rows}
    assert all(owner[j] == u for u, js in ids.items() for j in js)
    # sacct without -a: the caller's own, as SLURM's
    mine = lab.fs("sacct", "-X", "-n", "-P", "-o", "JobID", user=other_user)
    assert sorted(mine.stdout.split()) == sorted(ids[other_user.pw_name])


def _raw(lab: Lab, user: pwd.struct_passwd, request: dict) -> dict:
    """One JSON request on the lab's socket, sent by a process of ``user``."""
    code = ("import json,socket,sys\n"
            "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
            "s.sendall(sys.argv[2].encode()+b'\\n')\n"
            "print(s.makefile().readline())\n")
    proc = run_as(user, ["/usr/bin/python3", "-c", code, str(lab.socket), json.dumps(request)],
                  {"PATH": "/usr/bin:/bin"}, "/")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_identity_is_the_kernels_and_a_job_is_its_owners(lab: Lab, other_user,
                                                          second_user) -> None:
    lab.start()
    assert _mode(lab.socket) == 0o666
    # every file of the state: the service account's only
    for path in lab.state.iterdir():
        if path.is_file():
            assert _mode(path) & 0o077 == 0, (path, oct(_mode(path)))
    (lab.work / "secret.sh").write_text("#!/bin/sh\n# TOKEN=hunter2\nsleep 30\n")
    os.chmod(lab.work / "secret.sh", 0o644)
    p = lab.fs("sbatch", "--parsable", "-o", "/dev/null", "secret.sh", user=other_user,
               env=dict(lab.env, MY_TOKEN="hunter2"))
    assert p.returncode == 0, p.stderr
    job = p.stdout.strip()

    # the owner reads its own script; another user gets SLURM's refusal
    mine = lab.fs("scontrol", "write", "batch_script", job, "-", user=other_user)
    assert mine.returncode == 0 and "TOKEN=hunter2" in mine.stdout, mine.stderr
    theirs = lab.fs("scontrol", "write", "batch_script", job, "-", user=second_user)
    assert "hunter2" not in theirs.stdout
    assert theirs.stderr == "job script retrieval failed: Invalid user id\n"
    # scontrol show job: no environment (SLURM shows none to anyone)
    show = lab.fs("scontrol", "show", "job", job, user=second_user)
    assert show.returncode == 0 and "hunter2" not in show.stdout
    assert f"JobId={job}" in show.stdout
    # tail: the owner only
    tail = lab.fs("tail", job, user=second_user)
    assert tail.returncode == 1 and "Access/permission denied" in tail.stderr

    # cancelling another's job is refused
    cancel = lab.fs("scancel", job, user=second_user)
    assert cancel.returncode == 1
    assert "Access/permission denied" in cancel.stderr, cancel.stderr
    # reading the state database as another user is refused by the kernel
    peek = run_as(second_user, ["cat", str(lab.state / "state.db")], {"PATH": "/usr/bin:/bin"},
                  "/")
    assert peek.returncode != 0 and "Permission denied" in peek.stderr

    # a request that claims another identity is refused, and makes no job
    base = {"script": "#!/bin/sh\ntrue\n", "cwd": "/tmp", "options": {"output": "/dev/null"}}
    shadow = _raw(lab, second_user, {"op": "submit", "args": dict(base, gid=42)})
    assert not shadow["ok"]
    assert f"the request says gid 42, but your process runs as gid {second_user.pw_gid}" in \
        shadow["message"]
    as_root = _raw(lab, second_user, {"op": "submit", "args": dict(base, uid=0)})
    assert not as_root["ok"] and "the request says uid 0, but you are uid" in as_root["message"]
    # the same request without a claimed identity is the caller's job
    fine = _raw(lab, second_user, {"op": "submit", "args": base})
    assert fine["ok"], fine
    q = lab.fs("squeue", "-h", "-o", "%i %u", "--states=all")
    owners = dict(line.split() for line in q.stdout.splitlines())
    assert owners[str(fine["result"]["job_id"])] == second_user.pw_name
    assert len(owners) == 2  # the refused ones made nothing

    # the owner cancels its own
    own = lab.fs("scancel", job, user=other_user)
    assert own.returncode == 0, own.stderr


def test_personal_override_and_bad_controller_values(lab: Lab, other_user) -> None:
    bad = lab.fs("squeue", user=other_user, env=dict(lab.env, FLEETSLURM_CONTROLLER="nowhere"))
    assert bad.returncode == 1
    assert "FLEETSLURM_CONTROLLER=nowhere: use `personal`" in bad.stderr
    port = lab.fs("squeue", user=other_user,
                  env=dict(lab.env, FLEETSLURM_CONTROLLER="ssh://head:http"))
    assert port.returncode == 1 and "'http' is not a port" in port.stderr


def test_a_listener_that_is_not_the_labs_gets_no_request(lab: Lab, other_user,
                                                          second_user) -> None:
    from test_socket_owner import FakeController

    # the lab's socket directory handed to a user (a mistake): their listener
    # there is refused, by root and by another user, before a byte is sent
    run = lab.socket.parent
    os.chown(run, other_user.pw_uid, other_user.pw_gid)
    fake = FakeController(other_user, lab.socket, make_dir=False)
    try:
        for who in (None, second_user):
            p = lab.fs("sbatch", "--wrap", "true", user=who, env=dict(lab.env, TOKEN="s3cr3t"))
            assert p.returncode == 1
            assert f"{run} belongs to another user ({other_user.pw_name}" in p.stderr, p.stderr
    finally:
        assert fake.received() == 0
    # FLEETSLURM_CONTROLLER naming a socket of a user who is not the lab's
    sock = lab.root / "elsewhere" / "ctl.sock"
    sock.parent.mkdir(mode=0o755)
    os.chown(sock.parent, other_user.pw_uid, other_user.pw_gid)
    fake = FakeController(other_user, sock, make_dir=False)
    try:
        p = lab.fs("squeue", user=second_user, env=dict(lab.env, FLEETSLURM_CONTROLLER=str(sock)))
        assert p.returncode == 1 and "belongs to another user" in p.stderr, p.stderr
    finally:
        assert fake.received() == 0


def test_a_lab_run_by_root_starts_stops_and_serves_users(other_user) -> None:
    """SlurmUser=root: ``lab start``/``status``/``stop`` as root, no account made."""
    root = Path(tempfile.mkdtemp(prefix="fsl-lab-", dir="/tmp"))
    os.chmod(root, 0o755)
    env = _env(root)
    cfg = root / "cfg.json"
    cfg.write_text(json.dumps({"machines": {"localhost": {"transport": "local", "cpus": 1,
                                                         "memory_gb": 1}}}))

    def fs(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([PY, "-m", "fleetslurm", *args], capture_output=True, text=True,
                              env=env, cwd=str(root), timeout=60)
    try:
        init = fs("lab", "init", "--config", str(cfg), "--service-user", "root")
        assert init.returncode == 0, init.stderr
        assert "service account: root" in init.stdout
        assert "User=root\n" in (root / "etc/systemd/system/fleetslurm.service").read_text()
        start = fs("lab", "start")
        assert start.returncode == 0 and "lab controller started as root" in start.stdout
        assert fs("lab", "start").stdout.strip() == "the lab's controller runs already"
        status = fs("lab", "status")
        assert status.returncode == 0 and "lab controller running" in status.stdout
        # a user's command reaches it (the socket is everyone's), and cannot stop it
        q = run_as(other_user, [PY, "-m", "fleetslurm", "squeue", "-h"],
                   dict(env, HOME=other_user.pw_dir), "/")
        assert q.returncode == 0 and q.stdout == "", q.stderr
        no = run_as(other_user, [PY, "-m", "fleetslurm", "lab", "stop"],
                    dict(env, HOME=other_user.pw_dir), "/")
        assert no.returncode == 1 and "Access/permission denied" in no.stderr, no.stdout
        stop = fs("lab", "stop")
        assert stop.returncode == 0 and "stopped" in stop.stdout
        assert fs("lab", "status").returncode == 1
    finally:
        fs("lab", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_inside_a_lab_job_commands_reach_the_lab_whatever_was_exported(lab: Lab,
                                                                       other_user) -> None:
    lab.start()
    (lab.work / "inner.sh").write_text(
        "#!/bin/sh\nsqueue -h -o '%i %u' -j $SLURM_JOB_ID > inner-$SLURM_JOB_ID.txt 2>&1\n")
    os.chmod(lab.work / "inner.sh", 0o644)
    # exported from a workstation: must not send the job's commands over ssh
    p = lab.fs("sbatch", "--parsable", "-o", "/dev/null", "inner.sh", user=other_user,
               env=dict(lab.env, FLEETSLURM_CONTROLLER="ssh://nowhere.invalid"))
    assert p.returncode != 0 and "nowhere.invalid" in p.stderr  # sbatch itself obeys it
    # exported into the job (the submitter's own sbatch used the lab)
    job_env = dict(lab.env)
    p = lab.fs("sbatch", "--parsable", "-o", "/dev/null",
               "--export=ALL,FLEETSLURM_CONTROLLER=ssh://nowhere.invalid", "inner.sh",
               user=other_user, env=job_env)
    assert p.returncode == 0, p.stderr
    job = p.stdout.strip()
    out = lab.work / f"inner-{job}.txt"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (out.exists() and out.read_text()):
        time.sleep(0.2)
    assert out.read_text() == f"{job} {other_user.pw_name}\n"

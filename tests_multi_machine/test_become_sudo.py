"""Issue 12 item 4 through sudo: a lab controller reaches a machine as a real
non-root service account with ``"become": "sudo"`` and the sudoers lines
fleetslurm documents. A second real user's job runs there as that user and
its output (small, with the ``ended`` event; large, streamed through the
sudo entry) comes home owned by the user. The agent's default workdir is the
root spool (``/var/lib/fleetslurm-node/<cluster id>/<machine>``, 0711 root),
not a home. Without the sudoers rule the machine is refused with a message
naming it and the lines to add."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from fleetslurm.errors import AuthenticationFailed
from fleetslurm.paths import ROOT_WORKDIR
from fleetslurm.transport import ssh_become
from fleetslurm.transport.ssh import SSHTransport

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from second_user import other_user  # noqa: E402,F401  (fixture)

from .ssh_lab import SshLab  # noqa: E402
from .sshd_machines import Machine  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"
SYSTEM_PYTHON = "/usr/bin/python3"


def _needs() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (a service account, sudoers)")
    for tool in ("sudo", "visudo", "useradd", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (apt-get install -y sudo)")
    if not os.path.exists(ssh_become.SFTP_SERVERS[0]):
        pytest.skip(f"needs OpenSSH's {ssh_become.SFTP_SERVERS[0]}")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"needs {SYSTEM_PYTHON}")


@pytest.fixture
def service_account() -> Iterator[pwd.struct_passwd]:
    """A fresh non-root account the controller logs in as; removed after."""
    _needs()
    name = f"fsvc{uuid.uuid4().hex[:8]}"
    # a password of "*" (none can match) rather than useradd's "!": sshd without
    # PAM refuses a login to a locked ("!") account, keys or not
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", "--password", "*", name],
                   check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        # userdel refuses (exit 8) while a process of the account lives: its
        # last sshd session may take a moment to end after the machine's
        deadline = time.monotonic() + 10
        while subprocess.run(["userdel", "-r", name], capture_output=True).returncode == 8 \
                and time.monotonic() < deadline:
            time.sleep(0.1)


@pytest.fixture
def sudo_machine(sshd_pool) -> Iterator[Machine]:
    """A loopback sshd whose files a non-root login can read (the pool's live
    under root's private pytest directory)."""
    root = Path(tempfile.mkdtemp(prefix="fsl-sudo-m-", dir="/tmp"))
    os.chmod(root, 0o755)
    m = Machine("s1", 40, root / "s1", sshd_pool.client_key)
    os.chmod(m.etc / "authorized_keys", 0o644)
    m.start()
    try:
        yield m
    finally:
        m.kill(jobs=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def root_spool() -> Iterator[Path]:
    """ROOT_WORKDIR as the test leaves it: what the test made there is removed."""
    spool = Path(ROOT_WORKDIR)
    existed = spool.exists()
    before = set(os.listdir(spool)) if existed else set()
    yield spool
    if not existed:
        shutil.rmtree(spool, ignore_errors=True)
        return
    for name in set(os.listdir(spool)) - before:
        path = spool / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


@pytest.fixture
def sudoers() -> Iterator:
    """``sudoers(text)`` installs ``text`` as a file of /etc/sudoers.d (checked
    with ``visudo -cf`` first); removed after the test."""
    made: list[Path] = []

    def install(text: str) -> Path:
        path = Path("/etc/sudoers.d") / f"fleetslurm-test-{uuid.uuid4().hex[:8]}"
        tmp = Path(tempfile.mkdtemp()) / "rule"
        tmp.write_text(text)
        check = subprocess.run(["visudo", "-cf", str(tmp)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        os.chmod(tmp, 0o440)
        shutil.move(str(tmp), path)
        shutil.rmtree(tmp.parent, ignore_errors=True)
        made.append(path)
        return path

    yield install
    for path in made:
        path.unlink(missing_ok=True)


def _entry(m: Machine, account: pwd.struct_passwd) -> dict:
    return m.config_entry(ssh_user=account.pw_name, become="sudo", python=SYSTEM_PYTHON)


def _refusal(m, account, make_config):  # type: ignore[no-untyped-def]
    """The config files made, and what starting machine ``m``'s agent through
    sudo as ``account`` with them is refused with."""
    files = make_config([m], overrides={m.name: _entry(m, account)})
    config = files.config
    t = SSHTransport(m.name, config.machines[m.name], config, files.paths)
    try:
        with pytest.raises(AuthenticationFailed) as caught:
            t.start_agent()
    finally:
        t.close()
    return files, str(caught.value)


def test_the_readme_gives_the_sudoers_lines_fleetslurm_asks_for() -> None:
    text = ssh_become.sudoers_text("fleetslurm", SYSTEM_PYTHON, ssh_become.SFTP_SERVERS[0])
    assert text in README.read_text(), text


def test_without_the_sudoers_rule_the_machine_is_refused_with_the_lines_to_add(
        service_account, sudo_machine, make_config, root_spool, ssh_home) -> None:
    m, account = sudo_machine, service_account
    files, msg = _refusal(m, account, make_config)
    rule = ssh_become.sudoers_text(account.pw_name, SYSTEM_PYTHON, ssh_become.SFTP_SERVERS[0])
    assert msg.startswith(f"node {m.name}: \"become\": \"sudo\" but sudo would not run "), msg
    assert "a password is required" in msg, msg
    assert rule.strip().replace("\n", " / ") in msg, msg
    assert "\n" not in msg
    # `fleetslurm nodes check`: the same message, one line, no traceback
    env = dict(os.environ, **files.env, PYTHONPATH=str(README.parent))
    proc = subprocess.run([sys.executable, "-m", "fleetslurm", "nodes", "check"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"error: {msg}" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_files_and_resumed_streamed_copies_go_through_sudo_as_root(
        service_account, sudo_machine, make_config, root_spool, ssh_home, sudoers,
        tmp_path) -> None:
    """SFTP writes and reads, and the streamed copies both ways (a resumed one
    too), on a root-only directory the account itself cannot enter."""
    m, account = sudo_machine, service_account
    sudoers(ssh_become.sudoers_text(account.pw_name, SYSTEM_PYTHON,
                                    ssh_become.SFTP_SERVERS[0]))
    files = make_config([m], overrides={m.name: _entry(m, account)})
    config = files.config
    private = root_spool / f"private-{uuid.uuid4().hex[:8]}"
    t = SSHTransport(m.name, config.machines[m.name], config, files.paths)
    try:
        t.start_agent().close()
        os.makedirs(private, mode=0o700)
        assert subprocess.run(["setpriv", f"--reuid={account.pw_uid}", "--clear-groups",
                               "ls", str(private)], capture_output=True).returncode != 0
        t.put_bytes(b"small\n", f"{private}/a.txt")
        assert t.get_bytes(f"{private}/a.txt") == b"small\n"
        data = os.urandom(3 << 20)
        src = tmp_path / "src.bin"
        src.write_bytes(data)
        # a copy cut short before: its first MiB is on the machine already
        (private / ".b.bin.part").write_bytes(data[:1 << 20])
        with open(src, "rb") as f:
            sent = t.put_file(f, f"{private}/b.bin", 0o640)
        assert (sent.size, sent.offset) == (len(data), 1 << 20)
        st = os.stat(private / "b.bin")
        assert (st.st_uid, st.st_mode & 0o777) == (0, 0o640)
        assert (private / "b.bin").read_bytes() == data
        dest = tmp_path / "back.bin"
        dest.write_bytes(data[:12345])  # resumed after what is here
        got = t.get_file(f"{private}/b.bin", str(dest))
        assert (got.size, got.offset) == (len(data), 12345)
        assert dest.read_bytes() == data
    finally:
        t.close()


def test_a_rule_for_the_sftp_server_alone_is_refused_naming_the_python_entry(
        service_account, sudo_machine, make_config, root_spool, ssh_home, sudoers) -> None:
    m, account = sudo_machine, service_account
    sudoers(f'{account.pw_name} ALL=(root) NOPASSWD: {ssh_become.SFTP_SERVERS[0]} ""\n')
    files, msg = _refusal(m, account, make_config)
    assert msg.startswith(f"node {m.name}: \"become\": \"sudo\" but sudo would not run "
                          f"{SYSTEM_PYTHON} {ssh_become.ENTRY} as root for {account.pw_name} "
                          "without a password (sudo: a password is required); add to "
                          "/etc/sudoers.d/fleetslurm there"), msg
    # the entry was written (as root, through the sftp-server the rule allows)
    st = os.stat(ssh_become.ENTRY)
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o644)
    assert Path(ssh_become.ENTRY).read_bytes() == ssh_become.entry_source()


def test_the_lab_controller_marks_a_machine_without_the_rule_down_with_the_message(
        service_account, sudo_machine, make_config, root_spool) -> None:
    m, account = sudo_machine, service_account
    files = make_config([m], heartbeat_interval=0.5, overrides={m.name: _entry(m, account)})
    lab = SshLab(files, os.environ.get("PATH", "/usr/bin:/bin"))
    try:
        deadline = time.monotonic() + 60
        shown = ""
        while time.monotonic() < deadline and "sudoers" not in shown:
            shown = lab.fs("scontrol", "show", "node", m.name).stdout
            time.sleep(0.3)
        assert "State=DOWN" in shown, shown
        assert (f"Reason=node {m.name}: \"become\": \"sudo\" but sudo would not run "
                f"{ssh_become.SFTP_SERVERS[0]} as root for {account.pw_name}") in shown, shown
        assert "Traceback" not in (lab.state / "controller.log").read_text()
    finally:
        lab.close()


def test_a_job_through_sudo_runs_as_its_user_and_comes_home_as_its_user(
        service_account, sudo_machine, other_user, make_config, root_spool,
        sudoers) -> None:
    m, account, user = sudo_machine, service_account, other_user
    entry = _entry(m, account)
    del entry["workdir"]  # the default: a privileged agent's is the root spool
    files = make_config([m], heartbeat_interval=0.5, kill_wait=2)
    files.data["machines"][m.name] = entry
    files.path.write_text(json.dumps(files.data, indent=2))
    sudoers(ssh_become.sudoers_text(account.pw_name, SYSTEM_PYTHON,
                                    ssh_become.SFTP_SERVERS[0]))
    lab = SshLab(files, os.environ.get("PATH", "/usr/bin:/bin"))
    try:
        small = lab.fs("sbatch", "--parsable", "-o", "small-%j.out", "--wrap",
                       "id -u; id -g; echo $HOME $USER", user=user)
        big = lab.fs("sbatch", "--parsable", "-o", "big-%j.out", "--wrap",
                     "id -u; head -c 400000 /dev/zero | tr '\\0' x", user=user)
        assert small.returncode == 0 and big.returncode == 0, small.stderr + big.stderr
        small_id, big_id = small.stdout.strip(), big.stdout.strip()
        assert lab.wait(small_id) == "COMPLETED", (lab.state / "controller.log").read_text()
        assert lab.wait(big_id) == "COMPLETED"
        out = lab.work / f"small-{small_id}.out"
        lines = out.read_text().splitlines()
        assert lines == [str(user.pw_uid), str(user.pw_gid), f"{user.pw_dir} {user.pw_name}"]
        big_out = lab.work / f"big-{big_id}.out"
        text = big_out.read_text()
        assert text.startswith(f"{user.pw_uid}\n") and text.count("x") == 400000
        for path in (out, big_out):
            assert os.stat(path).st_uid == user.pw_uid, path
        # the workdir: root's, 0711, in the spool, not in the account's home
        workdirs = list(root_spool.glob(f"*/{m.name}"))
        assert len(workdirs) == 1, workdirs
        for d in (root_spool, workdirs[0].parent, workdirs[0]):
            st = os.stat(d)
            assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o711), (d, oct(st.st_mode))
        assert (workdirs[0] / "fleet-owner.json").is_file()
        assert not (Path(account.pw_dir) / ".fleetslurm-node").exists()
        entry_st = os.stat(ssh_become.ENTRY)
        assert (entry_st.st_uid, entry_st.st_mode & 0o7777) == (0, 0o644)
    finally:
        lab.close()


def _root_transport(m: Machine, make_config, cluster_id: str) -> SSHTransport:
    """A root login to ``m`` with the default workdir, as the controller makes it."""
    from fleetslurm.paths import fleet_workdir

    files = make_config([m])
    del files.data["machines"][m.name]["workdir"]
    files.path.write_text(json.dumps(files.data, indent=2))
    config = files.config
    machine = config.machines[m.name]
    machine = machine.model_copy(update={"workdir": fleet_workdir(
        machine.workdir, cluster_id, True, m.name)})
    return SSHTransport(m.name, machine, config, files.paths)


def test_a_root_agents_default_workdir_is_the_root_spool_not_roots_home(
        sshd_fleet, make_config, root_spool, ssh_home) -> None:
    (m1,) = sshd_fleet(1)
    cid = uuid.uuid4().hex[:8]
    t = _root_transport(m1, make_config, cid)
    try:
        t.start_agent().close()
    finally:
        t.close()
    assert t.workdir == f"{ROOT_WORKDIR}/{cid}/{m1.name}"
    for d in (root_spool, root_spool / cid, root_spool / cid / m1.name):
        st = os.stat(d)
        assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o711), (d, oct(st.st_mode))
    assert not (Path("/root/.fleetslurm-node") / cid).exists()


def test_a_root_agent_with_runs_in_the_old_default_keeps_it(
        sshd_fleet, make_config, root_spool, ssh_home) -> None:
    (m1,) = sshd_fleet(1)
    cid = uuid.uuid4().hex[:8]
    old = Path("/root/.fleetslurm-node") / cid / m1.name
    old.mkdir(parents=True)
    try:
        t = _root_transport(m1, make_config, cid)
        try:
            t.start_agent().close()
        finally:
            t.close()
        assert t.workdir == str(old)
        assert not (root_spool / cid).exists()
    finally:
        shutil.rmtree(old.parent)
        try:
            old.parent.parent.rmdir()  # when no other fleet uses it
        except OSError:
            pass


def test_a_dropped_link_through_sudo_loses_no_job(
        service_account, sudo_machine, other_user, make_config, root_spool,
        sudoers) -> None:
    """Every SSH session to the machine dies while a user's job runs: the
    job's supervisor (root's, detached) outlives sudo and the agent, a new
    agent started through sudo finds it, and its output comes home."""
    m, account, user = sudo_machine, service_account, other_user
    sudoers(ssh_become.sudoers_text(account.pw_name, SYSTEM_PYTHON,
                                    ssh_become.SFTP_SERVERS[0]))
    files = make_config([m], heartbeat_interval=0.5, kill_wait=2,
                        overrides={m.name: _entry(m, account)})
    lab = SshLab(files, os.environ.get("PATH", "/usr/bin:/bin"))
    try:
        p = lab.fs("sbatch", "--parsable", "-o", "drop-%j.out", "--wrap",
                   "sleep 3; id -u", user=user)
        assert p.returncode == 0, p.stderr
        job = p.stdout.strip()
        deadline = time.monotonic() + 60
        while lab.sacct(job, "State") != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert lab.sacct(job, "State") == "RUNNING"
        m.kill_sessions(jobs=False)
        assert lab.wait(job) == "COMPLETED", (lab.state / "controller.log").read_text()
        out = lab.work / f"drop-{job}.out"
        assert out.read_text() == f"{user.pw_uid}\n"
        assert os.stat(out).st_uid == user.pw_uid
        assert lab.sacct(job, "NodeList") == m.name
        # a second agent (through sudo again) found the running job
        starts = [line for line in (m.workdir / "agent.log").read_text().splitlines()
                  if " started, " in line]
        assert len(starts) >= 2 and "1 job(s) found" in starts[1], starts
    finally:
        lab.close()

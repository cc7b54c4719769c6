"""The thin client (cli/thin.py, answered by cli/thin_serve.py in the
controller) prints what the full path prints: the same stdout, stderr and
exit status, with SLURM's input variables too, and the jobs it submits are
the full path's; what it cannot do exactly so it leaves to the full path."""

from __future__ import annotations

import getpass
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fleetslurm.cli import thin_serve
from fleetslurm.shims import install_shims

sys.path.insert(0, str(Path(__file__).parent))
from second_user import other_user  # noqa: E402,F401  (fixture)
from test_lab import lab  # noqa: E402,F401  (fixture)

THIN = Path(__file__).resolve().parent.parent / "fleetslurm" / "cli" / "thin.py"

#: runs the thin client alone (as the shim does); exit 99: it left the command
#: to the full path
HELPER = """import sys, _frozen_importlib_external as f
m = type(sys)("fleetslurm_thin")
f.SourceFileLoader("fleetslurm_thin", sys.argv[1]).exec_module(m)
code = m.main(sys.argv[2], sys.argv[3:])
sys.stdout.flush()
sys.exit(99 if code is None else code)
"""


@pytest.fixture
def shims(fleet):
    fleet.run("controller", "start", check=True)
    install_shims(fleet.root / "bin")
    return fleet.root / "bin"


def thin(fleet, prog, *argv, env=None, input=None, cwd=None, umask=None):
    e = dict(fleet.env, **(env or {}))
    return subprocess.run([sys.executable, "-S", "-c", HELPER, str(THIN), prog, *argv],
                          env=e, input=input, capture_output=True, text=True,
                          cwd=str(cwd or fleet.work), timeout=60,
                          preexec_fn=None if umask is None else (lambda: os.umask(umask)))


def full(fleet, shims, prog, *argv, env=None, input=None, cwd=None):
    e = dict(fleet.env, FLEETSLURM_NO_FAST_PATH="1", **(env or {}))
    return subprocess.run([str(shims / prog), *argv], env=e, input=input,
                          capture_output=True, text=True, cwd=str(cwd or fleet.work),
                          timeout=60)


def same(fleet, shims, prog, *argv, env=None, input=None, ids=False, cwd=None):
    """Both paths' (exit, stdout, stderr); the thin one must not have fallen back."""
    a = thin(fleet, prog, *argv, env=env, input=input, cwd=cwd)
    b = full(fleet, shims, prog, *argv, env=env, input=input, cwd=cwd)
    assert a.returncode != 99, (argv, env, a.stderr)
    got = [(p.returncode, p.stdout, p.stderr) for p in (a, b)]
    if ids:  # two submissions: two job ids
        got = [(c, re.sub(r"\d+", "N", o), e) for c, o, e in got]
    assert got[0] == got[1], (prog, argv, env)
    return a


def test_squeue_prints_what_the_full_path_prints(fleet, shims):
    me = getpass.getuser()
    held = [fleet.sbatch("-H", "-J", f"held{i}", "-o", "/dev/null", "--wrap", "true")
            for i in range(3)]
    array = fleet.sbatch("-H", "--array=0-3", "-o", "/dev/null", "--wrap", "true")
    cases = [
        [], ["-h"], ["--me"], ["-r"], ["-u", me], ["-u", "nosuchuser"], ["-j", str(held[0])],
        ["-j", "999999"], ["-j", "abc"], ["-j", f"{array}_2"], ["-t", "PD"], ["-t", "bogus"],
        ["-o", "%i %T %j"], ["-o", "%i %Z %q %bogus"], ["-O", "JobID,Name"], ["-h", "-l"],
        ["-p", "debug"], ["-p", "nosuch"], ["-w", "localhost"], ["--version"], ["--help"],
        ["--bogus"], ["-hr"], ["5"], ["-o", "%i", "-O", "JobID"], ["-i", "0"],
        ["--name=held1"], ["-S", "i"],
    ]
    for argv in cases:
        same(fleet, shims, "squeue", *argv)
    for env in ({"SQUEUE_FORMAT": "%i %j"}, {"SQUEUE_STATES": "all"}, {"SQUEUE_USERS": me},
                {"SQUEUE_SORT": "-i"}, {"SQUEUE_FORMAT2": "JobID,State"},
                {"SQUEUE_STATES": "bogus"}, {"SLURM_CLUSTERS": "testfleet"},
                {"SQUEUE_PARTITION": "short"}, {"ODD": "\udcff\u00e9"},
                {"SQUEUE_FORMAT": "%i \udcff"}):
        same(fleet, shims, "squeue", "-h", env=env)
    listing = thin(fleet, "squeue", "-h", "-o", "%i %T").stdout
    assert all(f"{j} PENDING" in listing for j in held)  # the listing itself, not only agreement


def test_sbatch_prints_what_the_full_path_prints_and_submits_the_same_job(fleet, shims):
    work = fleet.work
    (work / "job.sh").write_text("#!/bin/sh\n#SBATCH -J fromfile\n#SBATCH -H\necho hi\n")
    (work / "bad.sh").write_text("echo no shebang\n")
    (work / "closed.sh").write_text("#!/bin/sh\ntrue\n")
    os.chmod(work / "closed.sh", 0)
    (work / "latin.sh").write_bytes(b"#!/bin/sh\n#SBATCH -H\necho \xe9t\xe9\n")
    errors = [
        ["--version"], ["--help"], ["--usage"], ["--bogus"], ["-H"], ["nosuch.sh"],
        ["bad.sh"], ["--wrap", "true", "extra"], ["-p", "nosuch", "--wrap", "true"],
        ["--mem=1PB", "--wrap", "true"], ["-t", "bogus", "--wrap", "true"],
        ["--gres=gpu:9", "--wrap", "true"], ["--mail-type=bogus", "--wrap", "true"],
    ]
    if os.getuid() != 0:  # root reads a file of mode 0 all the same
        errors.append(["closed.sh"])
    for argv in errors:
        same(fleet, shims, "sbatch", *argv)
    same(fleet, shims, "sbatch", "-H", input="")  # empty stdin
    submits = [
        (["-H", "-o", "/dev/null", "--wrap", "true"], None, None),
        (["--parsable", "-H", "-J", "x y", "--wrap", "echo 'a b'"], None, None),
        (["-o", "/dev/null", "job.sh", "a", "b c"], None, None),
        (["-o", "/dev/null", "latin.sh"], None, None),
        (["-o", "/dev/null"], None, "#!/bin/sh\n#SBATCH -H\n#SBATCH -J piped\ntrue\n"),
        (["-o", "/dev/null", "--wrap", "true"], {"SBATCH_HOLD": "1", "SBATCH_JOB_NAME": "envname"},
         None),
        (["--wrap", "true"], {"SBATCH_PARTITION": "nosuch"}, None),
        (["-H", "--wrap", "true"], {"SLURM_UMASK": "0077"}, None),
        (["-H", "--wrap", "true"], {"SBATCH_EXPORT": "NONE"}, None),
        (["-H", "-J", "odd\udcff", "--wrap", "true"], {"ODD": "\udcff"}, None),
    ]
    for argv, env, stdin in submits:
        a = same(fleet, shims, "sbatch", *argv, env=env, input=stdin, ids=True)
        if a.returncode == 0:
            jobs = sorted(int(n) for n in re.findall(r"\d+", a.stdout))[-1:]
            mine = fleet.record(jobs[0])
            theirs = fleet.record(jobs[0] + 1)  # the full path's, submitted right after
            for key in ("name", "workdir", "command", "partition", "nice",
                        "stdout_pattern", "submit_host", "uid", "user", "held", "time_limit"):
                assert mine.get(key) == theirs.get(key), (argv, key)
    # what the job gets from the caller: environment, umask, directory
    sub = work / "sub"
    sub.mkdir()
    p = thin(fleet, "sbatch", "--parsable", "-o", str(work / "out.txt"), "--wrap",
             'umask; echo "$MARK"; pwd', env={"MARK": "thin one"}, cwd=sub, umask=0o027)
    fleet.wait(int(p.stdout))
    assert (work / "out.txt").read_text().split("\n")[:3] == [
        "0027", "thin one", str(sub)]


def test_sacct_with_job_ids_prints_what_the_full_path_prints(fleet, shims):
    """What submitit polls (``sacct -o JobID,State,NodeList --parsable2 -j
    IDS``) and the rest of ``-j``'s calls; without ``-j`` (today's jobs) or
    with ``-S``/``-E`` it reads the client's local time: the full path."""
    done = fleet.sbatch("-J", "ok", "-o", "/dev/null", "--wrap", "true")
    bad = fleet.sbatch("-J", "bad", "-o", "/dev/null", "--wrap", "exit 3")
    held = fleet.sbatch("-H", "-o", "/dev/null", "--wrap", "true")
    fleet.wait(done)
    fleet.wait(bad)
    ids = f"{done},{bad},{held}"
    for argv in (["-o", "JobID,State,NodeList", "--parsable2", "-j", ids],
                 ["-j", ids], ["-X", "-n", "-P", "-j", ids], ["-j", "999999"], ["-j", "abc"],
                 ["-j", ids, "-s", "F"], ["-j", ids, "-s", "bogus"], ["-j", ids, "-o", "Bogus"],
                 ["-j", ids, "-a", "--name=bad"], ["--version"], ["--helpformat"], ["x"],
                 ["-j", ids, "-p"], ["-j", ids, "-o", "JobID,Start,End,Elapsed"]):
        same(fleet, shims, "sacct", *argv)
    same(fleet, shims, "sacct", "-j", ids, env={"SACCT_FORMAT": "JobID,ExitCode"})
    out = thin(fleet, "sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ids).stdout
    assert out.splitlines() == [f"{done}|COMPLETED", f"{bad}|FAILED", f"{held}|PENDING"]
    for argv in ([], ["-S", "now-1hour", "-j", ids], ["-E", "now", "-j", ids]):
        assert thin(fleet, "sacct", *argv).returncode == 99, argv


def test_what_needs_the_clients_own_process_goes_the_full_way(fleet, shims):
    """sbatch -W (it waits), --test-only and squeue -l (the local time), -i
    (it repeats): nothing is done by the thin client; the full path runs them."""
    for prog, argv, stdin in [
        ("sbatch", ["-W", "-o", "/dev/null", "--wrap", "true"], None),
        ("sbatch", ["--test-only", "--wrap", "true"], None),
        ("sbatch", ["-o", "/dev/null"], "#!/bin/sh\n#SBATCH -W\ntrue\n"),
        ("squeue", ["-l"], None), ("squeue", ["--json"], None), ("squeue", ["-i", "5"], None),
    ]:
        before = fleet.run("squeue", "-h", "-t", "all", "-o", "%i").stdout
        p = thin(fleet, prog, *argv, input=stdin)
        assert p.returncode == 99 and p.stdout == "" and p.stderr == "", (prog, argv)
        after = fleet.run("squeue", "-h", "-t", "all", "-o", "%i").stdout
        assert before == after  # nothing submitted
    # through the shim: stdin read by the thin client is given back to the full path
    p = subprocess.run([str(shims / "sbatch"), "--parsable", "-o", "/dev/null"],
                       input="#!/bin/sh\n#SBATCH -W\nexit 3\n", env=fleet.env,
                       capture_output=True, text=True, cwd=str(fleet.work), timeout=60)
    assert p.returncode == 3, p.stderr
    assert fleet.record(int(p.stdout.split()[0]))["state"] == "FAILED"
    for env in ({"FLEETSLURM_NO_FAST_PATH": "1"}, {"FLEETSLURM_DEBUG": "1"},
                {"FLEETSLURM_CONTROLLER": "ssh://nosuchhost"},
                {"FLEETSLURM_STEPS_DIR": "/nonexistent"}):
        assert thin(fleet, "squeue", env=env).returncode == 99, env


def test_the_shims_take_the_thin_path_and_start_a_controller_when_none_runs(fleet, shims):
    e = dict(fleet.env, PYTHONPATH="")
    p = subprocess.run([sys.executable, "-S", "-X", "importtime", str(shims / "squeue")],
                       env=e, capture_output=True, text=True, cwd=str(fleet.work), timeout=60)
    assert p.returncode == 0 and "JOBID" in p.stdout, p.stderr
    imported = {line.split("|")[-1].strip() for line in p.stderr.splitlines()}
    assert not {m for m in imported if m.startswith("fleetslurm") or m in (
        "json", "re", "pathlib", "socket", "enum", "os")}, imported
    fleet.stop()
    p = subprocess.run([str(shims / "squeue"), "-h"], env=fleet.env, capture_output=True,
                       text=True, cwd=str(fleet.work), timeout=60)
    assert p.returncode == 0, p.stderr  # the full path started the controller again
    assert fleet.controller_pid()
    assert thin(fleet, "squeue", "-h").returncode == 0  # and the thin path answers again


def test_a_config_the_lookup_finds_elsewhere_is_said_by_both(fleet, shims, tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps(json.loads(Path(fleet.env["FLEETSLURM_CONFIG"]).read_text())))
    a = same(fleet, shims, "squeue", "-h", env={"FLEETSLURM_CONFIG": str(other)})
    assert "warning: the controller runs with" in a.stderr


def test_the_thin_commands_agree():
    from fleetslurm.cli import thin as thin_module
    from fleetslurm.shims import THIN_COMMANDS

    assert set(THIN_COMMANDS) == set(thin_module.COMMANDS) == set(thin_serve.COMMANDS)


def test_the_controller_answers_as_the_connections_uid_never_the_requests():
    seen = []

    def inner(op, args, uid, gid=-1):
        seen.append((op, uid, gid))
        if op == "squeue":
            return {"text": "LISTING\n", "known": True}
        return None

    handle = thin_serve.handler(inner, personal=False)
    base = {"prog": "squeue", "argv": ["-h"], "env": {"USER": "root"}, "cwd": "/",
            "umask": 0o22, "nice": 0, "files": {}}
    assert handle("thin", dict(base, uid=4321), 1234, 99) == {
        "fallback": "the client's uid is not its connection's"}
    assert seen == []
    reply = handle("thin", dict(base, uid=1234), 1234, 99)
    assert reply == {"code": 0, "io": [[1, "LISTING\n"]]}
    assert seen == [("squeue", 1234, 99)]
    assert handle("ping", {}, 7, 8) is None and seen[-1] == ("ping", 7, 8)
    with pytest.raises(Exception, match="malformed request 'thin'"):
        handle("thin", dict(base, uid=1234, argv="-h"), 1234, 99)


def test_in_a_lab_the_thin_client_is_answered_as_its_own_user(other_user, lab):
    """A lab's controller (a service account) runs the command for the
    connection's user: the job is theirs, ``--me`` is them, and a request
    that claims another uid goes the full way."""
    from second_user import run_as

    lab.start()
    env = dict(lab.env, HOME=other_user.pw_dir)

    def as_user(*argv, e=None):
        return run_as(other_user, [sys.executable, "-S", "-c", HELPER, str(THIN), *argv],
                      e or env, str(lab.work))

    p = as_user("sbatch", "--parsable", "-H", "-J", "labthin", "--wrap", "true")
    assert p.returncode == 0, p.stderr
    job = p.stdout.strip()
    q = as_user("squeue", "--me", "-h", "-o", "%i %u %j")
    assert q.returncode == 0 and q.stdout == f"{job} {other_user.pw_name} labthin\n", q
    full = run_as(other_user, [sys.executable, "-m", "fleetslurm", "squeue", "--me", "-h",
                               "-o", "%i %u %j"], dict(env, FLEETSLURM_NO_FAST_PATH="1"),
                  str(lab.work))
    assert full.stdout == q.stdout and full.returncode == 0
    # as root, --me is root's (none of the user's job)
    mine = thin_in(lab, "squeue", "--me", "-h")
    assert mine.returncode == 0 and job not in mine.stdout
    # a request claiming root's uid from the user's connection: not answered
    claim = ("import sys, _frozen_importlib_external as f\n"
             "m = type(sys)('t'); f.SourceFileLoader('t', sys.argv[1]).exec_module(m)\n"
             "import posix; posix.getuid = lambda: 0\n"
             "sys.exit(99 if m.main('squeue', ['--me']) is None else 0)\n")
    p = run_as(other_user, [sys.executable, "-S", "-c", claim, str(THIN)], env, str(lab.work))
    assert p.returncode == 99 and p.stdout == "", p


def thin_in(lab, prog, *argv):
    return subprocess.run([sys.executable, "-S", "-c", HELPER, str(THIN), prog, *argv],
                          env=lab.env, capture_output=True, text=True, cwd=str(lab.work),
                          timeout=60)


def test_a_bug_in_the_controller_is_the_commands_error_and_nothing_runs_twice(capsys):
    calls = []

    def inner(op, args, uid, gid=-1):
        calls.append(op)
        return {"job_id": 7}  # no "text": the squeue body trips over it

    handle = thin_serve.handler(inner, personal=False)
    args = {"prog": "squeue", "argv": [], "env": {}, "cwd": "/", "umask": 0o22, "nice": 0,
            "uid": 5, "files": {}}
    reply = handle("thin", args, 5, 5)
    assert reply["code"] == 1 and calls == ["squeue"]
    assert reply["io"] == [[2, "squeue: error: internal error in the controller: "
                               "KeyError: 'text'\n"]]
    assert "KeyError" in capsys.readouterr().err  # the traceback, for the controller's log

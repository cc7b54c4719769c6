"""Issue 13 end to end in a lab: a queue that is fair between people, QOS
limits that hold under concurrent submission, and sacctmgr changes refused
to anyone but root and the lab's service account (SLURM's SlurmUser).

Real Unix users (``useradd``; needs root), a lab controller run by a new
service account (``fleetslurm lab init`` / ``lab start``, every file under a
temporary FLEETSLURM_LAB_ROOT), one local machine declared with 4 CPUs (the
jobs only sleep). Every timing assertion reads the jobs' own records: each
job writes its start and end time (``date +%s.%N``) into its output file.
The real SLURM here has no slurmdbd, so its sacctmgr cannot run: the refusal's
wording is SLURM 22.05's (src/sacctmgr and the slurmdbd plugin's handling of
slurmdbd's answer), not compared live.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_lab import Lab, _user, lab_with  # noqa: E402

CPUS = 4
#: the job: its start and end times in its own output file
JOB = "date +%s.%N; sleep 1; date +%s.%N"
DENIED = ("sacctmgr: error: Your user doesn't have privilege to perform this action\n"
          " Error with request: Access/permission denied\n")
#: many sbatch calls in one process (a Python start per job would take longer
#: than the jobs): prints one job id per line
SUBMIT_MANY = ("import sys\nfrom fleetslurm.cli.sbatch_cmd import main\n"
               "for i in range(int(sys.argv[1])):\n"
               "    assert main(['--parsable', '-o', 'rec-%j.out', *sys.argv[2:]]) == 0\n")


@pytest.fixture(scope="module")
def fair_lab() -> Iterator[tuple[Lab, pwd.struct_passwd, pwd.struct_passwd]]:
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("setpriv"):
        pytest.skip("needs root, useradd and setpriv")
    import subprocess
    import uuid

    users = [_user(f"fsl{uuid.uuid4().hex[:10]}") for _ in range(2)]
    try:
        with lab_with({
                "cluster_name": "lab", "kill_wait": 2, "heartbeat_interval": 1.0,
                "priority": {"PriorityWeightFairshare": 100000},
                "machines": {"localhost": {"transport": "local", "cpus": CPUS,
                                           "memory_gb": 4, "hostname": "localhost"}}}) as lab:
            lab.start()
            yield lab, users[0], users[1]
    finally:
        for u in users:
            subprocess.run(["userdel", "-r", u.pw_name], capture_output=True)


def _submit(lab: Lab, user: pwd.struct_passwd, count: int, *options: str) -> list[int]:
    proc = lab.fs_python(SUBMIT_MANY, str(count), *options, "--wrap", JOB, user=user)
    assert proc.returncode == 0, proc.stderr
    ids = [int(x) for x in proc.stdout.split()]
    assert len(ids) == count, proc.stdout
    return ids


def _records(lab: Lab, ids: list[int]) -> dict[int, list[float]]:
    """Job id -> [start] or [start, end], from each job's output file."""
    out = {}
    for j in ids:
        try:
            lines = (lab.work / f"rec-{j}.out").read_text().splitlines()
        except OSError:
            continue
        # (a cancelled job's file also holds slurmstepd's line)
        times = [float(x) for x in lines if x.replace(".", "", 1).isdigit()]
        if times:
            out[j] = times[:2]
    return out


def _until(what, timeout: float = 90):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)


def test_a_second_user_starts_at_the_first_free_slot_behind_a_long_queue(fair_lab) -> None:
    """User A submits 40 jobs, user B then 5, equal shares: B's first job
    starts at the first free slot after its submission (at most the fleet's
    CPU count of A's jobs start in between), not behind A's queue."""
    lab, a, b = fair_lab
    a_jobs = _submit(lab, a, 40)
    # A runs (and so uses CPU time) for a while before B comes
    _until(lambda: len(_records(lab, a_jobs)) >= CPUS)
    time.sleep(1.5)
    b_submitted = time.time()
    b_jobs = _submit(lab, b, 5)
    first_b = min(_until(lambda: _records(lab, b_jobs)).values())[0]
    _until(lambda: len(_records(lab, b_jobs)) == len(b_jobs))
    cancel = lab.fs("scancel", "-u", a.pw_name)
    assert cancel.returncode == 0, cancel.stderr
    a_starts = sorted(r[0] for r in _records(lab, a_jobs).values())
    between = [t for t in a_starts if b_submitted < t < first_b]
    assert len(between) <= CPUS, (between, first_b - b_submitted)
    # and the rest of B's followed before most of A's queue
    last_b = max(r[0] for r in _records(lab, b_jobs).values())
    assert len([t for t in a_starts if t < last_b]) < 40 - 10, (a_starts, last_b)
    _until(lambda: not lab.fs("squeue", "-h", "-u", a.pw_name).stdout.strip())


def test_sacctmgr_changes_are_refused_to_users_and_allowed_to_the_service_account(
        fair_lab) -> None:
    lab, a, _b = fair_lab
    shown = lab.fs("sacctmgr", "show", "qos", "normal", "format=name,maxjobspu", "-P").stdout
    for change in (["modify", "qos", "normal", "set", "MaxJobsPerUser=100"],
                   ["modify", "account", a.pw_name, "set", "Fairshare=100"],
                   ["modify", "user", a.pw_name, "set", "MaxJobs=100"],
                   ["delete", "user", a.pw_name], ["delete", "account", a.pw_name]):
        proc = lab.fs("sacctmgr", "-i", *change, user=a)
        assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", DENIED), (change, proc)
    # an add is shown first, then refused (as slurmdbd refuses it), with or without -i
    for flags in (["-i"], []):
        proc = lab.fs("sacctmgr", *flags, "add", "account", "mine", user=a)
        assert (proc.returncode, proc.stderr) == (
            1, " Problem adding accounts: Access/permission denied\n"), proc
        assert proc.stdout == (" Adding Account(s)\n  mine\n Settings\n"
                               "  Description     = Account Name\n"
                               "  Organization    = Parent/Account Name\n"
                               " Associations\n  A = mine       C = lab       \n"), proc
    proc = lab.fs("sacctmgr", "-i", "add", "user", a.pw_name, "Account=root", user=a)
    assert (proc.returncode, proc.stderr) == (
        1, " Problem adding users: Access/permission denied\n"), proc
    proc = lab.fs("sacctmgr", "-i", "add", "qos", "mine", user=a)
    assert (proc.returncode, proc.stderr) == (
        1, " Problem adding QOS: Access/permission denied\n"), proc
    assert proc.stdout.startswith(" Adding QOS(s)\n  mine\n"), proc
    assert "mine" not in lab.fs("sacctmgr", "show", "qos", "-P").stdout
    assert lab.fs("sacctmgr", "show", "qos", "normal", "format=name,maxjobspu",
                  "-P").stdout == shown
    assert "mine" not in lab.fs("sacctmgr", "show", "account", "-P").stdout
    # reading is everyone's
    seen = lab.fs("sacctmgr", "show", "assoc", "format=account,user", "-P", "-n", user=a)
    assert seen.returncode == 0 and f"{a.pw_name}|{a.pw_name}" in seen.stdout.split(), seen
    seen = lab.fs("sshare", "-n", "-P", "-o", "account,user,rawshares", user=a)
    assert seen.returncode == 0 and f" {a.pw_name}|{a.pw_name}|1" in seen.stdout, seen
    # the service account is the lab's SlurmUser: it may
    svc = pwd.getpwnam(lab.svc)
    proc = lab.fs("sacctmgr", "-i", "modify", "account", a.pw_name, "set", "Fairshare=3",
                  user=svc)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (" Modified account associations...\n"
                           f"  C = lab        A = {a.pw_name} of root\n")
    assert lab.fs("sshare", "-a", "-P", "-n", "-o", "account,user,rawshares",
                  "-A", a.pw_name).stdout.splitlines()[0] == f"{a.pw_name}||3"
    assert lab.fs("sacctmgr", "-i", "modify", "account", a.pw_name, "set", "Fairshare=1",
                  user=svc).returncode == 0


def test_qos_max_jobs_per_user_holds_under_concurrent_submission(fair_lab) -> None:
    """MaxJobsPerUser=2 (set with sacctmgr), four processes of one user
    submitting at once: never more than 2 of their jobs run together (the
    fleet would run 4), and every job runs."""
    lab, _a, b = fair_lab
    svc = pwd.getpwnam(lab.svc)
    proc = lab.fs("sacctmgr", "-i", "modify", "qos", "normal", "set", "MaxJobsPerUser=2",
                  user=svc)
    assert proc.returncode == 0, proc.stderr
    try:
        ids: list[int] = []
        lock = threading.Lock()

        def one() -> None:
            got = _submit(lab, b, 3)
            with lock:
                ids.extend(got)

        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(ids)) == 12
        recs = _until(lambda: (lambda r: r if len(r) == 12 and all(len(v) == 2 for v in
                                                                   r.values()) else None)(
            _records(lab, ids)), timeout=120)
        # ends before starts at the same instant: a slot freed is a slot taken
        events = sorted([(s, 1) for s, _e in recs.values()] + [(e, -1) for _s, e in recs.values()],
                        key=lambda x: (x[0], x[1]))
        running = peak = 0
        for _t, step in events:
            running += step
            peak = max(peak, running)
        assert peak == 2, events
    finally:
        lab.fs("sacctmgr", "-i", "modify", "qos", "normal", "set", "MaxJobsPerUser=-1",
               user=svc)

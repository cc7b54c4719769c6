"""A lab job run as its user is sampled by its (root) supervisor: the user
reads its figures with sstat, and the samples are kept where the user
cannot write (the agent's workdir, root's), never in the user's job directory."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from second_user import other_user, shared_tmp  # noqa: E402,F401  (fixtures)
from test_lab_as_user import RootLab, _submit, root_lab  # noqa: E402,F401  (fixture)


def _kib(text: str) -> float:
    units = {"K": 1, "M": 1024, "G": 1 << 20}
    return float(text[:-1]) * units[text[-1]] if text[-1:] in units else 0.0


def test_a_users_job_is_sampled_and_sstat_shows_it_to_them(root_lab: RootLab,
                                                          other_user) -> None:
    lab, user = root_lab, other_user
    job = _submit(lab, user, "-o", "/dev/null", "--wrap",
                  "python3 -c 'import time\nkeep = bytearray(40 << 20)\nt = time.time()\n"
                  "while time.time() - t < 60: pass'")
    try:
        deadline = time.monotonic() + 60
        while True:
            p = lab.fs("sstat", "-j", f"{job}.batch", "-P", "-n", "-o", "JobID,MaxRSS,AveCPU",
                       user=user)
            row = p.stdout.strip().split("|")
            if p.returncode == 0 and len(row) == 3 and _kib(row[1]) > 35 * 1024:
                break  # the job's 40 MiB, measured
            assert time.monotonic() < deadline, (p.stdout, p.stderr)
            time.sleep(0.5)
        assert row[0] == f"{job}.batch" and p.stderr == ""
        files = list(lab.root.rglob("samples/*.json"))
        assert files, "no samples file"
        for f in files:
            st = os.stat(f)
            assert (st.st_uid, st.st_mode & 0o077) == (0, 0), f
            assert os.stat(f.parent).st_uid == 0
    finally:
        lab.fs("scancel", job, user=user)
        lab.wait(job)


def test_another_users_job_is_refused_as_slurmd_refuses_it(root_lab: RootLab,
                                                          other_user) -> None:
    """As the real SLURM 22.05 here answers a user's sstat of root's running
    job (checked on the oracle): the header, no row, slurmd's "Invalid user
    id" twice on stderr, exit 0; the job's owner (root) still reads it."""
    lab, user = root_lab, other_user
    p = lab.fs("sbatch", "--parsable", "-o", "/dev/null", "--wrap", "sleep 60")
    assert p.returncode == 0, p.stderr
    job = p.stdout.strip()
    try:
        deadline = time.monotonic() + 60
        while True:  # root's own figures, once there are some
            mine = lab.fs("sstat", "-j", f"{job}.batch", "-P", "-n", "-o", "JobID,NTasks")
            if mine.stdout.strip() == f"{job}.batch|1":
                break
            assert time.monotonic() < deadline, (mine.stdout, mine.stderr)
            time.sleep(0.5)
        theirs = lab.fs("sstat", "-j", f"{job}.batch", "-P", "-o", "JobID,MaxRSS", user=user)
        assert theirs.returncode == 0
        assert theirs.stdout == "JobID|MaxRSS\n"
        node = lab.fs("squeue", "-h", "-j", job, "-o", "%N").stdout.strip()
        assert theirs.stderr == (
            f"sstat: error: slurm_job_step_stat: there was an error with the request to {node} "
            "rc = Invalid user id\n"
            f"sstat: error: problem getting step_layout for StepId={job}.batch: Invalid user id\n")
    finally:
        lab.fs("scancel", job)
        lab.wait(job)

"""A FLEETSLURM_HOME the user cannot use (issue 10, case 13): every command
says which directory, why, and what to do; exit 1, no traceback. Run as a
real non-root user: root reads everything."""

from __future__ import annotations

import os
import sys
import time

import pytest

from second_user import other_user, run_as, shared_tmp  # noqa: F401  (fixtures)

COMMANDS = [["squeue"], ["sbatch", "--wrap", "true"], ["scancel", "5"], ["sinfo"],
            ["sacct"], ["scontrol", "show", "job", "5"]]
FIX = "set FLEETSLURM_HOME to a directory of your own (or unset it to use ~/.fleetslurm)"


def _run(user, home, cwd, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    env.pop("FLEETSLURM_CONFIG", None)
    env.update(FLEETSLURM_HOME=str(home), HOME=user.pw_dir, USER=user.pw_name,
               LOGNAME=user.pw_name)
    return run_as(user, [sys.executable, "-m", "fleetslurm.cli.main", *args], env,
                  str(cwd))


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_home_of_roots_is_named_with_the_fix(other_user, shared_tmp, cmd):
    home = shared_tmp / "roots-home"
    home.mkdir(mode=0o700)  # root's, as after `sudo sbatch` with this FLEETSLURM_HOME
    proc = _run(other_user, home, other_user.pw_dir, *cmd)
    assert (proc.returncode, proc.stdout) == (1, ""), proc
    assert proc.stderr == (
        f"{cmd[0]}: error: {home} belongs to another user (root, uid 0), not to you "
        f"({other_user.pw_name}, uid {other_user.pw_uid}): fleetslurm keeps its state and "
        f"its control socket only in a directory of your own; {FIX}\n")
    assert os.listdir(home) == []


@pytest.mark.parametrize("cmd", COMMANDS[:2], ids=[c[0] for c in COMMANDS[:2]])
def test_a_home_inside_a_closed_directory_names_the_closed_one(other_user, shared_tmp, cmd):
    closed = shared_tmp / "closed"
    closed.mkdir(mode=0o700)
    proc = _run(other_user, closed / "home", other_user.pw_dir, *cmd)
    assert (proc.returncode, proc.stdout) == (1, ""), proc
    assert proc.stderr == (
        f"{cmd[0]}: error: cannot use {closed}/home: you cannot enter {closed} (owner root, "
        f"uid 0, mode 700); {FIX}\n")


def test_the_users_own_home_works(other_user, shared_tmp):
    """The same user with a home of their own: the embedded default starts and
    runs a job as that user (the checks refuse only what is not theirs)."""
    home = os.path.join(other_user.pw_dir, "fsl-home")
    try:
        proc = _run(other_user, home, other_user.pw_dir, "sbatch", "--parsable", "--wrap",
                    "id -u")
        assert proc.returncode == 0, proc
        job = proc.stdout.strip()
        out = os.path.join(other_user.pw_dir, f"slurm-{job}.out")
        deadline = time.monotonic() + 60
        while not (os.path.exists(out) and open(out).read()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert open(out).read() == f"{other_user.pw_uid}\n"
        proc = _run(other_user, home, other_user.pw_dir, "squeue", "-h", "-t", "all",
                    "-o", "%i %u")
        assert proc.stdout == f"{job} {other_user.pw_name}\n", proc
        st = os.stat(home)
        assert (st.st_uid, st.st_mode & 0o777) == (other_user.pw_uid, 0o700)
    finally:
        _run(other_user, home, other_user.pw_dir, "controller", "stop")

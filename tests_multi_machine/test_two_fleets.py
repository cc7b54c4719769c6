"""Two controllers (two FLEETSLURM_HOMEs, one ssh user) on the same machines.

With the default workdir each fleet gets its own directory on every machine
(``~/.fleetslurm-node/<cluster id>``) and its own run keys: the second
controller's start cannot touch the first one's running job. With an
explicit workdir that the first fleet already uses, the second refuses the
machines (DOWN, the reason naming the fleet that owns the workdir) instead of
sharing them.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from fleetslurm.paths import DEFAULT_WORKDIR

from .test_fleet import Cli

REMOTE_HOME = Path.home()  # the machines' ssh user is root, as this process


def _cluster_id(cli: Cli) -> str:
    from fleetslurm.store import Store

    store = Store(cli.files.paths.db)
    try:
        return store.identity()[0]
    finally:
        store.close()


@pytest.fixture
def fleets(sshd_fleet, make_config, ssh_home, tmp_path):
    made: list[Cli] = []
    dirs: list[Path] = []

    def make(machines, name: str, **overrides) -> Cli:
        files = make_config(machines, heartbeat_interval=0.5, kill_wait=2,
                            overrides={m.name: overrides for m in machines})
        cli = Cli(files, tmp_path / f"submit-{name}")
        made.append(cli)
        cli.run("sinfo", check=True)
        if overrides.get("workdir") == DEFAULT_WORKDIR:
            dirs.append(REMOTE_HOME / DEFAULT_WORKDIR[2:] / _cluster_id(cli))
        return cli

    yield make
    for cli in made:
        cli.run("scancel", "-u", "root")
        cli.stop()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
        try:
            d.parent.rmdir()  # when no other fleet uses it
        except OSError:
            pass


def test_a_second_controller_on_the_default_workdir_leaves_the_first_ones_job_alone(
        sshd_fleet, fleets, tmp_path: Path) -> None:
    m1, m2 = sshd_fleet(2)
    marks = tmp_path / "marks"
    go = tmp_path / "go"  # the first fleet's job runs until the checks below are done
    first = fleets([m1, m2], "a", workdir=DEFAULT_WORKDIR)
    first.wait_nodes({"m1": "idle", "m2": "idle"})
    job = first.sbatch("-w", "m1", "--wrap",
                       f"echo a >> {marks}; while [ ! -e {go} ]; do sleep 0.1; done; "
                       f"echo a-done >> {marks}")
    first.wait(job, {"RUNNING"})
    second = fleets([m1, m2], "b", workdir=DEFAULT_WORKDIR)
    second.wait_nodes({"m1": "idle", "m2": "idle"})
    assert _cluster_id(first) != _cluster_id(second)
    # the second fleet's jobs (same job ids) run beside the first one's
    theirs = second.sbatch("-w", "m1", "--wrap", f"echo b >> {marks}")
    assert theirs == job
    assert second.wait(theirs)["state"] == "COMPLETED"
    time.sleep(2)
    assert first.records(job)[0]["state"] == "RUNNING"
    go.touch()
    rec = first.wait(job, timeout=60)
    assert (rec["state"], rec["restart_count"]) == ("COMPLETED", 0), rec
    assert sorted(marks.read_text().split()) == ["a", "a-done", "b"]
    for cli in (first, second):
        for name in ("m1", "m2"):  # one per machine: the test machines share a home
            workdir = REMOTE_HOME / DEFAULT_WORKDIR[2:] / _cluster_id(cli) / name
            assert (workdir / "fleet-owner.json").is_file()


def test_a_workdir_another_fleet_owns_is_refused_with_its_name(
        sshd_fleet, fleets, tmp_path: Path) -> None:
    m1, m2 = sshd_fleet(2)
    marks = tmp_path / "marks"
    first = fleets([m1, m2], "a")  # the explicit workdir of the test machines
    first.wait_nodes({"m1": "idle", "m2": "idle"})
    job = first.sbatch("-w", "m1", "--wrap",
                       f"echo a >> {marks}; sleep 4; echo a-done >> {marks}")
    first.wait(job, {"RUNNING"})
    second = fleets([m1, m2], "b")
    second.wait_nodes({"m1": "down*", "m2": "down*"})
    reason = second.run("scontrol", "show", "node", "m1", check=True).stdout
    assert f"workdir {m1.workdir} belongs to fleet 'loopback'" in reason, reason
    assert f"cluster id {_cluster_id(first)}" in reason, reason
    assert "give machine m1 another" in reason, reason
    assert f"delete {m1.workdir}/fleet-owner.json there" in reason, reason
    rec = first.wait(job, timeout=60)
    assert (rec["state"], rec["restart_count"]) == ("COMPLETED", 0), rec
    assert marks.read_text() == "a\na-done\n"
    # nothing of the second fleet ran there
    assert second.run("sinfo", "-h", "-o", "%t", check=True).stdout.split() == ["down*"]

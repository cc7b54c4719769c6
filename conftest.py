"""Loaded by pytest before any test module (every test directory is below).

Hypothesis runs the "hypothesis" entry points of every installed package when
it is first imported; trio 0.35 (pulled in by selenium) registers one that
no longer exists and crashes the session at its end. No test here relies on
a third-party Hypothesis plugin.
"""

import os

os.environ.setdefault("HYPOTHESIS_NO_PLUGINS", "1")


# -- pytest-xdist (README, "Tests": python3 -m pytest -q -n 4 --dist loadfile) --
#
# Each test file runs whole on one worker, in its own order (the files were
# written to run alone: module fixtures, a file's tests sharing a state),
# and the files that share one resource of this machine run on the same
# worker, one after another (a scheduler of our own: xdist's loadgroup
# passes its marks through a node id that pytest 9.2 no longer lets it
# change). The longest groups start first, so none is left to run alone at
# the end. A few tests that measure how much CPU a process gets run while no
# other worker runs a test. Without xdist none of this applies.

import fcntl  # noqa: E402
from typing import Iterator  # noqa: E402

import pytest  # noqa: E402

#: the real one-node SLURM (tests_slurm's oracle and its GRES twin): one
#: slurmctld, one node whose CPUs the differential suite compares states,
#: reasons and queue output on, so no other test's jobs may run there meanwhile
_REAL_SLURM = ("tests_slurm/", "tests/test_seeds_slurm.py", "tests/test_executor_backends.py",
               "tests/test_sprio.py")

#: groups that take a minute or more (a whole-suite run's --durations), longest first
_LONG_FIRST = ["real-slurm", "tests/test_benchmarks_smoke.py", "tests/test_e2e_local.py",
               "tests/test_arrays_e2e.py", "tests_multi_machine/test_workstation_fleet.py",
               "tests_multi_machine/test_fleet.py", "tests_multi_machine/test_become_sudo.py",
               "tests/test_executor.py", "tests_multi_machine/test_clients_submitit.py",
               "tests_multi_machine/test_databench_fleet.py", "tests/test_dashboard_live.py",
               "tests/test_dashboard.py", "tests/test_dashboard_queue.py",
               "tests/test_cpu_binding.py", "tests/test_mail.py",
               "tests_multi_machine/test_transfer.py", "tests/test_cli_errors.py",
               "tests/test_lab.py", "tests/test_signals.py"]

#: tests that compare the CPU a process gets with and without a rival (other
#: workers' load on this 2-core machine would be a rival the test cannot
#: see), or that compare the machine-wide cgroup tree before and after a job
_ALONE = ("tests/test_cpu_binding.py::test_noisy_neighbour_cannot_slow_a_job_down",
          "tests/test_cpu_binding.py::test_a_job_cannot_widen_its_cpus_past_its_cpuset",
          "tests/test_samples.py::test_sampler_measures_a_real_process",
          "tests_multi_machine/test_workstation_fleet.py::"
          "test_a_foreign_cpu_hog_keeps_new_jobs_off_its_machine")


def _group(relpath: str) -> str:
    """The unit one worker runs: a test file, or the files that share a resource."""
    if relpath.startswith(_REAL_SLURM):
        return "real-slurm"
    return relpath


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist") and hasattr(config.option, "loadscopereorder"):
        # keep the order made below (xdist would sort groups by their count of tests)
        config.option.loadscopereorder = False


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):  # type: ignore[no-untyped-def]
    """``--dist loadfile``, with the files of one resource as one unit."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class Groups(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid.split("::", 1)[0])

    return Groups(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return
    rank = {g: i for i, g in enumerate(_LONG_FIRST)}
    keyed = [(rank.get(_group(item.nodeid.split("::", 1)[0]), len(rank)), n, item)
             for n, item in enumerate(items)]
    items[:] = [item for _, _, item in sorted(keyed, key=lambda k: k[:2])]


@pytest.fixture(autouse=True)
def _alone_or_beside(request: pytest.FixtureRequest,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Under xdist: a test of _ALONE holds the run's lock exclusively (it waits
    for the other workers' running tests to end, and they wait for it); every
    other test holds it shared. The turnstile lets a waiting exclusive test in
    ahead of tests that arrive after it."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    run = tmp_path_factory.getbasetemp().parent  # shared by this run's workers
    alone = request.node.nodeid.startswith(_ALONE)
    with open(run / "alone.turnstile", "a") as gate, open(run / "alone.lock", "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

"""Fixtures of the differential suite: real SLURM next to fleetslurm.

``oracle`` finds (or installs and starts, as root with apt reachable) a real
one-node SLURM and skips every test of this directory with the reason when
it cannot. ``slurm`` and ``fleet`` are the two :class:`~tests_slurm.sides.Side`
objects; ``fleet`` runs a private controller whose cluster, partition and
node carry the oracle's names. ``batch`` submits the suite's jobs to both
once per session (see batch.py) and returns what both printed.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Iterator

import pytest

from .batch import Batch, run_batch
from .sides import FleetSide, SlurmSide, rmtree
from .slurm_oracle import Oracle, ensure_oracle


def pytest_report_header(config) -> str:
    return "tests_slurm: fleetslurm judged by a real SLURM (skipped when none can run)"


@pytest.fixture(scope="session")
def oracle() -> Oracle:
    found = ensure_oracle()
    if isinstance(found, str):
        pytest.skip(f"no real SLURM to compare with: {found}")
    return found


@pytest.fixture(scope="session")
def sides_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("diff")
    root.chmod(0o755)  # real SLURM's slurmd writes job output here
    yield root
    rmtree(root)


@pytest.fixture(scope="session")
def slurm(oracle: Oracle, sides_root: Path) -> Iterator[SlurmSide]:
    side = SlurmSide(sides_root, oracle)
    yield side
    side.cleanup()


@pytest.fixture(scope="session")
def fleet(oracle: Oracle, sides_root: Path) -> Iterator[FleetSide]:
    side = FleetSide(sides_root, oracle)
    yield side
    side.cleanup()
    side.stop()


@pytest.fixture(scope="session")
def batch(slurm: SlurmSide, fleet: FleetSide, oracle: Oracle) -> Batch:
    result = run_batch(slurm, fleet, oracle.node, oracle.partition)
    sys.stderr.write(f"\n[tests_slurm] batch on both sides took {result.seconds:.0f} s\n")
    dump = os.environ.get("FLEETSLURM_DIFF_DUMP")
    if dump:  # for looking at a failure without running the batch again
        with open(dump, "wb") as f:
            pickle.dump(result, f)
    return result

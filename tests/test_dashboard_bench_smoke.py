"""benchmarks/bench_dashboard.py still runs (tiny sizes; no timing judged):
the README quotes its figures."""

from __future__ import annotations

import re

from tests.test_benchmarks_smoke import _run


def test_bench_dashboard(tmp_path):  # type: ignore[no-untyped-def]
    out = _run(tmp_path, "bench_dashboard.py", "--jobs", "30", "--running", "3", "--runs", "2",
               "--idle", "1")
    # the script exits 1 unless every job it counts ran (RUNNING, its file)
    assert re.search(r"^3 jobs running \(all 3 RUNNING in squeue before and after the "
                     r"measurements, 3 files written by them", out, re.M), out
    assert re.search(r"memory: agent \+ supervisors \+ jobs [\d.]+ MiB PSS", out), out
    assert re.search(r"\(1\) GET /api/queue \(page 1 of 1, 33 jobs\): [\d.]+ ms unchanged",
                     out), out
    assert re.search(r"\(2\) peer: fleetslurm squeue .*: [\d.]+ ms", out), out
    assert re.search(r"\(3\) controller CPU over 1 s: [\d.]+% .* [\d.]+% with", out), out

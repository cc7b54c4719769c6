"""DataBench: process many CSV files as ONE job array, and one file with a
single processing job whose result file comes back.

    python examples/databench_batch.py [WORKDIR]

It writes a few CSV files of sensor readings into WORKDIR (default: a new
temporary directory, named on stderr), summarises each in its own array task with
scripts/process_file.py, and aggregates one of them with
scripts/process_data.py. On machines without a shared filesystem the files
travel to the machines and the outputs come back.
"""

import csv
import json
import random
import sys
import tempfile
from pathlib import Path

from fleetslurm.databench import DataBenchSLURM

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def make_files(directory: Path, count: int = 6) -> list:
    rng = random.Random(42)
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(count):
        path = directory / f"sensor_{k:02d}.csv"
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["site", "temperature", "humidity"])
            for _ in range(200 + 50 * k):
                w.writerow([rng.choice(["north", "south", "east"]),
                            round(rng.gauss(20 + k, 3), 2), round(rng.uniform(30, 90), 1)])
        files.append(path)
    return files


def main(workdir: Path) -> int:
    files = make_files(workdir / "data")
    bench = DataBenchSLURM(output_dir=workdir / "out")

    print("machines:", {m: s["state"] for m, s in bench.get_cluster_status().items()})
    ids = bench.submit_batch_processing(files, SCRIPTS / "process_file.py", partition=None,
                                        cpus_per_job=1, memory_per_job="200M",
                                        time_limit="10:00")
    print(f"submitted one job array: {ids[0].split('_')[0]} ({len(ids)} tasks)")
    agg = bench.submit_data_processing_job(
        SCRIPTS / "process_data.py", cpus=1, memory="200M", time_limit="10:00",
        args=[files[0], "--group-by", "site", "--value", "temperature", "--output",
              "by_site.csv"], outputs=["by_site.csv"])

    states = bench.wait_for_jobs(ids + [agg], timeout=600)
    failed = {i: s for i, s in states.items() if s != "COMPLETED"}
    if failed:
        print("jobs that did not complete:", failed, file=sys.stderr)
        return 1
    for job_id, summary in bench.get_results(ids).items():
        t = summary["stats"]["temperature"]
        print(f"{job_id}: {summary['file']}: {summary['rows']} rows, mean temperature "
              f"{t['mean']:.2f} on {bench.get_job_status(job_id)['assigned_machine']}")
    status = bench.get_job_status(agg)
    print(f"aggregation job {agg} {status['status']} on {status['assigned_machine']}; "
          f"output {status['stdout']}")
    print((workdir / "out" / "by_site.csv").read_text().strip())
    print(json.dumps(bench.get_results([agg])[agg]["groups"], sort_keys=True))
    return 0


if __name__ == "__main__":
    # outputs go to WORKDIR, else a new temporary directory (never the current one)
    workdir = (Path(sys.argv[1]).absolute() if len(sys.argv) > 1
               else Path(tempfile.mkdtemp(prefix="fleetslurm-databench_batch-")))
    code = main(workdir)
    print(f"databench_batch: outputs in {workdir}", file=sys.stderr)
    sys.exit(code)

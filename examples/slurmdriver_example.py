"""SLURMConstructor writes a batch script around a job script; SLURMDriver
submits batch-script files and follows their states.

    python examples/slurmdriver_example.py [WORKDIR]

With ``SLURMDriver("slurm")`` the same calls drive a real SLURM's sbatch.
"""

import sys
import tempfile
from pathlib import Path

from fleetslurm import SLURMConstructor, SLURMDriver

JOB = '''\
import os, socket, sys
n = int(sys.argv[1])
print(f"fib({n}) = {(lambda f: f(f, n))(lambda f, k: k if k < 2 else f(f, k - 1) + f(f, k - 2))}"
      f" on {socket.gethostname()} with {os.environ.get('SLURM_CPUS_PER_TASK')} CPUs")
'''

if __name__ == "__main__":
    # outputs go to WORKDIR, else a new temporary directory (never the current one)
    workdir = (Path(sys.argv[1]).absolute() if len(sys.argv) > 1
               else Path(tempfile.mkdtemp(prefix="fleetslurm-slurmdriver_example-")))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"slurmdriver_example: outputs in {workdir}", file=sys.stderr)
    (workdir / "fib.py").write_text(JOB)

    ctor = SLURMConstructor(setup=["export PYTHONUNBUFFERED=1"])
    batch = ctor.write_slurm_script(workdir / "fib.sbatch", workdir / "fib.py", cpus=1,
                                    memory="100M", time="5:00", args=["20"],
                                    output=str(workdir / "fib-%j.out"))
    print(batch.read_text().split("\n")[:7])

    driver = SLURMDriver()
    first = driver.submit_job(batch)
    # the same script, other resources and an array of 3, given at submission
    array = driver.submit_job(batch, slurm_args={"array": "0-2", "cpus_per_task": 2,
                                                 "output": str(workdir / "fib-%A_%a.out")})
    print("submitted", first, array, "->", driver.check_job_status(first))
    states = driver.wait(timeout=600)
    print("states:", driver.check_all_job_statuses())
    if set(states.values()) != {"COMPLETED"}:
        sys.exit(1)
    print((workdir / f"fib-{first}.out").read_text().strip())
    print((workdir / f"fib-{array}_2.out").read_text().strip())

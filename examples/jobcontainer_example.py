"""JobContainer: a job kept in a file (a Serializer file holding a Process
or a call), executed where the file is, or submitted to the fleet.

    python examples/jobcontainer_example.py [WORKDIR]
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

import fleetslurm


class Smooth(fleetslurm.Process):
    """Moving average of a noisy signal (the input travels inside the container)."""

    slurm_options = {"mem": "300M", "time": "10"}

    def __init__(self, signal, window):
        self.signal, self.window = signal, window

    def run(self):
        kernel = np.ones(self.window) / self.window
        return np.convolve(self.signal, kernel, mode="valid")


if __name__ == "__main__":
    # outputs go to WORKDIR, else a new temporary directory (never the current one)
    workdir = (Path(sys.argv[1]).absolute() if len(sys.argv) > 1
               else Path(tempfile.mkdtemp(prefix="fleetslurm-jobcontainer_example-")))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"jobcontainer_example: outputs in {workdir}", file=sys.stderr)
    rng = np.random.default_rng(1)
    signal = np.sin(np.linspace(0, 20, 50_000)) + rng.normal(0, 0.3, 50_000)

    # 1. write a container, execute it here (where the file is)
    here = Smooth(signal, 25).save(workdir / "smooth_here.h5")
    smoothed = here.execute()
    out = here.outcome()
    print(f"executed here: {out['state']}, {len(smoothed)} values, "
          f"CPU {out['usage']['cpu_time_s']:.3f} s")

    # 2. the same kind of container, run in a job on the fleet, outcome recorded in the file
    remote = Smooth(signal, 101).save(workdir / "smooth_remote.h5")
    job = remote.submit()
    result = remote.collect(job, timeout=600)
    out = fleetslurm.JobContainer(workdir / "smooth_remote.h5").outcome()
    print(f"job {job.job_id} on {out['usage']['node']}: {out['state']}, "
          f"{len(result)} values, peak memory {out['usage']['max_rss_kb']} KiB")
    print(f"residual noise: {np.std(result - np.sin(np.linspace(0, 20, 50_000))[50:-50]):.3f}")

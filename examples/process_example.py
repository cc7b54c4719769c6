"""The seed's Process: subclass it, write run(), submit it.

    python examples/process_example.py

Each Process runs its run() in a job on a machine; the Job gives back the
result and what the job used (CPU time, peak memory), the same figures
``fleetslurm sacct -o JobID,TotalCPU,MaxRSS`` shows.
"""

import fleetslurm


class MonteCarloPi(fleetslurm.Process):
    """Estimate pi from random points in the unit square."""

    slurm_options = {"cpus_per_task": 1, "mem": "200M", "time": "10"}

    def __init__(self, samples, seed):
        self.samples, self.seed = samples, seed

    def run(self):
        import random

        rng = random.Random(self.seed)
        inside = sum(1 for _ in range(self.samples) if rng.random() ** 2 + rng.random() ** 2 < 1)
        return 4 * inside / self.samples


if __name__ == "__main__":
    jobs = [MonteCarloPi(200_000, seed).submit() for seed in range(4)]
    estimates = [job.result(timeout=600) for job in jobs]
    for job, pi in zip(jobs, estimates):
        u = job.usage()
        print(f"job {job.job_id}: pi ~ {pi:.4f} on {u.node}, CPU {u.cpu_time_s:.2f} s, "
              f"peak memory {u.max_rss_kb} KiB")
    print(f"mean of {len(estimates)} estimates: {sum(estimates) / len(estimates):.4f}")

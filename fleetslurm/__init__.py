"""fleetslurm: a SLURM-shaped workload manager for a few machines over SSH."""
__version__ = "0.1.0"


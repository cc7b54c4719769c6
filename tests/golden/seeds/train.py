"""A tiny job script for the SLURMConstructor golden files."""
import os
import sys

print("train", sys.argv[1:], "cpus", os.environ.get("SLURM_CPUS_PER_TASK"))

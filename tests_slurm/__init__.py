"""Differential tests: the same jobs and commands on a real SLURM and on
fleetslurm, compared. A package so its conftest does not clash with
tests/conftest.py."""

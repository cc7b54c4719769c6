"""DataBench: data-processing jobs over files and symbols
(:class:`~.bench.DataBenchSLURM`; user-facing module :mod:`fleetslurm.databench`).
Built on :mod:`fleetslurm.api.executor` (client, script writer, Executor)."""

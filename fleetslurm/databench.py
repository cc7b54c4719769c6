"""``fleetslurm.databench``: the DataBench API (batch and parallel analysis).

See :mod:`fleetslurm.api.databench`. ``from fleetslurm.databench import
DataBenchSLURM`` is the seed's spelling and works as it is.
"""

from __future__ import annotations

from .api.databench import DataBenchSLURM
from .api.databench_analyses import Analysis, AnalysisRegistry, analysis, load_analyses

__all__ = ["DataBenchSLURM", "Analysis", "AnalysisRegistry", "analysis", "load_analyses"]

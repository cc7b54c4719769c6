"""``fleetslurm.databench``: the DataBench API (batch and parallel analysis).

See :mod:`fleetslurm.api.databench.bench`. ``from fleetslurm.databench import
DataBenchSLURM`` is the seed's spelling and works as it is.
"""

from __future__ import annotations

from .api.databench.bench import DataBenchSLURM
from .api.databench.analyses import Analysis, AnalysisRegistry, analysis, load_analyses

__all__ = ["DataBenchSLURM", "Analysis", "AnalysisRegistry", "analysis", "load_analyses"]

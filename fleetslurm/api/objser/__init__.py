"""ObjectSerializer: Python objects in HDF5 files (:mod:`.serializer`; the
file layout in :mod:`.format`, file access and locking in :mod:`.files`).

Standard library and fleetslurm.errors only at import time; shipped to
nodes as ``fleetslurm_objser.zip`` (:mod:`fleetslurm.api.executor.bigdata`).
"""

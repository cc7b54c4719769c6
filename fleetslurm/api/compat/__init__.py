"""The seeds' classes, kept for their users: ``SLURMConstructor``
(:mod:`.constructor`), ``SLURMDriver`` (:mod:`.driver`), ``Process`` and
``JobContainer`` (:mod:`.process`), and the decorator API ``@slurmify`` /
``Batch`` (:mod:`.slurmify`, dispatchers in :mod:`.dispatch`). Built on
:mod:`fleetslurm.api.executor` and :mod:`fleetslurm.api.databench`."""

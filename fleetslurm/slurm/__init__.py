"""SLURM's language (options, units, patterns, formats) as pure code."""

#: the SLURM release whose behaviour fleetslurm follows (``--version``, a
#: node's ``Version`` in ``scontrol show node`` and sinfo's ``%v``)
SLURM_VERSION = "22.05.8"

"""``python -m fleetslurm ...``: the ``fleetslurm`` command (for a systemd unit
or an ssh remote command where the entry point is not on PATH)."""

import sys

from .cli.main import main

sys.exit(main())

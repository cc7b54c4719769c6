"""The monitoring dashboard (``fleetslurm dashboard``) and the terminal view
(``fleetslurm top``): read the fleet through the ordinary client, as the user
who started them; the controller decides every action, as for the CLI."""

"""The controller (fleetslurm's slurmctld), in layers that import only downward:

- ``loop``: the ``step(now)`` loop (:class:`~.loop.Controller`);
- ``requests/`` (client requests, one ``OPS`` table), ``agent_events`` (what
  agents and background copies report), ``launch`` (a job's start);
- ``health``, ``collect``, ``staging``, ``arrayfeed``, ``dependencies``,
  ``fairshare``: what those build on;
- ``lifecycle``: the only writer of a task's state;
- ``context``: what a handler may touch (store, config, now, emit, send,
  after_commit, log, the node book); ``jobrequest``: a task as the scheduler
  sees it; ``queries``: the read-only answers of the RPC threads.

See ARCHITECTURE.md. Nothing is imported here: import the module you need.
"""

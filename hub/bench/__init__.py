"""``hub bench``: the hub measured against its own parts' ceilings, in the same run.

:mod:`hub.bench.runner` orchestrates; :mod:`hub.bench.infra` provides an isolated database and
Redis; :mod:`hub.bench.procs` starts and stops the children; :mod:`hub.bench.ceilings` and
:mod:`hub.bench.bare` measure the ceilings; :mod:`hub.bench.phases` and :mod:`hub.bench.api_phase`
the hub; :mod:`hub.bench.loadgen` and :mod:`hub.bench.receiver` are the client and subscriber
processes; :mod:`hub.bench.report` prints the figures. See ``docs/benchmarks.md``.

Nothing is imported here: the load generator and the receiver start as fresh processes and should
not pay for the runner's imports.
"""

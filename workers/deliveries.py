"""Delivery jobs: ``deliver_webhooks`` hands ids to the process's delivery engine; the sweeper's backstop.

``deliver_webhooks(ctx, delivery_ids)`` is a wake-up, not a unit of work: the engine's pipeline
(:mod:`hub.delivery.engine`) claims due rows (these ids first, then any other due ones), sends them
and records each attempt, until nothing is due or it has run for
:data:`~hub.delivery.engine.MAX_RUN_SECONDS` (then it hands over to a fresh job). Postgres decides
what is done; a job lost, duplicated or killed costs at most a delay until a lease expires or the
sweeper looks.
"""

from __future__ import annotations

from typing import Any

from workers.context import WorkerContext, deps

__all__ = ["deliver_webhooks", "sweep_deliveries"]


async def deliver_webhooks(ctx: dict[str, Any], delivery_ids: list[str]) -> int:
    """Send due deliveries, ``delivery_ids`` first; return how many attempts this job made."""
    return await deps(ctx).deliveries.run(delivery_ids)


async def sweep_deliveries(hub: WorkerContext) -> int:
    """Re-enqueue due deliveries no job is working on; return how many were found."""
    return await hub.deliveries.sweep()

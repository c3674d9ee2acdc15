"""The sweeper (arq cron): re-enqueues work that is due but not done, under fresh job ids.

It also enqueues the platform reconciles that are due (``workers.platform_sync``).

Postgres, not arq, decides whether work is done: a lost job, a flushed Redis or a SIGKILLed worker
leaves rows that are still ``received`` (inbound) or ``pending`` and due (deliveries); the sweeper
finds them and wakes a worker for them, so everything accepted completes within the DESIGN bound.
"""

from __future__ import annotations

from typing import Any

import structlog

from workers import deliveries, ingest, platform_sync
from workers.context import deps

log = structlog.get_logger("hub.sweeper")


async def sweep(ctx: dict[str, Any]) -> None:
    """One sweep over inbound events and deliveries."""
    hub = deps(ctx)
    steps = (
        ("inbound", ingest.sweep_inbound),
        ("deliveries", deliveries.sweep_deliveries),
        ("platform_syncs", platform_sync.schedule_platform_syncs),
    )
    for name, step in steps:
        try:
            found = await step(hub)
        except Exception:  # a sweep must never take the worker down; the next one retries
            log.exception("sweep_failed", step=name)
            continue
        if found:
            # reconciles due on schedule are routine; anything else swept was left behind by a lost job
            (log.debug if name == "platform_syncs" else log.info)("swept", step=name, count=found)

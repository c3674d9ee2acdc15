"""Platform pull sync as jobs: subscribe + backfill/reconcile one connection; schedule the due ones.

``sync_connection`` takes a connection id (and an optional ISO ``since``); ``schedule_platform_syncs``
runs with every sweep and enqueues a sync for each pulled connection whose next reconcile is due
(``sync_next_at``, moved forward by the same statement, so several workers never enqueue one twice).
A failed sync is recorded on the connection and left for the next reconcile; arq never retries it.
One sync per connection at a time across workers is the engine's advisory lock.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import structlog
from arq import func

from hub import queue
from hub.platforms import sync
from hub.platforms.chat_client import pinned_session
from hub.platforms.chat_remote import SyncError, SyncNotPossible
from workers.context import WorkerContext, deps

log = structlog.get_logger("hub.platform_sync")

JOB = queue.PLATFORM_SYNC_JOB
#: A first backfill of a large store may take long; the lock and the cursor make a cut-off one safe.
JOB_TIMEOUT_SECONDS = 3600
SCHEDULE_BATCH = 100

_DUE = """
UPDATE connections SET sync_next_at = now() + make_interval(secs => $1)
WHERE id IN (
    SELECT id FROM connections
    WHERE pull AND deleted_at IS NULL AND sync->>'state' IS DISTINCT FROM 'needs_attention'
      AND (sync_next_at IS NULL OR sync_next_at <= now())
    ORDER BY sync_next_at NULLS FIRST LIMIT $2 FOR UPDATE SKIP LOCKED
)
RETURNING id
"""


async def sync_connection(
    ctx: dict[str, Any], connection_id: str, since: str | None = None, what: str = "sync"
) -> dict[str, Any]:
    """Subscribe and pull one connection (``what="subscribe"``: subscribe only); returns a summary."""
    hub = deps(ctx)
    loopback, private = hub.settings.webhook_allow_loopback, hub.settings.webhook_allow_private
    options = sync.options_from(hub.settings)
    start = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
    try:
        async with pinned_session(allow_loopback=loopback, allow_private=private) as http:
            if what == "subscribe":
                subs = await sync.run_subscribe(hub.pool, connection_id=connection_id, session=http, options=options)
                return {"connection_id": connection_id, "subscriptions": subs}
            run, delivery_ids = await sync.run_sync(
                hub.pool, connection_id=connection_id, session=http, options=options, since=start
            )
    except SyncNotPossible as exc:
        log.info("platform_sync_skipped", connection_id=connection_id, reason=str(exc))
        return {"connection_id": connection_id, "skipped": str(exc)}
    except SyncError as exc:
        return {"connection_id": connection_id, "error": str(exc)}
    await _wake(hub, delivery_ids)
    return {"connection_id": connection_id, "mode": run.mode, "orders_seen": run.orders_seen, "missed": run.missed}


async def _wake(hub: WorkerContext, delivery_ids: list[str]) -> None:
    await queue.wake_deliveries(hub.redis, delivery_ids)  # best effort: the sweeper delivers them anyway


async def schedule_platform_syncs(hub: WorkerContext) -> int:
    """Enqueue a sync for every pulled connection that is due; returns how many."""
    rows = await hub.pool.fetch(_DUE, float(hub.settings.reconcile_interval_seconds), SCHEDULE_BATCH)
    for row in rows:
        await queue.enqueue(hub.redis, JOB, row["id"], job_id=f"platform-sync:{row['id']}:{time.time_ns()}")
    return len(rows)


#: The job as registered: its own timeout, no arq retries (the next reconcile is the retry).
job = func(sync_connection, name=JOB, timeout=JOB_TIMEOUT_SECONDS, max_tries=1)

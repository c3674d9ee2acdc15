"""Scheduled chat-agent pull: a cron wakes a sync job per pullable connection every five minutes.

``sync_chat_agent`` takes only a connection id. A failed sync is logged and left for the next
run five minutes later (``last_synced_at`` did not move, so that run starts from the same point);
arq never retries it, since the remote's trouble will not pass in the seconds arq waits.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from arq import func

from hub import queue
from hub.platforms import chat_sync
from hub.platforms.chat_client import ChatAgentClient, pinned_session
from hub.platforms.chat_remote import SyncError, SyncNotPossible
from workers.context import deps

log = structlog.get_logger("hub.chat_sync")

JOB = queue.CHAT_SYNC_JOB
INTERVAL_SECONDS = 300
#: A long backfill may take far longer than the worker's default job timeout.
JOB_TIMEOUT_SECONDS = 1800

_PULLABLE = (
    "SELECT id FROM connections WHERE source = 'chat_agent' AND deleted_at IS NULL "
    "AND settings ? 'base_url' AND settings ? 'api_key' ORDER BY id"
)


async def sync_chat_agent(ctx: dict[str, Any], connection_id: str) -> dict[str, Any]:
    """Pull the connection's orders since its last sync; returns the counts (also logged)."""
    hub = deps(ctx)
    started = time.monotonic()

    def report(progress: chat_sync.SyncProgress) -> None:
        log.info(
            "chat_sync_page",
            connection_id=connection_id,
            page=progress.pages_done,
            pages=progress.pages_total,
            orders=progress.orders_seen,
            total=progress.orders_total,
        )

    loopback, private = hub.settings.webhook_allow_loopback, hub.settings.webhook_allow_private
    options = chat_sync.SyncOptions(allow_loopback=loopback, allow_private=private)
    try:
        # A session of its own: pinned to SSRF-checked addresses (the worker's shared one is not).
        async with hub.pool.acquire() as conn, pinned_session(allow_loopback=loopback, allow_private=private) as http:
            target = await chat_sync.load_target(conn, connection_id=connection_id)
            remote = ChatAgentClient(http, base_url=target.base_url, api_key=target.api_key)
            progress = await chat_sync.run_sync(
                conn, target=target, remote=remote, options=options, redis=hub.redis, on_progress=report
            )
    except SyncNotPossible as exc:
        log.info("chat_sync_skipped", connection_id=connection_id, reason=str(exc))
        return {"connection_id": connection_id, "skipped": str(exc)}
    except SyncError as exc:
        done = exc.progress.orders_seen if exc.progress else 0
        log.warning("chat_sync_failed", connection_id=connection_id, error=str(exc), orders_committed=done)
        return {"connection_id": connection_id, "error": str(exc), "orders_seen": done}
    summary = {
        "connection_id": connection_id,
        "date_from": progress.date_from.isoformat(),
        "pages": progress.pages_done,
        "orders_seen": progress.orders_seen,
        "created": progress.created,
        "updated": progress.updated,
        "unchanged": progress.unchanged,
        "stale": progress.stale,
        "failed": progress.failed,
        "seconds": round(time.monotonic() - started, 3),
    }
    log.info("chat_sync_done", **summary)
    return summary


async def schedule_chat_syncs(ctx: dict[str, Any]) -> int:
    """Enqueue one sync per chat-agent connection with pull settings; returns how many."""
    hub = deps(ctx)
    rows = await hub.pool.fetch(_PULLABLE)
    # One job id per connection per five-minute slot: several workers running this cron, or a
    # slow sync still queued, never make two syncs of the same connection in one slot.
    slot = int(time.time() // INTERVAL_SECONDS)
    for row in rows:
        await queue.enqueue(hub.redis, JOB, row["id"], job_id=f"chat-sync:{row['id']}:{slot}")
    if rows:
        log.info("chat_sync_scheduled", count=len(rows))
    return len(rows)


#: The job as registered: its own timeout, and no arq retries (the next cron run is the retry).
job = func(sync_chat_agent, name=JOB, timeout=JOB_TIMEOUT_SECONDS, max_tries=1)

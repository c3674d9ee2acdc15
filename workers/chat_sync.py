"""``sync_chat_agent``: the chat-agent pull's job name, kept as a wire contract; the platform sync runs it.

Jobs already queued (or enqueued by older callers) under this name with a connection id run
``workers.platform_sync.sync_connection``: the one engine that subscribes, backfills and reconciles
every pulled connection, the chat agent's included. Scheduling is the engine's scheduler's (called by
the sweeper); there is no cron of its own any more.
"""

from __future__ import annotations

from typing import Any

from arq import func

from hub import queue
from workers import platform_sync

JOB = queue.CHAT_SYNC_JOB


async def sync_chat_agent(ctx: dict[str, Any], connection_id: str) -> dict[str, Any]:
    """Subscribe and pull ``connection_id`` now; the summary of ``sync_connection``."""
    return await platform_sync.sync_connection(ctx, connection_id)


#: Registered with the platform job's timeout and no arq retries (the next reconcile is the retry).
job = func(sync_chat_agent, name=JOB, timeout=platform_sync.JOB_TIMEOUT_SECONDS, max_tries=1)

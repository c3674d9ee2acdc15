"""``hub sync CONNECTION_ID``: subscribe and pull one platform connection now, with a progress bar.

The same run the worker makes on creation and every reconcile (``hub.platforms.sync``), from a
terminal: a first backfill from a given date (``--since``), or a reconcile after an outage. The bar and
the summary go to stdout, logs and errors to stderr.
"""

from __future__ import annotations

from datetime import datetime

from redis.exceptions import RedisError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hub import db, queue
from hub.platforms import sync
from hub.platforms.chat_client import pinned_session
from hub.settings import Settings


async def sync_now(
    settings: Settings, connection_id: str, since: datetime | None, *, console: Console, err: Console
) -> sync.SyncRun:
    """Run one sync of ``connection_id``; raises ``SyncError`` (and subclasses) when it fails."""
    assert settings.database_url is not None
    pool = await db.create_pool(settings.database_url, max_size=2)
    loopback, private = settings.webhook_allow_loopback, settings.webhook_allow_private
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        async with pinned_session(allow_loopback=loopback, allow_private=private) as http:
            with Progress(*columns, TextColumn("{task.fields[detail]}"), console=console) as bar:
                task = bar.add_task("orders", total=None, detail="")

                def report(run: sync.SyncRun) -> None:
                    detail = f"page {run.pages} · {run.created} new · {run.changed} changed · {run.failed} unreadable"
                    bar.update(task, completed=run.orders_seen, total=run.total, detail=detail)

                run, delivery_ids = await sync.run_sync(
                    pool,
                    connection_id=connection_id,
                    session=http,
                    options=sync.options_from(settings),
                    since=since,
                    on_progress=report,
                )
    finally:
        await pool.close()
    await _wake(settings, delivery_ids, err)
    return run


async def _wake(settings: Settings, delivery_ids: list[str], err: Console) -> None:
    if not delivery_ids or not settings.redis_url:
        return
    try:
        redis = await queue.connect(settings.redis_url)
        try:
            await queue.wake_deliveries(redis, delivery_ids)
        finally:
            await redis.aclose()
    except (RedisError, OSError) as exc:  # committed: the sweeper sends them anyway
        err.print(f"[yellow]Redis unavailable ({exc}); webhooks will be sent by the next sweep.[/yellow]")

"""``hub sync chat-agent``: pull a chat-agent connection's orders now, with a progress bar.

The same sync the worker runs every five minutes (``hub.platforms.chat_sync``), run from a
terminal: for a first backfill (``--since``), or to reconcile after an outage. The progress bar and
the summary go to stdout, logs and errors to stderr; the exit status is 1 when the sync failed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hub.cli.common import DataDir, attached, configure_logs, console, err, load_settings, run

if TYPE_CHECKING:
    from hub.platforms.chat_sync import SyncProgress
    from hub.settings import Settings

sync_app = typer.Typer(pretty_exceptions_enable=False, help="Pull orders from remote systems now.")


def parse_since(value: str | None) -> date | None:
    """``YYYY-MM-DD`` or an ISO timestamp (its UTC date); typer.BadParameter otherwise."""
    if value is None:
        return None
    try:
        if len(value.strip()) == 10:
            return date.fromisoformat(value.strip())
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter("expected a date, YYYY-MM-DD", param_hint="--since") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).date()


@sync_app.command("chat-agent")
def chat_agent(
    connection: Annotated[str, typer.Option("--connection", help="The chat_agent connection's id (conn_…).")],
    since: Annotated[
        str | None, typer.Option("--since", help="Orders created from this date (default: last sync, else 30 days).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Page through the remote's GET /api/v1/orders and upsert every order, as the scheduled sync does."""
    from hub.platforms.chat_remote import SyncError

    since_date = parse_since(since)
    settings = load_settings(data_dir)
    configure_logs(settings)
    with attached(settings) as ready:
        try:
            result = run(_sync(ready, connection, since_date))
        except SyncError as exc:
            done = f" ({exc.progress.orders_seen} orders were stored before it stopped)" if exc.progress else ""
            err.print(f"[red]Sync failed:[/red] {exc}{done}")
            raise typer.Exit(1) from None
    console.print(
        f"Synced {result.orders_seen} orders from {result.date_from.isoformat()} in {result.pages_done} pages: "
        f"{result.created} created, {result.updated} updated, {result.unchanged} unchanged, "
        f"{result.stale} stale, {result.failed} unreadable."
    )
    if result.failed:
        console.print("Unreadable orders are kept as failed inbound events: GET /api/v1/inbound-events?status=failed")


async def _sync(settings: Settings, connection_id: str, since: date | None) -> SyncProgress:
    from redis.exceptions import RedisError

    from hub import db, queue
    from hub.platforms import chat_sync
    from hub.platforms.chat_client import ChatAgentClient, pinned_session

    assert settings.database_url is not None
    pool = await db.create_pool(settings.database_url, max_size=2)
    redis = None
    if settings.redis_url:
        try:
            redis = await queue.connect(settings.redis_url)
        except (RedisError, OSError) as exc:  # deliveries still go out: the sweeper finds them
            err.print(f"[yellow]Redis unavailable ({exc}); webhooks will be sent by the next sweep.[/yellow]")
    loopback, private = settings.webhook_allow_loopback, settings.webhook_allow_private
    options = chat_sync.SyncOptions(allow_loopback=loopback, allow_private=private)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        async with pool.acquire() as conn, pinned_session(allow_loopback=loopback, allow_private=private) as http:
            target = await chat_sync.load_target(conn, connection_id=connection_id)
            remote = ChatAgentClient(http, base_url=target.base_url, api_key=target.api_key)
            with Progress(*columns, TextColumn("{task.fields[detail]}"), console=console) as bar:
                task = bar.add_task("pages", total=None, detail="")

                def report(p: SyncProgress) -> None:
                    of = f" of {p.orders_total}" if p.orders_total is not None else ""
                    detail = f"{p.orders_seen}{of} orders · {p.created} new · {p.updated} updated"
                    bar.update(task, completed=p.pages_done, total=p.pages_total, detail=detail)

                return await chat_sync.run_sync(
                    conn, target=target, remote=remote, since=since, options=options, redis=redis, on_progress=report
                )
    finally:
        if redis is not None:
            await redis.aclose()
        await pool.close()

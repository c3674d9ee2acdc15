"""Chat-agent pull sync: page through a remote seed-000 ``GET /api/v1/orders`` and upsert what it holds.

The remote is anything with :class:`OrdersRemote`'s one method (``hub.platforms.chat_client`` is the aiohttp
one); this module owns the paging, the retries and the writes, and never touches HTTP itself.

- Paging: ``date_from`` (a date: seed 000 filters by creation date), ``page`` from 1, ``per_page``
  100. It stops at ``meta.total`` when the remote states it, else at the first short or empty page,
  and at :attr:`SyncOptions.max_pages` whatever the remote says.
- Retries: 429, 5xx and network errors are retried with exponential backoff, honouring
  ``Retry-After`` (capped), at most :attr:`RetryPolicy.max_tries` times per page; any other answer
  ends the sync at once (a wrong key will not become right by asking again).
- Writes: each page is normalized with ``connectors.chat_agent.normalize_order`` and upserted in one
  transaction by the ingest worker's own ``upsert_orders`` (same staleness rule, same outbox). An
  order the connector cannot read is kept as a ``failed`` inbound event with the reason, so the ops
  team sees it and can retry it after a fix, and the rest of the page goes on.
- ``last_synced_at`` becomes the time the sync *started*, and only when every page was read, so an
  interrupted sync is repeated from the same point and nothing changed during a sync is skipped.
- One sync per connection at a time, across processes: a session advisory lock in Postgres.

Errors are :class:`hub.platforms.chat_remote.SyncError` and its subclasses (tree there).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import structlog
from arq.connections import ArqRedis

from connectors.base import ConnectorError, NormalizedOrder
from connectors.chat_agent import normalize_order
from hub import queue, ssrf
from hub.db import Conn
from hub.ids import new_id
from hub.orders.rules import refusal
from hub.orders.upsert import upsert_orders
from hub.platforms.chat_remote import (
    OrdersRemote,
    RetryPolicy,
    Sleep,
    SyncError,
    SyncNotPossible,
    TransientRemoteError,
    fetch_with_retries,
)
from hub.platforms.chat_remote import (
    SyncProgress as SyncProgress,  # re-exported: callers name it chat_sync.SyncProgress
)

log = structlog.get_logger("hub.chat_sync")

DEFAULT_LOOKBACK = timedelta(days=30)
PER_PAGE = 100  # seed 000's maximum


@dataclass(frozen=True, slots=True)
class SyncTarget:
    """A chat-agent connection that can be pulled."""

    connection_id: str
    organization_id: str
    default_currency: str
    base_url: str
    api_key: str
    last_synced_at: datetime | None


@dataclass(frozen=True)
class SyncOptions:
    """Knobs of one sync (the edges fill them from Settings)."""

    per_page: int = PER_PAGE
    max_pages: int = 10_000
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    allow_loopback: bool = False
    allow_private: bool = False
    sleep: Sleep = asyncio.sleep


async def load_target(conn: Conn, *, connection_id: str) -> SyncTarget:
    """The connection's pull settings; SyncNotPossible when it cannot be pulled."""
    row = await conn.fetchrow(
        "SELECT c.id, c.organization_id, c.source, c.settings, c.last_synced_at, c.deleted_at, o.default_currency "
        "FROM connections c JOIN organizations o ON o.id = c.organization_id WHERE c.id = $1",
        connection_id,
    )
    if row is None or row["deleted_at"] is not None:
        raise SyncNotPossible(f"no connection {connection_id}")
    if row["source"] != "chat_agent":
        raise SyncNotPossible(f"connection {connection_id} is a {row['source']} connection, not chat_agent")
    settings: Mapping[str, Any] = row["settings"] or {}
    base_url, api_key = settings.get("base_url"), settings.get("api_key")
    if not isinstance(base_url, str) or not isinstance(api_key, str):
        raise SyncNotPossible(f"connection {connection_id} has no settings.base_url and settings.api_key")
    return SyncTarget(
        connection_id=row["id"],
        organization_id=row["organization_id"],
        default_currency=row["default_currency"],
        base_url=base_url,
        api_key=api_key,
        last_synced_at=row["last_synced_at"],
    )


def default_since(target: SyncTarget, *, now: datetime) -> date:
    """Where a sync starts without ``--since``: the last sync's start, else 30 days back."""
    return (target.last_synced_at or now - DEFAULT_LOOKBACK).astimezone(UTC).date()


async def _check_address(target: SyncTarget, options: SyncOptions) -> None:
    # The base URL is the merchant's input: it must not point the hub at its own network.
    if options.allow_private:
        return
    try:
        await ssrf.resolve_and_check(target.base_url, allow_loopback=options.allow_loopback)
    except ssrf.UnresolvableHostError as exc:
        raise TransientRemoteError(f"base_url: {exc.reason}") from exc
    except ssrf.UnsafeUrlError as exc:
        raise SyncNotPossible(f"base_url refused: {exc.reason}") from exc


def _lock_key(connection_id: str) -> int:
    digest = hashlib.blake2b(f"chat_sync\0{connection_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


ProgressCallback = Callable[[SyncProgress], None]


async def run_sync(
    conn: Conn,
    *,
    target: SyncTarget,
    remote: OrdersRemote,
    since: date | None = None,
    options: SyncOptions | None = None,
    redis: ArqRedis | None = None,
    on_progress: ProgressCallback | None = None,
) -> SyncProgress:
    """Pull every page since ``since`` into the organization's orders; see the module docstring.

    ``conn`` must not be in a transaction: each page commits on its own, so an interrupted sync keeps
    the pages it finished. ``redis``, when given, wakes the delivery worker after each page.
    """
    options = options or SyncOptions()
    started = datetime.now(UTC)
    progress = SyncProgress(date_from=since or default_since(target, now=started))
    await _check_address(target, options)
    key = _lock_key(target.connection_id)
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
        raise SyncNotPossible(f"a sync of {target.connection_id} is already running")
    try:
        await _pull(
            conn, target=target, remote=remote, options=options, redis=redis, progress=progress, report=on_progress
        )
        await conn.execute("UPDATE connections SET last_synced_at = $2 WHERE id = $1", target.connection_id, started)
    except SyncError as exc:
        exc.progress = progress
        raise
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", key)
    return progress


async def _pull(
    conn: Conn,
    target: SyncTarget,
    remote: OrdersRemote,
    *,
    options: SyncOptions,
    redis: ArqRedis | None,
    progress: SyncProgress,
    report: ProgressCallback | None,
) -> None:
    for page in range(1, options.max_pages + 1):
        fetched = await fetch_with_retries(
            remote,
            date_from=progress.date_from,
            page=page,
            per_page=options.per_page,
            policy=options.policy,
            sleep=options.sleep,
        )
        # The remote may serve fewer per page than asked (its own maximum); its meta says how many.
        per_page = fetched.per_page or options.per_page
        if fetched.total is not None:
            progress.orders_total = fetched.total
            progress.pages_total = max(1, -(-fetched.total // per_page))
        delivery_ids = await _store_page(conn, target=target, orders=fetched.orders, progress=progress)
        progress.pages_done = page
        progress.orders_seen += len(fetched.orders)
        if report is not None:
            report(progress)
        await queue.wake_deliveries(redis, delivery_ids)
        if not fetched.orders or len(fetched.orders) < per_page:
            return
        if progress.pages_total is not None and page >= progress.pages_total:
            return
    log.warning("chat_sync_page_limit", connection_id=target.connection_id, max_pages=options.max_pages)


async def _store_page(
    conn: Conn, *, target: SyncTarget, orders: list[dict[str, Any]], progress: SyncProgress
) -> list[str]:
    normalized: list[NormalizedOrder] = []
    unreadable: list[tuple[dict[str, Any], str]] = []
    for order in orders:
        try:
            found = normalize_order(order)
        except ConnectorError as exc:
            unreadable.append((order, str(exc) or type(exc).__name__))
            continue
        why = refusal(found)  # the API's safety rules hold for pulled orders too (as for webhooks)
        if why is None:
            normalized.append(found)
        else:
            unreadable.append((order, why))
    async with conn.transaction():
        result = await upsert_orders(
            conn, organization_id=target.organization_id, orders=normalized, default_currency=target.default_currency
        )
        await _keep_unreadable(conn, target, unreadable)
    progress.add(result, applied=len(normalized))
    progress.failed += len(unreadable)
    return result.delivery_ids


async def _keep_unreadable(conn: Conn, target: SyncTarget, unreadable: list[tuple[dict[str, Any], str]]) -> None:
    """Store each unreadable order as a failed inbound event, in the chat agent's webhook envelope.

    Wrapped as an ``order.updated`` webhook so that the ingest worker, given a retry, parses it with
    the same connector; keyed by its body's hash so the next sync does not store it twice.
    """
    rows = []
    for order, reason in unreadable:
        body = orjson.dumps({"type": "order.updated", "data": {"order": order}})
        delivery_key = "pull:sha256:" + hashlib.sha256(body).hexdigest()
        headers = {"x-orderhub-origin": "chat-agent pull sync"}
        rows.append((new_id("ie"), target.organization_id, target.connection_id, delivery_key, headers, body, reason))
        log.warning("chat_sync_unreadable_order", connection_id=target.connection_id, remote_id=order.get("id"))
    if rows:
        await conn.executemany(
            "INSERT INTO inbound_events (id, organization_id, connection_id, source, delivery_key, headers, query, "
            "body, status, topic, error, attempts, order_ids, received_at, processed_at) "
            "VALUES ($1, $2, $3, 'chat_agent', $4, $5, '{}'::jsonb, $6, 'failed', 'order.updated', $7, 1, "
            "'[]'::jsonb, now(), now()) ON CONFLICT (connection_id, delivery_key) DO NOTHING",
            rows,
        )

"""The pull-sync engine: subscribe, backfill and reconcile one connection through its platform client.

One run: take the connection's lock (a session advisory lock: one sync per connection across every
worker), mark it ``running``, make sure the hub's webhook subscriptions exist at the platform
(``hub.platforms.subscriptions``), then page through the orders changed since the cursor minus an
overlap (first run: ``since`` or 30 days back), normalize each with the platform's connector and upsert
each page in one transaction through ``hub.orders.upsert`` (the webhook path's writer: same staleness
rule, same events, same outbox). An order the connector cannot read is kept as a failed inbound event
with the reason; the rest of the page goes on. Once the store's history was backfilled, an order (or
order version) a pull creates or changes is counted as missed by webhooks. Errors: transient ones are
retried with backoff (``Retry-After`` first); ``AuthRevoked`` sets ``needs_attention``. Before any
request the platform's origin must pass the webhook SSRF policy (``allow_loopback``/``allow_private``).
A ``SyncError`` carries the run so far as ``progress`` (the pages before it are committed).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import aiohttp
import asyncpg
import structlog

from connectors.base import ConnectorError, NormalizedOrder
from hub.db import Conn
from hub.delivery.targets import TargetPolicy, check_url
from hub.ids import new_id
from hub.orders.rules import refusal
from hub.orders.upsert import upsert_orders
from hub.platforms import registry, subscriptions, sync_state
from hub.platforms.chat_remote import (
    AuthRevoked,
    RemoteError,
    RetryPolicy,
    SyncError,
    SyncNotPossible,
    TransientRemoteError,
)
from hub.platforms.pull import OrdersPage, PlatformClient, Sleep
from hub.platforms.targets import Target, load_target
from hub.settings import Settings
from hub.ssrf import UnresolvableHostError, UnsafeUrlError

log = structlog.get_logger("hub.platform_sync")

DEFAULT_LOOKBACK = timedelta(days=30)
MAX_PAGES = 100_000
#: A platform that throttles is waited for: many patient tries per page, each wait capped.
PLATFORM_RETRY = RetryPolicy(max_tries=10, base_delay=1.0, max_delay=60.0)


@dataclass
class SyncRun:
    """What one run did (progress while it runs)."""

    mode: Literal["backfill", "reconcile"]
    since: datetime
    pages: int = 0
    total: int | None = None
    orders_seen: int = 0
    created: int = 0
    changed: int = 0
    unchanged: int = 0
    stale: int = 0
    failed: int = 0
    missed: int = 0


@dataclass(frozen=True)
class SyncOptions:
    """Knobs of a run (the edges fill them from Settings)."""

    public_url: str | None = None
    interval_seconds: float = 600.0
    overlap_seconds: float = 300.0
    clock_skew_seconds: float = 300.0
    policy: RetryPolicy = PLATFORM_RETRY
    sleep: Sleep = asyncio.sleep
    #: The webhook SSRF policy's settings: a platform origin on loopback/private addresses only if allowed.
    allow_loopback: bool = False
    allow_private: bool = False


Progress = Callable[[SyncRun], None]


def options_from(settings: Settings) -> SyncOptions:
    """The engine's knobs from the hub's settings."""
    return SyncOptions(
        public_url=settings.public_url.rstrip("/") if settings.public_url else None,
        interval_seconds=settings.reconcile_interval_seconds,
        overlap_seconds=settings.reconcile_overlap_seconds,
        clock_skew_seconds=settings.source_clock_skew_seconds,
        allow_loopback=settings.webhook_allow_loopback,
        allow_private=settings.webhook_allow_private,
    )


def lock_key(connection_id: str) -> int:
    """The advisory-lock key of one connection's sync."""
    digest = hashlib.blake2b(f"platform_sync\0{connection_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def start_point(target: Target, *, now: datetime, since: datetime | None, overlap: float) -> datetime:
    """``since`` if asked, else the cursor minus the overlap, else 30 days back.

    A connection synced before the engine kept a cursor (a chat agent pulled by the old job) starts
    from its ``last_synced_at``, so a long pause before the upgrade leaves no gap.
    """
    if since is not None:
        return since
    cursor = target.sync.get("cursor")
    if isinstance(cursor, str):
        return datetime.fromisoformat(cursor.replace("Z", "+00:00")) - timedelta(seconds=overlap)
    if target.last_synced_at is not None:
        return target.last_synced_at - timedelta(seconds=overlap)
    return now - DEFAULT_LOOKBACK


async def run_sync(
    pool: asyncpg.Pool,
    *,
    connection_id: str,
    session: aiohttp.ClientSession,
    options: SyncOptions,
    since: datetime | None = None,
    on_progress: Progress | None = None,
    source: str | None = None,
) -> tuple[SyncRun, list[str]]:
    """Subscribe, then pull everything changed since the start point; returns the run and delivery ids.

    ``source``, when given, is the only source accepted (``SyncNotPossible`` for another one).
    """
    async with pool.acquire() as conn:
        target = await load_target(conn, connection_id)
        if source is not None and target.source != source:
            raise SyncNotPossible(f"connection {connection_id} is a {target.source} connection, not {source}")
        key = lock_key(connection_id)
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            raise SyncNotPossible(f"a sync of {connection_id} is already running")
        try:
            return await _locked_run(conn, target, session=session, options=options, since=since, report=on_progress)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", key)


async def run_subscribe(
    pool: asyncpg.Pool, *, connection_id: str, session: aiohttp.ClientSession, options: SyncOptions
) -> list[dict[str, Any]]:
    """Only make sure the subscriptions exist (``POST …/subscribe``); returns them."""
    async with pool.acquire() as conn:
        target = await load_target(conn, connection_id)
        key = lock_key(connection_id)
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            raise SyncNotPossible(f"a sync of {connection_id} is already running")
        try:
            client = registry.client_for(
                target.source, target.settings, session=session, secret=target.secret, sleep=options.sleep
            )
            try:
                await check_address(target, options)
                return await subscriptions.ensure(conn, target, client, public_url=options.public_url)
            except AuthRevoked as exc:
                await _needs_attention(conn, target, exc)
                raise
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", key)


async def _needs_attention(conn: Conn, target: Target, exc: AuthRevoked) -> None:
    reason = str(exc) or "the platform refused the credentials"
    await sync_state.mark_needs_attention(
        conn,
        connection_id=target.id,
        organization_id=target.organization_id,
        source=target.source,
        name=target.name,
        reason=reason,
    )
    log.warning("platform_sync_needs_attention", connection_id=target.id, source=target.source, reason=reason)


async def check_address(target: Target, options: SyncOptions) -> None:
    """The platform origin must pass the webhook SSRF policy before any request is made.

    The pinned session checks every name it resolves, but an IP-literal host is never resolved, so
    the policy is applied here too (settings are the merchant's input: not a way into our network).
    """
    origin = registry.api_origin(target.source, target.settings)
    if origin is None:
        return
    policy = TargetPolicy(allow_loopback=options.allow_loopback, allow_private=options.allow_private)
    try:
        await check_url(origin, policy=policy)
    except UnresolvableHostError as exc:  # DNS trouble passes: the next reconcile asks again
        raise TransientRemoteError(f"{origin}: {exc.reason}") from exc
    except UnsafeUrlError as exc:
        raise SyncNotPossible(f"{origin} refused: {exc.reason}") from exc


async def _locked_run(
    conn: Conn,
    target: Target,
    *,
    session: aiohttp.ClientSession,
    options: SyncOptions,
    since: datetime | None,
    report: Progress | None,
) -> tuple[SyncRun, list[str]]:
    started = datetime.now(UTC)
    mode: Literal["backfill", "reconcile"] = "reconcile" if target.sync.get("backfilled") else "backfill"
    run = SyncRun(mode=mode, since=start_point(target, now=started, since=since, overlap=options.overlap_seconds))
    next_at = started + timedelta(seconds=options.interval_seconds)
    client = registry.client_for(
        target.source, target.settings, session=session, secret=target.secret, sleep=options.sleep
    )
    await sync_state.mark_running(conn, target.id)
    delivery_ids: list[str] = []
    try:
        await check_address(target, options)
        await _subscribe(conn, target, client, options)
        delivery_ids = await _pull(conn, target, client, run, options=options, report=report)
    except AuthRevoked as exc:
        exc.progress = run
        await _needs_attention(conn, target, exc)
        raise
    except SyncError as exc:
        exc.progress = run
        await sync_state.mark_failed(conn, target.id, error=str(exc), next_at=next_at)
        log.warning("platform_sync_failed", connection_id=target.id, source=target.source, error=str(exc))
        raise
    except BaseException:
        await asyncio.shield(sync_state.mark_failed(conn, target.id, error="interrupted", next_at=next_at))
        raise
    await sync_state.mark_done(conn, target.id, cursor=started, finished=datetime.now(UTC), next_at=next_at)
    log.info(
        "platform_sync_done",
        connection_id=target.id,
        source=target.source,
        mode=run.mode,
        pages=run.pages,
        orders=run.orders_seen,
        created=run.created,
        changed=run.changed,
        missed=run.missed,
        failed=run.failed,
    )
    return run, delivery_ids


async def _subscribe(conn: Conn, target: Target, client: PlatformClient, options: SyncOptions) -> None:
    """Subscriptions first; a platform refusing them (other than the credentials) never stops the pull."""
    try:
        await subscriptions.ensure(conn, target, client, public_url=options.public_url)
    except AuthRevoked:
        raise
    except RemoteError as exc:
        log.warning("platform_subscribe_failed", connection_id=target.id, source=target.source, error=str(exc))
        await sync_state.set_subscriptions(conn, target.id, target.subscriptions, error=f"subscribing failed: {exc}")


async def _fetch(client: PlatformClient, run: SyncRun, cursor: str | None, options: SyncOptions) -> OrdersPage:
    policy = options.policy
    for attempt in range(1, policy.max_tries + 1):
        try:
            return await client.fetch_orders(since=run.since, cursor=cursor)
        except TransientRemoteError as exc:
            if attempt == policy.max_tries:
                raise TransientRemoteError(f"page {run.pages + 1}: still failing after {attempt} tries: {exc}") from exc
            wait = policy.delay(attempt, exc.retry_after)
            log.info("platform_sync_retry", page=run.pages + 1, attempt=attempt, wait_s=round(wait, 3), error=str(exc))
            await options.sleep(wait)
    raise AssertionError("unreachable: max_tries >= 1")  # pragma: no cover


async def _pull(
    conn: Conn, target: Target, client: PlatformClient, run: SyncRun, *, options: SyncOptions, report: Progress | None
) -> list[str]:
    delivery_ids: list[str] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await _fetch(client, run, cursor, options)
        run.total = page.total if page.total is not None else run.total
        delivery_ids += await _store_page(conn, target, client, page.orders, run, options.clock_skew_seconds)
        run.pages += 1
        if report is not None:
            report(run)
        if page.next_cursor is None:  # an empty page with a cursor (filtered out by the client) goes on
            return delivery_ids
        cursor = page.next_cursor
    log.warning("platform_sync_page_limit", connection_id=target.id, max_pages=MAX_PAGES)
    return delivery_ids


async def _store_page(
    conn: Conn, target: Target, client: PlatformClient, orders: list[dict[str, Any]], run: SyncRun, skew: float
) -> list[str]:
    normalized: list[NormalizedOrder] = []
    unreadable: list[tuple[dict[str, Any], str]] = []
    for order in orders:
        try:
            found = client.normalize(order)
        except ConnectorError as exc:
            unreadable.append((order, str(exc) or type(exc).__name__))
            continue
        except (TypeError, ValueError, KeyError, AttributeError) as exc:  # an answer its docs do not describe
            unreadable.append((order if isinstance(order, dict) else {"value": order}, f"unreadable order: {exc!r}"))
            continue
        why = refusal(found)  # the API's safety rules hold for pulled orders, as for webhooks
        if why is None:
            normalized.append(found)
        else:
            unreadable.append((order, why))
    async with conn.transaction():
        result = await upsert_orders(
            conn,
            organization_id=target.organization_id,
            orders=normalized,
            default_currency=target.default_currency,
            clock_skew=timedelta(seconds=skew),
        )
        await _keep_unreadable(conn, target, unreadable)
        changed = max(0, len(normalized) - result.created - result.unchanged - result.stale)
        missed = result.created + changed if run.mode == "reconcile" else 0
        await sync_state.add_counts(conn, target.id, seen=len(orders), missed=missed, failed=len(unreadable))
    run.orders_seen += len(orders)
    run.created += result.created
    run.changed += changed
    run.unchanged += result.unchanged
    run.stale += result.stale
    run.failed += len(unreadable)
    run.missed += missed
    if missed:
        log.warning("reconcile_found_missed_orders", connection_id=target.id, source=target.source, count=missed)
    return result.delivery_ids


async def _keep_unreadable(conn: Conn, target: Target, unreadable: list[tuple[dict[str, Any], str]]) -> None:
    """Each unreadable order becomes a failed inbound event, written as the platform's webhook would carry
    it (so retrying it after a fix parses it again) and keyed by its hash (stored once)."""
    rows = []
    for order, reason in unreadable:
        form = registry.inbound_form(target.source, order)
        key = "pull:sha256:" + hashlib.sha256(form.body).hexdigest()
        headers = {**form.headers, "x-orderhub-origin": f"{target.source} pull sync"}
        rows.append(
            (
                new_id("ie"),
                target.organization_id,
                target.id,
                target.source,
                key,
                headers,
                form.query,
                form.body,
                form.topic,
                reason,
            )
        )
        log.warning("platform_sync_unreadable_order", connection_id=target.id, remote_id=order.get("id"), reason=reason)
    if rows:
        await conn.executemany(
            "INSERT INTO inbound_events (id, organization_id, connection_id, source, delivery_key, headers, query, "
            "body, status, topic, error, attempts, order_ids, received_at, processed_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'failed', $9, $10, 1, '[]'::jsonb, now(), now()) "
            "ON CONFLICT (connection_id, delivery_key) DO NOTHING",
            rows,
        )

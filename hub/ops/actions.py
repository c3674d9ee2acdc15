"""What the on-call engineer sees and does: the ops summary, and the retries behind its buttons.

:func:`summary` assembles the page's figures (also printed by ``hub status``) from
:mod:`hub.ops.stats` and :mod:`hub.ops.retrying`, plus the latest failures with their payloads.

:func:`retry_delivery` (:mod:`hub.delivery.ledger`) and :func:`retry_inbound_event`
(:mod:`hub.ingest.events`) put one row back to work and wake a worker; they are the same functions
the REST retry endpoints call with ``organization_id`` set (another organization's id is a 404).
The database row is what makes the retry happen: the wake-up only makes it prompt, so when Redis
is down the row is still reset and the sweeper picks it up.

Errors (from :mod:`hub.errors`)::

    NotFound   404  no such row (or another organization's)
    Conflict   409  a delivery that already succeeded, is being sent right now, or whose endpoint
                    is disabled (it would fail again at once: re-enable the endpoint first)
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import asyncpg
import orjson
import structlog
from arq.connections import ArqRedis
from pydantic import BaseModel

from hub.db import Conn
from hub.delivery.ledger import retry_delivery
from hub.ingest.events import retry_inbound_event
from hub.ops import connections as ops_connections
from hub.ops import retrying as ops_retrying
from hub.ops import stats as ops_stats
from hub.ops.retrying import display_url
from hub.ops.stats import Charts, QueueStats
from hub.queue import Retried

__all__ = [
    "Retried",
    "Summary",
    "retry_delivery",
    "retry_inbound_event",
    "summary",
]

log = structlog.get_logger("hub.ops")

LATEST_FAILURES = 10
BODY_PREVIEW_CHARS = 2000
PAYLOAD_PREVIEW_CHARS = 4000
MAX_ENDPOINTS = 100


class InboundView(BaseModel):
    pending: int
    oldest_unprocessed_age_seconds: float | None
    failed: int


class DeliveriesView(BaseModel):
    pending: int
    due: int
    oldest_due_age_seconds: float | None
    failed: int
    succeeded: int
    #: Pending deliveries that failed at least once (their endpoints: ``Summary.retrying``).
    retrying: int


class SourceRow(BaseModel):
    """A source: its last five minutes, lifetime totals by status, and refused requests."""

    source: str
    received_5m: int
    rate_per_second: float
    processed_5m: int
    failed_5m: int
    ignored_5m: int
    totals: dict[str, int]
    rejects_5m: dict[str, int]
    rejects_total: dict[str, int]


class EndpointRow(BaseModel):
    """An endpoint worth a look: active in the last hour, failing, disabled, or holding failures."""

    id: str
    organization_id: str
    url: str
    description: str | None
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    attempts_1h: int
    succeeded_1h: int
    success_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    #: Failed attempts in the last hour: ``attempts_1h - succeeded_1h``, the complement of ``success_rate``.
    failed_1h: int
    retrying: int
    #: Deliveries that spent every attempt (status ``failed``), all time.
    failed: int


class FailedInbound(BaseModel):
    id: str
    organization_id: str
    connection_id: str
    source: str
    topic: str | None
    error: str | None
    attempts: int
    received_at: datetime
    processed_at: datetime | None
    size: int
    body: str
    body_truncated: bool


class FailedDelivery(BaseModel):
    id: str
    organization_id: str
    endpoint_id: str
    endpoint_url: str
    event_id: str
    event_type: str
    attempt_count: int
    last_status_code: int | None
    last_error: str | None
    updated: datetime
    payload: str
    payload_truncated: bool


class Summary(BaseModel):
    """Everything on the ops page."""

    generated_at: datetime
    stats_age_seconds: float
    queue: QueueStats
    jobs_per_second: float | None
    failed_jobs: int
    inbound: InboundView
    deliveries: DeliveriesView
    endpoints_disabled: int
    sources: list[SourceRow]
    endpoints: list[EndpointRow]
    failed_inbound: list[FailedInbound]
    failed_deliveries: list[FailedDelivery]
    #: Endpoints whose deliveries are failing but still retrying, and the latest such deliveries.
    retrying: list[ops_retrying.RetryingEndpoint]
    retrying_deliveries: list[ops_retrying.RetryingDelivery]
    #: Pulled platform connections: sync state, last sync, orders webhooks missed.
    connections: list[ops_connections.ConnectionLine]
    charts: Charts


def _preview(text: str, limit: int) -> tuple[str, bool]:
    return (text[:limit], True) if len(text) > limit else (text, False)


async def _failed_inbound(conn: Conn) -> list[FailedInbound]:
    rows = await conn.fetch(
        "SELECT id, organization_id, connection_id, source, topic, error, attempts, received_at, processed_at, "
        "octet_length(body) AS size, substring(body from 1 for $2) AS head FROM inbound_events "
        "WHERE status = 'failed' ORDER BY processed_at DESC, id DESC LIMIT $1",
        LATEST_FAILURES,
        BODY_PREVIEW_CHARS * 4,
    )
    result = []
    for row in rows:
        body, cut = _preview(bytes(row["head"]).decode("utf-8", "replace"), BODY_PREVIEW_CHARS)
        values = {k: v for k, v in dict(row).items() if k != "head"}
        result.append(FailedInbound(**values, body=body, body_truncated=cut or row["size"] > len(row["head"])))
    return result


async def _failed_deliveries(conn: Conn) -> list[FailedDelivery]:
    rows = await conn.fetch(
        "SELECT d.id, d.organization_id, d.endpoint_id, e.url AS endpoint_url, d.event_id, d.event_type, "
        "d.attempt_count, d.last_status_code, d.last_error, d.updated, ev.payload "
        "FROM deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id "
        "JOIN order_events ev ON ev.id = d.event_id "
        "WHERE d.status = 'failed' ORDER BY d.updated DESC, d.id DESC LIMIT $1",
        LATEST_FAILURES,
    )
    result = []
    for row in rows:
        payload = row["payload"]
        text = payload if isinstance(payload, str) else orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode()
        shown, cut = _preview(text, PAYLOAD_PREVIEW_CHARS)
        values = dict(row)
        values.pop("payload")
        values["endpoint_url"] = display_url(row["endpoint_url"])
        result.append(FailedDelivery(**values, payload=shown, payload_truncated=cut))
    return result


async def _endpoint_rows(
    conn: Conn, windows: list[ops_stats.EndpointWindow], held: dict[str, int]
) -> list[EndpointRow]:
    counted = await conn.fetch("SELECT endpoint_id, count(*) AS n FROM deliveries WHERE status = 'failed' GROUP BY 1")
    failed = {r["endpoint_id"]: r["n"] for r in counted}
    by_id = {w.id: w for w in windows}
    rows = await conn.fetch(
        "SELECT id, organization_id, url, description, enabled, disabled_reason, disabled_at, failing_since "
        "FROM webhook_endpoints WHERE deleted_at IS NULL "
        "AND (NOT enabled OR failing_since IS NOT NULL OR id = ANY($1::text[])) "
        "ORDER BY enabled, failing_since NULLS LAST, id LIMIT $2",
        sorted(set(by_id) | set(failed) | set(held)),
        MAX_ENDPOINTS,
    )
    result = []
    for row in rows:
        window = by_id.get(row["id"])
        result.append(
            EndpointRow(
                **{k: v for k, v in dict(row).items() if k != "url"},
                url=display_url(row["url"]),
                attempts_1h=window.attempts if window else 0,
                succeeded_1h=window.succeeded if window else 0,
                success_rate=window.success_rate if window else None,
                p50_ms=window.p50_ms if window else None,
                p95_ms=window.p95_ms if window else None,
                failed_1h=window.attempts - window.succeeded if window else 0,
                retrying=held.get(row["id"], 0),
                failed=failed.get(row["id"], 0),
            )
        )
    # Worst first: disabled, then the lowest success rate, then those holding retries, then the busiest.
    result.sort(
        key=lambda e: (e.enabled, e.success_rate if e.success_rate is not None else 2.0, not e.retrying, -e.attempts_1h)
    )
    return result


def _source_rows(
    known: list[str], aggregates: ops_stats.Aggregates, rejects: dict[str, dict[str, tuple[int, int]]]
) -> list[SourceRow]:
    windows = {w.source: w for w in aggregates.sources}
    names = sorted(set(known) | set(windows) | set(aggregates.totals.ingest) | set(rejects))
    window_seconds = ops_stats.SOURCE_WINDOW_SECONDS
    rows = []
    for name in names:
        w = windows.get(name) or ops_stats.SourceWindow(source=name, received=0, processed=0, failed=0, ignored=0)
        reasons = rejects.get(name, {})
        rows.append(
            SourceRow(
                source=name,
                received_5m=w.received,
                rate_per_second=round(w.received / window_seconds, 3),
                processed_5m=w.processed,
                failed_5m=w.failed,
                ignored_5m=w.ignored,
                totals=aggregates.totals.ingest.get(name, {}),
                rejects_5m={r: recent for r, (_total, recent) in reasons.items()},
                rejects_total={r: total for r, (total, _recent) in reasons.items()},
            )
        )
    return rows


async def summary(
    pool: asyncpg.Pool, redis: ArqRedis, *, max_age: float = ops_stats.AGGREGATES_MAX_AGE_SECONDS
) -> Summary:
    """The ops page's figures; aggregates may be up to ``max_age`` seconds old (0: fresh)."""
    live = await ops_stats.live(pool, redis)
    aggregates = await ops_stats.aggregates(pool, redis, max_age=max_age)
    async with pool.acquire() as conn:
        known = [
            r["source"] for r in await conn.fetch("SELECT DISTINCT source FROM connections WHERE deleted_at IS NULL")
        ]
        retrying = await ops_retrying.endpoints(conn)
        retrying_deliveries = await ops_retrying.deliveries(conn)
        endpoints = await _endpoint_rows(conn, aggregates.endpoints, {r.endpoint_id: r.retrying for r in retrying})
        failed_inbound = await _failed_inbound(conn)
        failed_deliveries = await _failed_deliveries(conn)
    connections = await ops_connections.connection_lines(pool)
    now = time.time()
    return Summary(
        generated_at=datetime.fromtimestamp(now, UTC),
        stats_age_seconds=round(max(0.0, now - aggregates.totals.computed_at), 1),
        queue=live.queue,
        jobs_per_second=aggregates.totals.jobs_per_second,
        failed_jobs=live.inbound_failed + live.deliveries_failed,
        inbound=InboundView(
            pending=live.inbound_pending,
            oldest_unprocessed_age_seconds=live.inbound_oldest_unprocessed_age_seconds,
            failed=live.inbound_failed,
        ),
        deliveries=DeliveriesView(
            pending=live.deliveries_pending,
            due=live.deliveries_due,
            oldest_due_age_seconds=live.deliveries_oldest_due_age_seconds,
            failed=live.deliveries_failed,
            succeeded=aggregates.totals.deliveries.get("succeeded", 0),
            retrying=sum(r.retrying for r in retrying),
        ),
        endpoints_disabled=live.endpoints_disabled,
        sources=_source_rows(known, aggregates, live.rejects),
        endpoints=endpoints,
        failed_inbound=failed_inbound,
        failed_deliveries=failed_deliveries,
        retrying=retrying,
        connections=connections,
        retrying_deliveries=retrying_deliveries,
        charts=aggregates.charts,
    )

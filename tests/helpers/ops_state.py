"""A known state for the ops view, written straight into the tables (the source of truth) and Redis.

Raw SQL on purpose: the state is aged (rows received minutes ago, an endpoint failing for five days,
attempts with set latencies), which no service call can produce. The numbers in :class:`Expected`
are what the page, ``/metrics`` and ``hub status`` must show for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from hub import queue
from hub.delivery import signing
from hub.ops.metrics import BAD_PAYLOAD, BAD_SIGNATURE, record_reject

OPS_TOKEN = "ops-test-token-0123456789"
ORG = "org_ops"
EP_OK = "we_ops_ok"
EP_OFF = "we_ops_off"
FAILED_DELIVERY = "dlv_ops_failed_ok"
FAILED_DELIVERY_OFF = "dlv_ops_failed_off"
FAILED_INBOUND = ("in_ops_failed_1", "in_ops_failed_2")
DISABLED_REASON = "failing for 5 days: HTTP 500"


@dataclass(frozen=True)
class Expected:
    """What the seeded state must read as."""

    ingest: dict[str, dict[str, int]]
    deliveries: dict[str, int]
    attempts: dict[str, tuple[int, int]]
    latencies_ms: tuple[float, ...]
    queue_depth: int
    queue_ready: int
    in_progress: int
    inbound_pending: int
    inbound_failed: int
    deliveries_failed: int
    endpoints_disabled: int
    orders: int
    rejects: dict[str, dict[str, int]]


async def _ago(conn: asyncpg.Connection, seconds: float) -> Any:
    return await conn.fetchval("SELECT now() - make_interval(secs => $1)", float(seconds))


async def _inbound(
    conn: asyncpg.Connection, event_id: str, source: str, status: str, age: float, error: str | None = None
) -> None:
    received = await _ago(conn, age)
    await conn.execute(
        "INSERT INTO inbound_events (id, organization_id, connection_id, source, delivery_key, headers, query, "
        "body, status, topic, error, attempts, order_ids, received_at, processed_at) "
        "VALUES ($1, $2, $3, $4, $1, '{}'::jsonb, '{}'::jsonb, $5, $6, 'order.created', $7, 1, '[]'::jsonb, $8, "
        "CASE WHEN $6::varchar = 'received' THEN NULL ELSE $8::timestamptz + interval '1 second' END)",
        event_id,
        ORG,
        f"con_{source}",
        source,
        b'{"event": "order.created", "data": {"id": 1001, "total": {"amount": 250}}}',
        status,
        error,
        received,
    )


async def _endpoint(conn: asyncpg.Connection, endpoint_id: str, url: str, *, enabled: bool) -> None:
    await conn.execute(
        "INSERT INTO webhook_endpoints (id, organization_id, url, event_types, enabled, secret, disabled_reason, "
        "disabled_at, failing_since, created, updated) VALUES ($1, $2, $3, '[\"order.*\"]'::jsonb, $4, $5, $6, "
        "CASE WHEN $4 THEN NULL ELSE now() END, CASE WHEN $4 THEN NULL ELSE now() - interval '5 days' END, "
        "now(), now())",
        endpoint_id,
        ORG,
        url,
        enabled,
        signing.new_secret(),
        None if enabled else DISABLED_REASON,
    )


async def _delivery(
    conn: asyncpg.Connection, delivery_id: str, endpoint_id: str, status: str, latencies: list[float], *, due: Any
) -> None:
    """A delivery of its own order event, with one attempt row per latency (only a success's last one succeeded)."""
    ok = status == "succeeded"
    event_id = "evt_" + delivery_id
    order = {"id": "ord_" + delivery_id, "status": "pending", "total_amount": 250.0, "currency": "SAR"}
    payload = {"id": event_id, "type": "order.created", "created": "2026-01-01T00:00:00Z", "data": {"order": order}}
    await conn.execute(
        "INSERT INTO order_events (id, organization_id, order_id, type, source, payload, created) "
        "VALUES ($1, $2, $3, 'order.created', 'salla', $4, now())",
        event_id,
        ORG,
        order["id"],
        payload,
    )
    await conn.execute(
        "INSERT INTO deliveries (id, organization_id, endpoint_id, event_id, event_type, status, attempt_count, "
        "next_attempt_at, last_status_code, last_error, created, updated, completed_at) "
        "VALUES ($1, $2, $3, $4, 'order.created', $5, $6, $7, $8, $9, now(), now(), "
        "CASE WHEN $5::varchar = 'pending' THEN NULL ELSE now() END)",
        delivery_id,
        ORG,
        endpoint_id,
        event_id,
        status,
        len(latencies),
        due if status == "pending" else None,
        None if not latencies else (200 if ok else 500),
        None if ok or not latencies else "HTTP 500 Internal Server Error",
    )
    for n, latency in enumerate(latencies, start=1):
        won = ok and n == len(latencies)
        await conn.execute(
            "INSERT INTO delivery_attempts (delivery_id, attempt_no, started_at, status_code, latency_ms, "
            "response_excerpt, error, succeeded) "
            "VALUES ($1, $2, now() - interval '10 minutes', $3, $4, $5, $6, $7)",
            delivery_id,
            n,
            200 if won else 500,
            latency,
            "ok" if won else "Internal Server Error",
            None if won else "HTTP 500",
            won,
        )


async def _queue(redis: Any, *, backlog: bool) -> None:
    """With a backlog: two jobs waiting (one for two minutes) and two running; always one deferred."""
    now_ms = time.time() * 1000
    if backlog:
        jobs = (
            ("ops-job-old", now_ms - 120_000),
            ("ops-job-new", now_ms - 5_000),
            ("ops-job-running-1", now_ms - 200_000),  # running for a while: not "waiting"
            ("ops-job-running-2", now_ms - 10_000),
        )
        for job_id, score in jobs:
            await queue.enqueue(redis, "ops_test_noop", [job_id], job_id=job_id)
            await redis.zadd(queue.QUEUE_NAME, {job_id: score}, xx=True)
        await redis.set("arq:in-progress:ops-job-running-1", b"1", ex=300)
        await redis.set("arq:in-progress:ops-job-running-2", b"1", ex=300)
        # arq keeps a finished cron job's in-progress key for 60 s: it is not running.
        await redis.set("arq:in-progress:cron-finished", b"1", ex=60)
    await queue.enqueue(redis, "ops_test_noop", ["later"], job_id="ops-job-later", defer=3600)


async def seed(conn: asyncpg.Connection, redis: Any, *, endpoint_url: str, backlog: bool = True) -> Expected:
    """Insert the known state. ``backlog=False`` leaves nothing a running worker would pick up by itself."""
    await conn.execute(
        "INSERT INTO organizations (id, name, is_test, default_currency, created) "
        "VALUES ($1, 'ops', false, 'SAR', now())",
        ORG,
    )
    for source in ("salla", "shopify", "zid"):
        await conn.execute(
            "INSERT INTO connections (id, organization_id, source, name, secret, settings, created) "
            "VALUES ($1, $2, $3, $3, 'secret', '{}'::jsonb, now())",
            f"con_{source}",
            ORG,
            source,
        )

    for i in range(5):
        await _inbound(conn, f"in_ops_salla_ok_{i}", "salla", "processed", 120)
    for i, event_id in enumerate(FAILED_INBOUND):
        await _inbound(conn, event_id, "salla", "failed", 180 + i, error="Salla payload has no data.id")
    for i in range(3):
        await _inbound(conn, f"in_ops_shopify_ok_{i}", "shopify", "processed", 1800)
    await _inbound(conn, "in_ops_shopify_ignored", "shopify", "ignored", 100)
    if backlog:
        await _inbound(conn, "in_ops_salla_waiting", "salla", "received", 90)

    for _ in range(3):
        await record_reject(redis, "salla", BAD_SIGNATURE)
    await record_reject(redis, "shopify", BAD_PAYLOAD)

    await _endpoint(conn, EP_OK, endpoint_url, enabled=True)
    await _endpoint(conn, EP_OFF, "https://merchant.example/hooks?key=secret", enabled=False)
    due = await _ago(conn, 30 if backlog else -86400)
    for i, latency in enumerate((100.0, 200.0, 300.0, 400.0)):
        await _delivery(conn, f"dlv_ops_ok_{i}", EP_OK, "succeeded", [latency], due=due)
    await _delivery(conn, FAILED_DELIVERY, EP_OK, "failed", [50.0, 50.0, 50.0], due=due)
    for i in range(2):
        await _delivery(conn, f"dlv_ops_pending_{i}", EP_OK, "pending", [], due=due)
    await _delivery(conn, FAILED_DELIVERY_OFF, EP_OFF, "failed", [1500.0, 1500.0], due=due)

    for i in range(3):
        await conn.execute(
            "INSERT INTO orders (id, organization_id, source, external_id, created_by, products, subtotal, discount, "
            "tax, delivery_fee, total_amount, currency, status, payment_status, fulfillment_status, status_history, "
            "created, updated) VALUES ($1, $2, 'salla', $3, 'webhook', '[]'::jsonb, 100, 0, 15, 0, 115, 'SAR', "
            "'pending', 'pending', 'unfulfilled', '[]'::jsonb, now(), now())",
            f"ord_ops_{i}",
            ORG,
            str(1000 + i),
        )
    await _queue(redis, backlog=backlog)

    return Expected(
        ingest={
            "salla": {"processed": 5, "failed": 2, **({"received": 1} if backlog else {})},
            "shopify": {"processed": 3, "ignored": 1},
        },
        deliveries={"succeeded": 4, "failed": 2, "pending": 2},
        attempts={EP_OK: (4, 3), EP_OFF: (0, 2)},
        latencies_ms=(100.0, 200.0, 300.0, 400.0, 50.0, 50.0, 50.0, 1500.0, 1500.0),
        queue_depth=5 if backlog else 1,
        queue_ready=2 if backlog else 0,
        in_progress=2 if backlog else 0,
        inbound_pending=1 if backlog else 0,
        inbound_failed=2,
        deliveries_failed=2,
        endpoints_disabled=1,
        orders=3,
        rejects={"salla": {BAD_SIGNATURE: 3}, "shopify": {BAD_PAYLOAD: 1}},
    )


EP_RETRY = "we_ops_retrying"
RETRYING = ("dlv_ops_retrying_1", "dlv_ops_retrying_2")


async def seed_retrying(conn: asyncpg.Connection, *, endpoint_url: str, next_in_seconds: float = 3600) -> None:
    """An endpoint at 0 %: two deliveries failed (HTTP 500) and wait for their next attempt; none gave up.

    Needs :func:`seed` first (the organization). The first delivery's next attempt comes first.
    """
    await _endpoint(conn, EP_RETRY, endpoint_url, enabled=True)
    await conn.execute(
        "UPDATE webhook_endpoints SET failing_since = now() - interval '20 minutes' WHERE id = $1", EP_RETRY
    )
    for i, delivery_id in enumerate(RETRYING):
        due = await _ago(conn, -(next_in_seconds + 60 * i))
        await _delivery(conn, delivery_id, EP_RETRY, "pending", [80.0] * (i + 1), due=due)

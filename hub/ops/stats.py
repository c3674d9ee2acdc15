"""Cluster-wide figures for the ops page, ``hub status`` and ``/metrics``, read from Postgres and Redis.

Two kinds, by cost:

* :class:`Live` — cheap and exact on every call: the arq queue (``ZCARD``, the oldest score, a
  ``SCAN`` for in-progress keys), backlog and failure counts from partial indexes, rejects.
* :class:`Aggregates` — lifetime counts (:mod:`hub.ops.counts`), the 5-minute per-source
  window, per-endpoint success rate and latency over the last hour, per-minute charts. These read
  time-index ranges (tens of milliseconds at a million rows), yet the page refreshes every 2 s in
  every open tab and Prometheus scrapes every process, so the result is cached in Redis and
  recomputed at most every :data:`AGGREGATES_MAX_AGE_SECONDS` *across the whole cluster*: one
  process takes a short Redis lock and refreshes, the others serve the cached copy.

Nothing here lives in process memory, so every API process shows the same numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

import asyncpg
from arq.connections import ArqRedis
from pydantic import BaseModel, ValidationError

from hub.db import Conn
from hub.ops import counts as ops_counts
from hub.ops import retrying as ops_retrying
from hub.ops.arq_queue import QueueStats, queue_stats
from hub.ops.counts import LATENCY_BUCKETS_SECONDS
from hub.ops.rejects import read_rejects

__all__ = [
    "AGGREGATES_MAX_AGE_SECONDS",
    "Aggregates",
    "Charts",
    "EndpointWindow",
    "Live",
    "MetricsSnapshot",
    "QueueStats",
    "SourceWindow",
    "Totals",
    "aggregates",
    "live",
    "queue_stats",
    "snapshot",
]

AGGREGATES_MAX_AGE_SECONDS = 10.0
SOURCE_WINDOW_SECONDS = 300
CHART_MINUTES = 60
#: Above this many rows ``hub_orders_total`` reads the planner's estimate instead of counting.
EXACT_COUNT_LIMIT = 100_000
M = TypeVar("M", bound=BaseModel)
_CACHE_KEY = "hub:ops:aggregates:v1"
_REFRESH_KEY = "hub:ops:aggregates:refresh"


class Live(BaseModel):
    """Figures read fresh on every call (all cheap)."""

    queue: QueueStats
    inbound_pending: int
    inbound_oldest_unprocessed_age_seconds: float | None
    inbound_failed: int
    deliveries_pending: int
    deliveries_due: int
    deliveries_oldest_due_age_seconds: float | None
    deliveries_failed: int
    endpoints_disabled: int
    #: ``{source: {reason: (lifetime, last 5 minutes)}}``
    rejects: dict[str, dict[str, tuple[int, int]]]


class Totals(BaseModel):
    """Lifetime figures: current counts for the page, monotonic ``counters`` for ``/metrics``."""

    computed_at: float
    #: Stored inbound events by source and *current* status.
    ingest: dict[str, dict[str, int]]
    #: Deliveries by *current* status (pending, succeeded, failed).
    deliveries: dict[str, int]
    #: ``{endpoint_id: (succeeded, failed)}`` attempts (rows of ``delivery_attempts``).
    attempts: dict[str, tuple[int, int]]
    #: Cumulative ``(upper bound in seconds, attempts at or under it)``; ``latency_count`` is ``+Inf``.
    latency_buckets: list[tuple[float, int]]
    latency_count: int
    latency_sum_seconds: float
    orders: int
    counters: ops_counts.Counters
    #: Inbound events that reached an outcome, and delivery attempts (both only ever grow).
    jobs_ingest: int
    jobs_delivery: int
    jobs_per_second: float | None


class SourceWindow(BaseModel):
    """One source over the last five minutes."""

    source: str
    received: int
    processed: int
    failed: int
    ignored: int


class EndpointWindow(BaseModel):
    """One endpoint's attempts over the last hour."""

    id: str
    attempts: int
    succeeded: int
    success_rate: float | None
    p50_ms: float | None
    p95_ms: float | None


class Charts(BaseModel):
    """Per-minute counts over the last hour, oldest first (the last minute is still running)."""

    minutes: list[datetime]
    inbound_received: list[int]
    deliveries_succeeded: list[int]
    attempts_failed: list[int]


class Aggregates(BaseModel):
    """Everything expensive, computed together and cached cluster-wide."""

    totals: Totals
    sources: list[SourceWindow]
    endpoints: list[EndpointWindow]
    charts: Charts


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """What one ``/metrics`` scrape renders."""

    generated_at: float
    live: Live
    aggregates: Aggregates
    #: Endpoints with deliveries that failed and will be tried again (read fresh: it is what on-call acts on).
    retrying: list[ops_retrying.RetryingEndpoint] = field(default_factory=list)

    @property
    def totals(self) -> Totals:
        return self.aggregates.totals

    @property
    def endpoints(self) -> list[EndpointWindow]:
        return self.aggregates.endpoints


_LIVE_SQL = """
SELECT
  (SELECT count(*) FROM inbound_events WHERE status = 'received') AS inbound_pending,
  (SELECT extract(epoch FROM clock_timestamp() - min(received_at))::float8
     FROM inbound_events WHERE status = 'received') AS inbound_oldest,
  (SELECT count(*) FROM inbound_events WHERE status = 'failed') AS inbound_failed,
  (SELECT count(*) FROM deliveries WHERE status = 'pending') AS deliveries_pending,
  (SELECT count(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at <= now()) AS deliveries_due,
  (SELECT extract(epoch FROM clock_timestamp() - min(next_attempt_at))::float8
     FROM deliveries WHERE status = 'pending' AND next_attempt_at <= now()) AS deliveries_oldest_due,
  (SELECT count(*) FROM deliveries WHERE status = 'failed') AS deliveries_failed,
  (SELECT count(*) FROM webhook_endpoints WHERE NOT enabled AND deleted_at IS NULL) AS endpoints_disabled
"""


def _age(value: float | None) -> float | None:
    return None if value is None else max(0.0, float(value))


async def live(pool: asyncpg.Pool, redis: ArqRedis) -> Live:
    """The cheap, exact figures (every count here reads a partial index or a small table)."""
    row = await pool.fetchrow(_LIVE_SQL)
    assert row is not None
    return Live(
        queue=await queue_stats(redis),
        inbound_pending=row["inbound_pending"],
        inbound_oldest_unprocessed_age_seconds=_age(row["inbound_oldest"]),
        inbound_failed=row["inbound_failed"],
        deliveries_pending=row["deliveries_pending"],
        deliveries_due=row["deliveries_due"],
        deliveries_oldest_due_age_seconds=_age(row["deliveries_oldest_due"]),
        deliveries_failed=row["deliveries_failed"],
        endpoints_disabled=row["endpoints_disabled"],
        rejects=await read_rejects(redis, last_minutes=SOURCE_WINDOW_SECONDS // 60),
    )


#: Per-endpoint rates and percentiles read at most this many of the hour's latest attempts, so the
#: refresh costs the same at 10 or 1,000 deliveries a second (busy hours: the latest minutes).
ENDPOINT_SAMPLE = 20_000
# Each sampled attempt looks its endpoint up by primary key: far fewer rows than the deliveries
# table, which a join would scan whole.
_ENDPOINTS_SQL = """
SELECT endpoint_id, count(*) AS attempts, count(*) FILTER (WHERE succeeded) AS succeeded,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95
FROM (SELECT (SELECT d.endpoint_id FROM deliveries d WHERE d.id = a.delivery_id) AS endpoint_id,
             a.succeeded, a.latency_ms
      FROM delivery_attempts a WHERE a.started_at >= now() - interval '1 hour'
      ORDER BY a.started_at DESC LIMIT $1) recent
GROUP BY endpoint_id
"""


async def _orders(conn: Conn) -> int:
    estimate = await conn.fetchval("SELECT reltuples::bigint FROM pg_class WHERE oid = 'orders'::regclass")
    if estimate is not None and estimate > EXACT_COUNT_LIMIT:
        return int(estimate)
    return int(await conn.fetchval("SELECT count(*) FROM orders"))


async def _totals(conn: Conn, redis: ArqRedis, counts: ops_counts.Counts, previous: Totals | None) -> Totals:
    now = time.time()
    orders = await _orders(conn)
    counters = await ops_counts.observe(redis, counts, orders=orders, at=now)
    outcomes = ("processed", "failed", "ignored")
    jobs_ingest = sum(by.get(status, 0) for by in counters.ingest.values() for status in outcomes)
    jobs_delivery = sum(ok + failed for ok, failed in counts.attempts.values())
    rate = None
    if previous is not None and 0 < now - previous.computed_at <= 300:
        done = jobs_ingest + jobs_delivery - previous.jobs_ingest - previous.jobs_delivery
        rate = max(0.0, done / (now - previous.computed_at))
    return Totals(
        computed_at=now,
        ingest=counts.ingest,
        deliveries={"pending": 0, "succeeded": 0, "failed": 0, **counts.deliveries},
        attempts=counts.attempts,
        latency_buckets=list(zip(LATENCY_BUCKETS_SECONDS, counts.latency_le, strict=True)),
        latency_count=counts.latency_count,
        latency_sum_seconds=counts.latency_sum_ms / 1000,
        orders=orders,
        counters=counters,
        jobs_ingest=jobs_ingest,
        jobs_delivery=jobs_delivery,
        jobs_per_second=rate,
    )


async def _sources(conn: Conn) -> list[SourceWindow]:
    rows = await conn.fetch(
        "SELECT source, status, count(*) AS n FROM inbound_events "
        "WHERE received_at >= now() - make_interval(secs => $1) GROUP BY 1, 2",
        float(SOURCE_WINDOW_SECONDS),
    )
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row["source"], {})[row["status"]] = row["n"]
    return [
        SourceWindow(
            source=source,
            received=sum(by.values()),
            processed=by.get("processed", 0),
            failed=by.get("failed", 0),
            ignored=by.get("ignored", 0),
        )
        for source, by in sorted(counts.items())
    ]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


async def _endpoints(conn: Conn) -> list[EndpointWindow]:
    return [
        EndpointWindow(
            id=row["endpoint_id"],
            attempts=row["attempts"],
            succeeded=row["succeeded"],
            success_rate=row["succeeded"] / row["attempts"] if row["attempts"] else None,
            p50_ms=_ms(row["p50"]),
            p95_ms=_ms(row["p95"]),
        )
        for row in await conn.fetch(_ENDPOINTS_SQL, ENDPOINT_SAMPLE)
    ]


async def _charts(conn: Conn) -> Charts:
    current: datetime = await conn.fetchval("SELECT date_trunc('minute', now())")
    minutes = [current - timedelta(minutes=CHART_MINUTES - 1 - i) for i in range(CHART_MINUTES)]
    index = {minute: i for i, minute in enumerate(minutes)}
    received = [0] * CHART_MINUTES
    succeeded = [0] * CHART_MINUTES
    failed = [0] * CHART_MINUTES
    for row in await conn.fetch(
        "SELECT date_trunc('minute', received_at) AS m, count(*) AS n FROM inbound_events "
        "WHERE received_at >= $1 GROUP BY 1",
        minutes[0],
    ):
        if row["m"] in index:
            received[index[row["m"]]] = row["n"]
    for row in await conn.fetch(
        "SELECT date_trunc('minute', started_at) AS m, succeeded, count(*) AS n FROM delivery_attempts "
        "WHERE started_at >= $1 GROUP BY 1, 2",
        minutes[0],
    ):
        if row["m"] in index:
            (succeeded if row["succeeded"] else failed)[index[row["m"]]] = row["n"]
    return Charts(minutes=minutes, inbound_received=received, deliveries_succeeded=succeeded, attempts_failed=failed)


async def compute_aggregates(
    pool: asyncpg.Pool,
    redis: ArqRedis,
    *,
    previous: Totals | None = None,
    history_max_age: float = ops_counts.HISTORY_MAX_AGE_SECONDS,
) -> Aggregates:
    """Run the aggregate queries now; ``previous`` gives ``jobs_per_second`` its baseline."""
    counts = await ops_counts.lifetime(pool, redis, history_max_age=history_max_age)
    async with pool.acquire() as conn:
        return Aggregates(
            totals=await _totals(conn, redis, counts, previous),
            sources=await _sources(conn),
            endpoints=await _endpoints(conn),
            charts=await _charts(conn),
        )


def _parse(model: type[M], raw: bytes | None) -> M | None:
    """A cached copy, or None when there is none or it was written by another version of the hub."""
    if not raw:
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        return None


async def aggregates(pool: asyncpg.Pool, redis: ArqRedis, *, max_age: float = AGGREGATES_MAX_AGE_SECONDS) -> Aggregates:
    """The cached aggregates, refreshed by at most one process per ``max_age`` seconds.

    ``max_age=0`` recomputes everything now, the counted history included (tests, ``hub status``).
    """
    cached = _parse(Aggregates, await redis.get(_CACHE_KEY))
    if cached is not None and time.time() - cached.totals.computed_at < max_age:
        return cached
    # Someone else is refreshing (or just did): serve what we have rather than pile on.
    if (
        cached is not None
        and max_age > 0
        and not await redis.set(_REFRESH_KEY, b"1", nx=True, px=max(1, int(max_age * 1000)))
    ):
        return cached
    fresh = await compute_aggregates(
        pool,
        redis,
        previous=cached.totals if cached else None,
        history_max_age=ops_counts.HISTORY_MAX_AGE_SECONDS if max_age > 0 else 0,
    )
    await redis.set(_CACHE_KEY, fresh.model_dump_json(), ex=3600)
    return fresh


async def snapshot(
    pool: asyncpg.Pool, redis: ArqRedis, *, max_age: float = AGGREGATES_MAX_AGE_SECONDS
) -> MetricsSnapshot:
    """Everything ``/metrics`` renders."""
    async with pool.acquire() as conn:
        retrying = await ops_retrying.endpoints(conn)
    return MetricsSnapshot(
        generated_at=time.time(),
        live=await live(pool, redis),
        aggregates=await aggregates(pool, redis, max_age=max_age),
        retrying=retrying,
    )

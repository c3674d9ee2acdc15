"""Lifetime counts (the counters of ``/metrics``) without rescanning whole tables on every refresh.

Rows are split by an immutable time column (``received_at``, ``created``, ``started_at``) at a
moment ``before``, five minutes in the past when it is taken:

* the *history* — rows older than ``before`` — is counted with full scans, cached in Redis and
  recounted every :data:`HISTORY_MAX_AGE_SECONDS` (about 3 s of database time per million rows of
  each table, so well under 1 % of a core);
* the *tail* — everything since — is counted on every refresh through the time indexes.

History plus tail is every row, so the counts are exact except for one thing: a status change of
a row older than ``before`` (a failed delivery retried the next day) shows up when the history is
next recounted, at most five minutes later. A flushed Redis only costs one recount.

:func:`observe` turns counts of rows *in* a status into counters that never decrease (see there).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, Literal, cast

import asyncpg
from arq.connections import ArqRedis
from pydantic import BaseModel, Field, ValidationError

from hub.db import Conn

__all__ = [
    "HISTORY_LAG_SECONDS",
    "HISTORY_MAX_AGE_SECONDS",
    "LATENCY_BUCKETS_SECONDS",
    "Counters",
    "Counts",
    "History",
    "lifetime",
    "observe",
]

#: Upper bounds of ``hub_delivery_latency_seconds`` buckets (``+Inf`` is added).
LATENCY_BUCKETS_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HISTORY_LAG_SECONDS = 300
HISTORY_MAX_AGE_SECONDS = 300
_HISTORY_KEY = "hub:ops:history:v1"
_BUCKETS = ", ".join(
    f"count(*) FILTER (WHERE a.latency_ms <= {bound * 1000:g}) AS le{i}"
    for i, bound in enumerate(LATENCY_BUCKETS_SECONDS)
)

Op = Literal["<", ">="]


class Counts(BaseModel):
    """Row counts of one time slice (or of all rows)."""

    ingest: dict[str, dict[str, int]] = Field(default_factory=dict)
    deliveries: dict[str, int] = Field(default_factory=dict)
    #: ``{endpoint_id: (succeeded, failed)}`` from ``delivery_attempts`` rows.
    attempts: dict[str, tuple[int, int]] = Field(default_factory=dict)
    #: Cumulative attempts at or under each of :data:`LATENCY_BUCKETS_SECONDS`.
    latency_le: list[int] = Field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_SECONDS))
    latency_count: int = 0
    latency_sum_ms: float = 0.0

    def plus(self, other: Counts) -> Counts:
        """The counts of both slices together."""
        ingest = {source: dict(by) for source, by in self.ingest.items()}
        for source, by in other.ingest.items():
            mine = ingest.setdefault(source, {})
            for status, n in by.items():
                mine[status] = mine.get(status, 0) + n
        deliveries = dict(self.deliveries)
        for status, n in other.deliveries.items():
            deliveries[status] = deliveries.get(status, 0) + n
        attempts = dict(self.attempts)
        for endpoint, (ok, failed) in other.attempts.items():
            had_ok, had_failed = attempts.get(endpoint, (0, 0))
            attempts[endpoint] = (had_ok + ok, had_failed + failed)
        return Counts(
            ingest=ingest,
            deliveries=deliveries,
            attempts=attempts,
            latency_le=[a + b for a, b in zip(self.latency_le, other.latency_le, strict=True)],
            latency_count=self.latency_count + other.latency_count,
            latency_sum_ms=self.latency_sum_ms + other.latency_sum_ms,
        )


class History(BaseModel):
    """Counts of the rows older than ``before``, as of ``computed_at``."""

    before: datetime
    computed_at: float
    counts: Counts


def _attempts_sql(op: Op, *, lookup: bool) -> str:
    # A few thousand tail rows look their endpoint up by primary key; the whole history joins once.
    endpoint = "(SELECT d.endpoint_id FROM deliveries d WHERE d.id = a.delivery_id)" if lookup else "d.endpoint_id"
    join = "" if lookup else " JOIN deliveries d ON d.id = a.delivery_id"
    return (
        f"SELECT {endpoint} AS endpoint_id, a.succeeded, count(*) AS n, count(a.latency_ms) AS timed, "
        f"coalesce(sum(a.latency_ms), 0)::float8 AS sum_ms, {_BUCKETS} "
        f"FROM delivery_attempts a{join} WHERE a.started_at {op} $1 GROUP BY 1, 2"
    )


async def count(conn: Conn, *, op: Op, at: datetime) -> Counts:
    """Counts of rows whose time is ``op at`` (``<``: the history, ``>=``: the tail)."""
    counts = Counts()
    for row in await conn.fetch(
        f"SELECT source, status, count(*) AS n FROM inbound_events WHERE received_at {op} $1 GROUP BY 1, 2", at
    ):
        counts.ingest.setdefault(row["source"], {})[row["status"]] = row["n"]
    for row in await conn.fetch(f"SELECT status, count(*) AS n FROM deliveries WHERE created {op} $1 GROUP BY 1", at):
        counts.deliveries[row["status"]] = row["n"]
    for row in await conn.fetch(_attempts_sql(op, lookup=op == ">="), at):
        ok, failed = counts.attempts.get(row["endpoint_id"], (0, 0))
        if row["succeeded"]:
            ok += row["n"]
        else:
            failed += row["n"]
        counts.attempts[row["endpoint_id"]] = (ok, failed)
        counts.latency_le = [have + row[f"le{i}"] for i, have in enumerate(counts.latency_le)]
        counts.latency_count += row["timed"]
        counts.latency_sum_ms += row["sum_ms"]
    return counts


async def history(pool: asyncpg.Pool, redis: ArqRedis, *, max_age: float = HISTORY_MAX_AGE_SECONDS) -> History:
    """The cached history, recounted when older than ``max_age`` seconds (0: now)."""
    raw = await redis.get(_HISTORY_KEY)
    try:
        cached = History.model_validate_json(raw) if raw else None
    except ValidationError:  # written by another version of the hub: recount
        cached = None
    if cached is not None and time.time() - cached.computed_at < max_age:
        return cached
    async with pool.acquire() as conn:
        before: datetime = await conn.fetchval("SELECT now() - make_interval(secs => $1)", float(HISTORY_LAG_SECONDS))
        fresh = History(before=before, computed_at=time.time(), counts=await count(conn, op="<", at=before))
    await redis.set(_HISTORY_KEY, fresh.model_dump_json(), ex=24 * 3600)
    return fresh


async def lifetime(pool: asyncpg.Pool, redis: ArqRedis, *, history_max_age: float = HISTORY_MAX_AGE_SECONDS) -> Counts:
    """Counts of every row: the cached history plus a fresh count of the tail."""
    past = await history(pool, redis, max_age=history_max_age)
    async with pool.acquire() as conn:
        tail = await count(conn, op=">=", at=past.before)
    return past.counts.plus(tail)


# ---- counters that never go down ---------------------------------------------------------------------


class Counters(BaseModel):
    """Prometheus counters derived from row counts, made monotonic by :func:`observe`.

    ``ingest[source]["received"]`` counts every stored event; ``processed``/``failed``/``ignored``
    count events reaching that outcome. ``deliveries`` has ``created``, ``succeeded`` and ``failed``.
    """

    ingest: dict[str, dict[str, int]] = Field(default_factory=dict)
    deliveries: dict[str, int] = Field(default_factory=dict)
    orders: int = 0


_STATE_KEY = "hub:ops:counters:seen"
_EMITTED_KEY = "hub:ops:counters"
# Counts of rows *in* a status go down when a row leaves it (a failed delivery retried), and
# Prometheus reads any decrease as a counter reset (a spike the size of the whole counter). So the
# emitted counter only ever adds the increases seen between refreshes: "deliveries that reached
# failed", not "deliveries failed now". Refreshes older than the last applied one are ignored, so
# two processes refreshing at once cannot count a rise twice.
_OBSERVE_LUA = """
local at = tonumber(ARGV[1])
local last = tonumber(redis.call('HGET', KEYS[1], '@at') or '-1')
local apply = at > last
if apply then redis.call('HSET', KEYS[1], '@at', ARGV[1]) end
local out = {}
for i = 2, #ARGV, 2 do
  local field, now = ARGV[i], tonumber(ARGV[i + 1])
  if apply then
    local before = redis.call('HGET', KEYS[1], field)
    if not before then
      redis.call('HSET', KEYS[2], field, now)
    elseif now > tonumber(before) then
      redis.call('HINCRBY', KEYS[2], field, now - tonumber(before))
    end
    redis.call('HSET', KEYS[1], field, now)
  end
  out[#out + 1] = redis.call('HGET', KEYS[2], field) or now
end
return out
"""


def _current(counts: Counts, orders: int) -> dict[str, int]:
    fields: dict[str, int] = {"orders": orders}
    for source, by in counts.ingest.items():
        fields[f"ingest|{source}|received"] = sum(by.values())
        for status in ("processed", "failed", "ignored"):
            fields[f"ingest|{source}|{status}"] = by.get(status, 0)
    fields["deliveries|created"] = sum(counts.deliveries.values())
    for status in ("succeeded", "failed"):
        fields[f"deliveries|{status}"] = counts.deliveries.get(status, 0)
    return fields


async def observe(redis: ArqRedis, counts: Counts, *, orders: int, at: float) -> Counters:
    """Feed the current counts (as of ``at``) into the cluster's monotonic counters; return them."""
    fields = _current(counts, orders)
    args = [repr(at)]
    for name, value in fields.items():
        args.extend((name, str(value)))
    reply = redis.eval(_OBSERVE_LUA, 2, _STATE_KEY, _EMITTED_KEY, *args)
    values: list[Any] = await cast("Awaitable[list[Any]]", reply)
    result = Counters()
    for name, raw in zip(fields, values, strict=True):
        value = int(raw)
        kind, _, rest = name.partition("|")
        if kind == "orders":
            result.orders = value
        elif kind == "deliveries":
            result.deliveries[rest] = value
        else:
            source, _, status = rest.rpartition("|")
            result.ingest.setdefault(source, {})[status] = value
    return result

"""Claiming due deliveries for sending, and finding the ones a lost job left behind.

A claim sets ``leased_until`` on due ``pending`` rows; while the lease runs no other worker touches
them, and if the worker dies the lease simply expires and the row is due again. The value written
is also the lease's token: recording an outcome only changes the row if the token still matches.

Per-endpoint concurrency cap, across every worker process: a delivery whose lease has not expired
is in flight, so an endpoint gets at most ``per_endpoint - in_flight`` new rows per claim. Counting
and claiming must not interleave between processes, so claims run one at a time under a Postgres
transaction-level advisory lock (a claim is one statement, a few milliseconds); ``FOR UPDATE SKIP
LOCKED`` still steps around rows an API retry or a recording transaction holds at that moment.

Fairness: candidates are taken per endpoint (the oldest due rows of each endpoint that has free
slots), so a backlog stuck behind one slow endpoint never crowds the others out of a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

__all__ = ["CLAIM_LOCK", "Claimed", "claim", "fail_orphaned", "find_due", "first_attempt_wait"]

#: Advisory lock key serialising claims ("dlvclaim" in ASCII, to stay clear of other users' keys).
CLAIM_LOCK = 0x646C76636C61696D

_CLAIM = """
WITH RECURSIVE eps AS (
    (SELECT endpoint_id FROM deliveries WHERE status = 'pending' ORDER BY endpoint_id LIMIT 1)
    UNION ALL
    SELECT (SELECT d.endpoint_id FROM deliveries d
            WHERE d.status = 'pending' AND d.endpoint_id > eps.endpoint_id
            ORDER BY d.endpoint_id LIMIT 1)
    FROM eps WHERE eps.endpoint_id IS NOT NULL
),
slots AS (
    SELECT w.id AS endpoint_id,
           $3::int - (SELECT count(*) FROM deliveries l
                      WHERE l.endpoint_id = w.id AND l.leased_until IS NOT NULL
                        AND l.leased_until > now() AND l.status = 'pending') AS free
    FROM eps JOIN webhook_endpoints w ON w.id = eps.endpoint_id
    WHERE w.enabled AND w.deleted_at IS NULL
),
picked AS (
    SELECT c.id FROM slots CROSS JOIN LATERAL (
        SELECT d.id, d.next_attempt_at, d.id = ANY($1::text[]) AS wanted
        FROM deliveries d
        WHERE d.endpoint_id = slots.endpoint_id AND d.status = 'pending'
          AND d.next_attempt_at <= now()
          AND (d.leased_until IS NULL OR d.leased_until <= now())
          AND (d.attempt_count > 0 OR d.next_attempt_at <= now() - make_interval(secs => $4::float8))
        ORDER BY d.next_attempt_at
        LIMIT GREATEST(slots.free, 0)
    ) c
    ORDER BY c.wanted DESC, c.next_attempt_at
    LIMIT $2::int
)
UPDATE deliveries d
SET leased_until = now() + make_interval(secs => $5::float8), updated = now()
FROM webhook_endpoints w, order_events e
WHERE w.id = d.endpoint_id AND e.id = d.event_id
  AND d.id IN (
      -- Re-checked on the row's latest version once locked: a row recorded meanwhile is not re-leased.
      SELECT id FROM deliveries
      WHERE id IN (SELECT id FROM picked) AND status = 'pending'
        AND (leased_until IS NULL OR leased_until <= now())
      FOR UPDATE SKIP LOCKED)
RETURNING d.id, d.organization_id, d.endpoint_id, d.event_id, d.event_type, d.attempt_count, d.leased_until,
          w.url, w.secret,
          CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret END AS previous_secret,
          e.payload
"""

_DUE = """
SELECT id FROM deliveries
WHERE status = 'pending' AND next_attempt_at <= now() - make_interval(secs => $1::float8)
  AND (leased_until IS NULL OR leased_until <= now())
  AND (attempt_count > 0 OR next_attempt_at <= now() - make_interval(secs => $1::float8 + $3::float8))
ORDER BY next_attempt_at
LIMIT $2::int
"""

_ORPHANED = """
UPDATE deliveries d
SET status = 'failed', next_attempt_at = NULL, completed_at = now(), updated = now(),
    last_error = CASE WHEN w.deleted_at IS NOT NULL THEN 'endpoint deleted'
                      ELSE 'endpoint disabled: ' || coalesce(w.disabled_reason, 'by its owner') END
FROM webhook_endpoints w
WHERE w.id = d.endpoint_id AND d.status = 'pending' AND (NOT w.enabled OR w.deleted_at IS NOT NULL)
  AND (d.leased_until IS NULL OR d.leased_until <= now())
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A leased delivery with everything needed to send it."""

    id: str
    organization_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    attempt_count: int
    lease: datetime
    url: str
    secrets: tuple[str, ...]
    payload: dict[str, Any]

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Claimed:
        secrets = (row["secret"],) + ((row["previous_secret"],) if row["previous_secret"] else ())
        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            endpoint_id=row["endpoint_id"],
            event_id=row["event_id"],
            event_type=row["event_type"],
            attempt_count=row["attempt_count"],
            lease=row["leased_until"],
            url=row["url"],
            secrets=secrets,
            payload=row["payload"],
        )


async def claim(
    pool: asyncpg.Pool,
    *,
    wanted: Sequence[str],
    limit: int,
    per_endpoint: int,
    lease_seconds: float,
    first_delay: float = 0.0,
) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries, ``wanted`` ids first, within every endpoint's free slots.

    ``first_delay`` is the retry schedule's first value: a delivery never tried waits that long
    after it was written.
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", CLAIM_LOCK)
        rows = await conn.fetch(_CLAIM, list(wanted), limit, per_endpoint, first_delay, lease_seconds)
    return [Claimed.from_row(row) for row in rows]


async def find_due(pool: asyncpg.Pool, *, grace: float, limit: int, first_delay: float = 0.0) -> list[str]:
    """Ids of unleased pending deliveries due for more than ``grace`` seconds, oldest first."""
    rows = await pool.fetch(_DUE, grace, limit, first_delay)
    return [row["id"] for row in rows]


async def fail_orphaned(pool: asyncpg.Pool) -> int:
    """Fail pending deliveries of disabled or deleted endpoints (written in a race with the disabling)."""
    status = await pool.execute(_ORPHANED)
    return int(status.split()[-1])


async def first_attempt_wait(pool: asyncpg.Pool, ids: Sequence[str], *, first_delay: float) -> float | None:
    """Seconds until the earliest of ``ids`` that still waits for its first attempt becomes due, if any."""
    if first_delay <= 0 or not ids:
        return None
    value = await pool.fetchval(
        "SELECT extract(epoch FROM min(next_attempt_at) + make_interval(secs => $2::float8) - now()) "
        "FROM deliveries WHERE id = ANY($1::text[]) AND status = 'pending' AND attempt_count = 0",
        list(ids),
        first_delay,
    )
    return None if value is None else max(0.0, float(value))

"""Claiming due deliveries for sending, and finding the ones a lost job left behind.

A claim sets ``leased_until`` and ``lease_owner`` on due ``pending`` rows: no other worker touches
them until the lease expires, and recording an outcome only changes a row whose lease still matches.
An endpoint is claimable only by the process holding its live leases (or by anyone once it has none),
so the per-endpoint concurrency cap holds across processes; claims run one at a time under a
transaction-level advisory lock, with ``FOR UPDATE SKIP LOCKED``, taking the oldest due rows per
endpoint so one slow endpoint never crowds the others out. An ingest batch may lease its fresh rows in
its own transaction (:func:`lease_fresh`), under the same rules. The design and its figures are in
``docs/webhooks.md`` ("Isolation and the per-endpoint cap", "Delivery mechanics").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from hub.db import Conn, locked_transaction

__all__ = [
    "CLAIM_LOCK",
    "Claimed",
    "Leased",
    "claim",
    "fail_orphaned",
    "find_due",
    "first_attempt_wait",
    "lease_fresh",
    "release",
    "stale_endpoints",
]

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
held AS (
    SELECT h.endpoint_id, h.n FROM unnest($6::text[], $7::int[]) AS h(endpoint_id, n)
),
open AS (
    SELECT w.id AS endpoint_id,
           $3::int - coalesce((SELECT held.n FROM held WHERE held.endpoint_id = w.id), 0) AS room
    FROM eps JOIN webhook_endpoints w ON w.id = eps.endpoint_id
    WHERE w.enabled AND w.deleted_at IS NULL
      -- another process's live leases make it the endpoint's only sender until they end (every way out
      -- of 'pending' clears the lease, so no status test: this stays on the small ix_deliveries_leased)
      AND NOT EXISTS (SELECT 1 FROM deliveries l
                      WHERE l.endpoint_id = w.id AND l.leased_until > now()
                        AND l.lease_owner IS DISTINCT FROM $8::text)
),
picked AS (
    -- Locked where found (SKIP LOCKED steps around rows an API retry or a recording holds), and
    -- re-checked on each row's latest version once locked: a row recorded meanwhile is not re-leased.
    SELECT c.id FROM open CROSS JOIN LATERAL (
        SELECT d.id, d.next_attempt_at, d.id = ANY($1::text[]) AS wanted
        FROM deliveries d
        WHERE d.endpoint_id = open.endpoint_id AND d.status = 'pending'
          AND d.next_attempt_at <= now()
          AND (d.leased_until IS NULL OR d.leased_until <= now())
          AND (d.attempt_count > 0 OR d.next_attempt_at <= now() - make_interval(secs => $4::float8))
        ORDER BY d.next_attempt_at
        LIMIT GREATEST(open.room, 0)
        FOR UPDATE OF d SKIP LOCKED
    ) c
    ORDER BY c.wanted DESC, c.next_attempt_at
    LIMIT $2::int
)
UPDATE deliveries d
SET leased_until = now() + make_interval(secs => $5::float8), lease_owner = $8::text, updated = now()
FROM webhook_endpoints w, order_events e
-- = ANY(ARRAY(...)): primary-key lookups, whatever the statistics say about the pending rows
WHERE d.id = ANY(ARRAY(SELECT id FROM picked)) AND w.id = d.endpoint_id AND e.id = d.event_id
RETURNING d.id, d.organization_id, d.endpoint_id, d.event_id, d.event_type, d.attempt_count, d.leased_until,
          w.url, w.secret,
          CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret END AS previous_secret,
          e.payload
"""

# In the writing transaction, after taking CLAIM_LOCK: ``now()`` is that transaction's start, so a lease
# of another process that ended since still counts as live (it only makes this more careful) and the
# lease written ends a little sooner than ``$6`` seconds from now (the caller's clock started earlier).
_LEASE_FRESH = """
WITH fresh AS (
    SELECT d.id, d.endpoint_id, row_number() OVER (PARTITION BY d.endpoint_id ORDER BY d.id) AS n
    FROM deliveries d
    WHERE d.id = ANY($1::text[]) AND d.status = 'pending' AND d.leased_until IS NULL AND d.attempt_count = 0
),
open AS (
    SELECT w.id AS endpoint_id, w.url, w.secret,
           CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret END AS previous_secret,
           $3::int - coalesce((SELECT h.n FROM unnest($4::text[], $5::int[]) AS h(endpoint_id, n)
                               WHERE h.endpoint_id = w.id), 0) AS room
    FROM webhook_endpoints w
    WHERE w.id IN (SELECT endpoint_id FROM fresh) AND w.enabled AND w.deleted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM deliveries l
                      WHERE l.endpoint_id = w.id AND l.leased_until > now()
                        AND l.lease_owner IS DISTINCT FROM $7::text)
),
picked AS (
    SELECT fresh.id, open.url, open.secret, open.previous_secret
    FROM fresh JOIN open USING (endpoint_id)
    WHERE fresh.n <= open.room
    ORDER BY fresh.id
    LIMIT $2::int
)
UPDATE deliveries d
SET leased_until = now() + make_interval(secs => $6::float8), lease_owner = $7::text, updated = now()
FROM picked, order_events e
WHERE d.id = picked.id AND e.id = d.event_id
RETURNING d.id, d.organization_id, d.endpoint_id, d.event_id, d.event_type, d.attempt_count, d.leased_until,
          picked.url, picked.secret, picked.previous_secret, e.payload
"""

_RELEASE = """
UPDATE deliveries d SET leased_until = NULL, updated = now()
FROM unnest($1::text[], $2::timestamptz[]) AS v(id, lease)
WHERE d.id = v.id AND d.leased_until = v.lease AND d.status = 'pending'
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


@dataclass(frozen=True, slots=True)
class Leased:
    """Rows a writing transaction leased for its own process: theirs to send once it has committed.

    ``started`` is ``time.monotonic()`` taken before that transaction began, so a lease measured
    from it never looks longer than the one written.
    """

    items: list[Claimed]
    started: float


async def claim(
    pool: asyncpg.Pool,
    *,
    owner: str,
    wanted: Sequence[str],
    limit: int,
    per_endpoint: int,
    lease_seconds: float,
    held: Mapping[str, int] | None = None,
    first_delay: float = 0.0,
) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries for ``owner`` (a worker process), ``wanted`` ids first.

    An endpoint gives at most ``per_endpoint`` minus what ``owner`` already ``held`` of it (rows
    claimed and not yet recorded or released), and nothing while another owner's leases on it live.
    ``first_delay`` is the retry schedule's first value: a delivery never tried waits that long
    after it was written.
    """
    held = held or {}
    endpoints = sorted(held)
    async with pool.acquire() as conn, locked_transaction(conn, CLAIM_LOCK):
        rows = await conn.fetch(
            _CLAIM,
            list(wanted),
            limit,
            per_endpoint,
            first_delay,
            lease_seconds,
            endpoints,
            [held[e] for e in endpoints],
            owner,
        )
    return [Claimed.from_row(row) for row in rows]


async def lease_fresh(
    conn: Conn,
    *,
    owner: str,
    ids: Sequence[str],
    limit: int,
    per_endpoint: int,
    lease_seconds: float,
    held: Mapping[str, int] | None = None,
) -> list[Claimed]:
    """In the transaction that wrote deliveries ``ids``: lease up to ``limit`` of them for ``owner``.

    The rules of :func:`claim` (an endpoint another owner's live leases hold is skipped; at most
    ``per_endpoint`` minus ``held`` per endpoint) under its lock, held until the caller's commit.
    The lock is only tried: if another claim holds it, nothing is leased and the rows wait for a
    claim as before. Retried rows are never leased here (``attempt_count = 0``).
    """
    if not ids or limit <= 0:
        return []
    if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1::bigint)", CLAIM_LOCK):
        return []
    held = held or {}
    endpoints = sorted(held)
    rows = await conn.fetch(
        _LEASE_FRESH, list(ids), limit, per_endpoint, endpoints, [held[e] for e in endpoints], lease_seconds, owner
    )
    return [Claimed.from_row(row) for row in rows]


async def release(pool: asyncpg.Pool, items: Sequence[Claimed]) -> int:
    """End the leases of claimed rows that were never sent (still ours): they are due again at once."""
    if not items:
        return 0
    status = await pool.execute(_RELEASE, [i.id for i in items], [i.lease for i in items])
    return int(status.split()[-1])


async def stale_endpoints(pool: asyncpg.Pool, items: Sequence[Claimed]) -> set[str]:
    """Endpoints of ``items`` that were disabled, deleted, re-pointed or re-keyed since they were claimed."""
    claimed = {(i.endpoint_id, i.url, i.secrets[0]) for i in items}
    if not claimed:
        return set()
    rows = await pool.fetch(
        "SELECT id, url, secret FROM webhook_endpoints WHERE id = ANY($1::text[]) AND enabled AND deleted_at IS NULL",
        sorted({endpoint for endpoint, _, _ in claimed}),
    )
    current = {row["id"]: (row["url"], row["secret"]) for row in rows}
    return {endpoint for endpoint, url, secret in claimed if current.get(endpoint) != (url, secret)}


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

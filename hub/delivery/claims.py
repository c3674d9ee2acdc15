"""Claiming due deliveries for sending, and finding the ones a lost job left behind.

A claim sets ``leased_until`` and ``lease_owner`` on due ``pending`` rows: no other worker touches
them until the lease expires, and recording an outcome only changes a row whose lease still matches.
An endpoint is claimable only by the process holding its live leases (or by anyone once it has none),
so the per-endpoint concurrency cap holds across processes; claims run one at a time under a
transaction-level advisory lock, with ``FOR UPDATE SKIP LOCKED``, taking the oldest due rows per
endpoint so one slow endpoint never crowds the others out. An ingest batch may lease its fresh rows in
the statement that writes them (:class:`LeaseAsk`, :func:`leased_inserts`), under the same rules. The
design and its figures are in ``docs/webhooks.md`` ("Isolation and the per-endpoint cap", "Delivery mechanics").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from hub.db import Part, columns_of, locked_transaction

__all__ = [
    "CLAIM_LOCK",
    "Claimed",
    "Leased",
    "claim",
    "fail_orphaned",
    "find_due",
    "first_attempt_wait",
    "LeaseAsk",
    "leased_inserts",
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

# The fresh deliveries of a writing statement (``hub.delivery.outbox.Writes``), leased as they are inserted,
# under the claim's rules and its lock (only tried: if a claim holds it, nothing is leased). ``now()`` is
# the transaction's start, so a lease of another process that ended since still counts as live (it only
# makes this more careful) and the lease written ends a little sooner than asked (the caller's clock
# started earlier). The statement's snapshot predates its own rows, which carry no lease anyway.
_LEASE_LOCK = "SELECT pg_try_advisory_xact_lock($1::bigint) AS ok"
_LEASE_FRESH = (
    "SELECT d.i AS id, d.w AS endpoint_id, row_number() OVER (PARTITION BY d.w ORDER BY d.i) AS n "
    "FROM unnest($1::text[], $2::text[]) AS d(i, w)"
)
_LEASE_OPEN = """
SELECT w.id AS endpoint_id, w.url, w.secret,
       CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret END AS previous_secret,
       $1::int - coalesce((SELECT h.n FROM unnest($2::text[], $3::int[]) AS h(endpoint_id, n)
                           WHERE h.endpoint_id = w.id), 0) AS room
FROM webhook_endpoints w
WHERE (SELECT ok FROM lease_lock) AND w.id IN (SELECT endpoint_id FROM lease_fresh)
  AND w.enabled AND w.deleted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM deliveries l
                  WHERE l.endpoint_id = w.id AND l.leased_until > now() AND l.lease_owner IS DISTINCT FROM $4::text)
"""
_LEASE_PICKED = (
    "SELECT f.id, o.url, o.secret, o.previous_secret FROM lease_fresh f JOIN lease_open o USING (endpoint_id) "
    "WHERE f.n <= o.room ORDER BY f.id LIMIT $1::int"
)
_LEASED_INSERT = """
INSERT INTO deliveries (id, organization_id, endpoint_id, event_id, event_type, status, attempt_count,
                        next_attempt_at, created, updated, leased_until, lease_owner)
SELECT d.i, d.o, d.w, d.e, d.t, 'pending', 0, $6, $6, $6,
       CASE WHEN p.id IS NOT NULL THEN now() + make_interval(secs => $7::float8) END,
       CASE WHEN p.id IS NOT NULL THEN $8::text END
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS d(i, o, w, e, t)
LEFT JOIN lease_picked p ON p.id = d.i
RETURNING id, organization_id, endpoint_id, event_id, event_type, attempt_count, leased_until
"""
# The leased rows with what sending needs; ``new_events`` is the statement's events insert (RETURNING id, payload).
_LEASED = """
SELECT n.*, p.url, p.secret, p.previous_secret, e.payload
FROM new_deliveries n JOIN lease_picked p USING (id) JOIN new_events e ON e.id = n.event_id
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


@dataclass(frozen=True, slots=True)
class LeaseAsk:
    """Lease a writing statement's fresh deliveries for ``owner``, under the rules of :func:`claim`.

    At most ``limit`` rows, at most ``per_endpoint`` minus ``held`` per endpoint, never an endpoint
    another owner's live leases hold; ``lease_seconds`` long.
    """

    owner: str
    limit: int
    per_endpoint: int
    lease_seconds: float
    held: Mapping[str, int] = field(default_factory=dict)


def leased_inserts(
    rows: Sequence[tuple[str, str, str, str, str]], now: datetime, ask: LeaseAsk
) -> tuple[list[Part], Part]:
    """The steps inserting delivery ``rows`` (id, organization, endpoint, event, type), leasing what ``ask`` allows.

    For :class:`hub.delivery.outbox.Writes`, after its ``new_events`` step; the final query returns
    the leased rows (:meth:`Claimed.from_row`). The lease commits with the rows or not at all.
    """
    ids, orgs, endpoints, events, types = columns_of(rows, 5)
    held = sorted(ask.held)
    parts = [
        Part("lease_lock", _LEASE_LOCK, (CLAIM_LOCK,)),
        Part("lease_fresh", _LEASE_FRESH, (ids, endpoints)),
        Part("lease_open", _LEASE_OPEN, (ask.per_endpoint, held, [ask.held[e] for e in held], ask.owner)),
        Part("lease_picked", _LEASE_PICKED, (ask.limit,)),
        Part(
            "new_deliveries", _LEASED_INSERT, (ids, orgs, endpoints, events, types, now, ask.lease_seconds, ask.owner)
        ),
    ]
    return parts, Part("leased", _LEASED)


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

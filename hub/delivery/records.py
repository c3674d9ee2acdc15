"""Recording attempts: the attempt rows, the deliveries' new state, and the endpoints' health.

Attempts are written in groups (whatever finished while the previous group was being written), one
transaction per group, so a burst costs a handful of commits instead of one per delivery; the
ledger never shows an attempt without its consequence:

* success → delivery ``succeeded``; the endpoint's ``failing_since`` is cleared;
* failure → ``failing_since`` starts (if not already running); an endpoint failing for longer than
  ``disable_after`` seconds is disabled with a reason, and its other pending deliveries fail with it;
  the delivery is rescheduled by :func:`~hub.delivery.policy.next_delay`, or ``failed`` once
  the schedule is exhausted (or its endpoint is no longer enabled).

A delivery row changes only while the caller's lease token still matches (see
:mod:`hub.delivery.claims`); the attempt itself is recorded either way, because it happened.
Endpoint rows are locked in id order, so concurrent groups never deadlock on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from hub.delivery.claims import Claimed
from hub.delivery.policy import Outcome, next_delay

__all__ = ["Attempt", "Recorded", "record_attempts"]

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_ATTEMPT_ROWS = """
    INSERT INTO delivery_attempts
        (delivery_id, attempt_no, started_at, status_code, latency_ms, response_excerpt, error, succeeded,
         request_headers)
    SELECT a.id, a.n, a.started, a.code, a.latency, a.excerpt, a.error, a.ok, a.headers::jsonb
    FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::int[], $5::float8[], $6::text[], $7::text[],
                $8::bool[], $9::text[]) AS a(id, n, started, code, latency, excerpt, error, ok, headers)
"""

# One statement, so atomic without a transaction: the attempts ($1-$9), the endpoints that were
# failing become healthy ($10; matches no row, so locks nothing, unless one was), the deliveries
# succeed where the lease token ($11) still matches.
_SUCCEEDED = f"""
WITH attempts AS ({_ATTEMPT_ROWS}),
healthy AS (
    UPDATE webhook_endpoints SET failing_since = NULL, updated = now()
    WHERE id = ANY($10::text[]) AND failing_since IS NOT NULL
)
UPDATE deliveries d
SET status = 'succeeded', attempt_count = v.n, leased_until = NULL, next_attempt_at = NULL,
    last_status_code = v.code, last_error = NULL, completed_at = now(), updated = now()
FROM unnest($1::text[], $11::timestamptz[], $2::int[], $4::int[]) AS v(id, lease, n, code)
WHERE d.id = v.id AND d.leased_until = v.lease
RETURNING d.id
"""

_RESCHEDULED = """
UPDATE deliveries d
SET status = 'pending', attempt_count = v.n, leased_until = NULL,
    next_attempt_at = now() + make_interval(secs => v.delay),
    last_status_code = v.code, last_error = v.error, updated = now()
FROM unnest($1::text[], $2::timestamptz[], $3::int[], $4::int[], $5::float8[], $6::text[])
     AS v(id, lease, n, code, delay, error)
WHERE d.id = v.id AND d.leased_until = v.lease
RETURNING d.id
"""

_FAILED = """
UPDATE deliveries d
SET status = 'failed', attempt_count = v.n, leased_until = NULL, next_attempt_at = NULL,
    last_status_code = v.code, last_error = v.error, completed_at = now(), updated = now()
FROM unnest($1::text[], $2::timestamptz[], $3::int[], $4::int[], $5::text[]) AS v(id, lease, n, code, error)
WHERE d.id = v.id AND d.leased_until = v.lease
RETURNING d.id
"""

_DISABLE = """
UPDATE webhook_endpoints w
SET enabled = false, disabled_at = now(), updated = now(),
    disabled_reason = 'failing since ' || to_char(w.failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                      || ' (over ' || $4::text || ' s); last error: ' || v.reason
FROM unnest($1::text[], $2::text[]) AS v(id, reason)
WHERE w.id = v.id AND w.enabled AND w.failing_since <= now() - make_interval(secs => $3::float8)
RETURNING w.id, w.disabled_reason
"""

_FAIL_REST = """
UPDATE deliveries
SET status = 'failed', next_attempt_at = NULL, completed_at = now(), updated = now(), last_error = $2
WHERE endpoint_id = $1 AND status = 'pending' AND (leased_until IS NULL OR leased_until <= now())
"""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One finished HTTP try of a claimed delivery, ready to record."""

    item: Claimed
    outcome: Outcome
    started_at: datetime
    request_headers: Mapping[str, str] | None = None

    @property
    def number(self) -> int:
        return self.item.attempt_count + 1


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording decided: the new status, when to try again, and whether the endpoint got disabled."""

    status: str
    attempt_no: int
    retry_in: float | None = None
    disabled_reason: str | None = None
    lease_lost: bool = False


async def record_attempts(
    pool: asyncpg.Pool, attempts: Sequence[Attempt], *, schedule: Sequence[int], disable_after: float
) -> list[Recorded]:
    """Write the attempts and their consequences atomically; one :class:`Recorded` per attempt, in order.

    All succeeded (the common case): one statement. Otherwise one transaction.
    """
    if not attempts:
        return []
    good = [a for a in attempts if a.outcome.succeeded]
    bad = [a for a in attempts if not a.outcome.succeeded]
    if not bad:
        async with pool.acquire() as conn:
            results = await _record_successes(conn, good)
        return [results[a.item.id] for a in attempts]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_ATTEMPT_ROWS, *_attempt_columns(bad))
        results = await _record_successes(conn, good)
        results.update(await _record_failures(conn, bad, good, schedule=schedule, disable_after=disable_after))
    return [results[a.item.id] for a in attempts]


def _attempt_columns(attempts: Sequence[Attempt]) -> tuple[list[Any], ...]:
    """The attempt rows as the nine column arrays of :data:`_ATTEMPT_ROWS`."""
    return (
        [a.item.id for a in attempts],
        [a.number for a in attempts],
        [a.started_at for a in attempts],
        [a.outcome.status_code for a in attempts],
        [a.outcome.latency_ms for a in attempts],
        [a.outcome.excerpt for a in attempts],
        [a.outcome.error for a in attempts],
        [a.outcome.succeeded for a in attempts],
        [None if a.request_headers is None else orjson.dumps(dict(a.request_headers)).decode() for a in attempts],
    )


def _columns(attempts: Sequence[Attempt]) -> tuple[list[str], list[datetime], list[int], list[int | None]]:
    return (
        [a.item.id for a in attempts],
        [a.item.lease for a in attempts],
        [a.number for a in attempts],
        [a.outcome.status_code for a in attempts],
    )


async def _record_successes(conn: Conn, good: Sequence[Attempt]) -> dict[str, Recorded]:
    if not good:
        return {}
    endpoints = sorted({a.item.endpoint_id for a in good})
    rows = await conn.fetch(_SUCCEEDED, *_attempt_columns(good), endpoints, [a.item.lease for a in good])
    done = {row["id"] for row in rows}
    return {a.item.id: Recorded("succeeded", a.number, lease_lost=a.item.id not in done) for a in good}


async def _record_failures(
    conn: Conn, bad: Sequence[Attempt], good: Sequence[Attempt], *, schedule: Sequence[int], disable_after: float
) -> dict[str, Recorded]:
    if not bad:
        return {}
    reasons = {a.item.id: a.outcome.describe()[:500] for a in bad}
    # An endpoint that also succeeded in this group is alive: it neither starts failing nor gets disabled.
    alive = {a.item.endpoint_id for a in good}
    last_reason = {a.item.endpoint_id: reasons[a.item.id] for a in bad if a.item.endpoint_id not in alive}
    failing = sorted(last_reason)
    disabled: dict[str, str] = {}
    if failing:
        await conn.execute("SELECT 1 FROM webhook_endpoints WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE", failing)
        await conn.execute(
            "UPDATE webhook_endpoints SET failing_since = now() WHERE id = ANY($1::text[]) AND failing_since IS NULL",
            failing,
        )
        rows = await conn.fetch(
            _DISABLE, failing, [last_reason[e] for e in failing], float(disable_after), f"{disable_after:g}"
        )
        disabled = {row["id"]: row["disabled_reason"] for row in rows}
        for endpoint_id, reason in disabled.items():
            await conn.execute(_FAIL_REST, endpoint_id, f"endpoint disabled: {reason}"[:500])
    active = {
        row["id"]: row["active"]
        for row in await conn.fetch(
            "SELECT id, enabled AND deleted_at IS NULL AS active FROM webhook_endpoints WHERE id = ANY($1::text[])",
            sorted({a.item.endpoint_id for a in bad}),
        )
    }
    later: list[tuple[Attempt, float]] = []
    final: list[tuple[Attempt, str]] = []
    for a in bad:
        is_active = active.get(a.item.endpoint_id, False)
        delay = next_delay(schedule, a.number, retry_after=a.outcome.retry_after) if is_active else None
        if delay is None:
            error = reasons[a.item.id] if is_active else f"{reasons[a.item.id]}; endpoint no longer enabled"
            final.append((a, error[:500]))
        else:
            later.append((a, delay))
    done: set[str] = set()
    if later:
        ids, leases, numbers, codes = _columns([a for a, _ in later])
        args = (ids, leases, numbers, codes, [d for _, d in later], [reasons[a.item.id] for a, _ in later])
        done |= {row["id"] for row in await conn.fetch(_RESCHEDULED, *args)}
    if final:
        ids, leases, numbers, codes = _columns([a for a, _ in final])
        done |= {row["id"] for row in await conn.fetch(_FAILED, ids, leases, numbers, codes, [e for _, e in final])}
    results = {
        a.item.id: Recorded(
            "pending",
            a.number,
            retry_in=d,
            disabled_reason=disabled.get(a.item.endpoint_id),
            lease_lost=a.item.id not in done,
        )
        for a, d in later
    }
    results.update(
        {
            a.item.id: Recorded(
                "failed", a.number, disabled_reason=disabled.get(a.item.endpoint_id), lease_lost=a.item.id not in done
            )
            for a, _ in final
        }
    )
    return results

"""Recording one attempt: the attempt row, the delivery's new state, and the endpoint's health.

All in one transaction per attempt, so the ledger never shows an attempt without its consequence:

* success → delivery ``succeeded``; the endpoint's ``failing_since`` is cleared;
* failure → ``failing_since`` starts (if not already running); an endpoint failing for longer than
  ``disable_after`` seconds is disabled with a reason, and its other pending deliveries fail with it;
  the delivery is rescheduled by :func:`~hub.services.delivery_policy.next_delay`, or ``failed`` once
  the schedule is exhausted (or its endpoint is no longer enabled).

The delivery row is changed only while the caller's lease token still matches (see
:mod:`hub.services.delivery_claims`); the attempt itself is recorded either way, because it happened.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from hub.services.delivery_claims import Claimed
from hub.services.delivery_policy import Outcome, next_delay

__all__ = ["Recorded", "record_attempt"]

_INSERT_ATTEMPT = """
INSERT INTO delivery_attempts
    (delivery_id, attempt_no, started_at, status_code, latency_ms, response_excerpt, error, succeeded,
     request_headers)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""

_SUCCEEDED = """
UPDATE deliveries
SET status = 'succeeded', attempt_count = $3, leased_until = NULL, next_attempt_at = NULL,
    last_status_code = $4, last_error = NULL, completed_at = now(), updated = now()
WHERE id = $1 AND leased_until = $2
RETURNING id
"""

_RESCHEDULED = """
UPDATE deliveries
SET status = 'pending', attempt_count = $3, leased_until = NULL,
    next_attempt_at = now() + make_interval(secs => $4::float8),
    last_status_code = $5, last_error = $6, updated = now()
WHERE id = $1 AND leased_until = $2
RETURNING id
"""

_FAILED = """
UPDATE deliveries
SET status = 'failed', attempt_count = $3, leased_until = NULL, next_attempt_at = NULL,
    last_status_code = $4, last_error = $5, completed_at = now(), updated = now()
WHERE id = $1 AND leased_until = $2
RETURNING id
"""

_DISABLE = """
UPDATE webhook_endpoints
SET enabled = false, disabled_at = now(), updated = now(),
    disabled_reason = 'failing since ' || to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                      || ' (over ' || $2::text || ' s); last error: ' || $3::text
WHERE id = $1 AND enabled AND failing_since <= now() - make_interval(secs => $2::float8)
RETURNING disabled_reason
"""

_FAIL_REST = """
UPDATE deliveries
SET status = 'failed', next_attempt_at = NULL, completed_at = now(), updated = now(), last_error = $2
WHERE endpoint_id = $1 AND status = 'pending' AND (leased_until IS NULL OR leased_until <= now())
"""


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording decided: the new status, when to try again, and whether the endpoint got disabled."""

    status: str
    attempt_no: int
    retry_in: float | None = None
    disabled_reason: str | None = None
    lease_lost: bool = False


async def record_attempt(
    pool: asyncpg.Pool,
    item: Claimed,
    outcome: Outcome,
    *,
    started_at: datetime,
    schedule: Sequence[int],
    disable_after: float,
    request_headers: Mapping[str, str] | None = None,
) -> Recorded:
    """Write the attempt and its consequences (see the module docstring) in one transaction."""
    attempt_no = item.attempt_count + 1
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            _INSERT_ATTEMPT,
            item.id,
            attempt_no,
            started_at,
            outcome.status_code,
            outcome.latency_ms,
            outcome.excerpt,
            outcome.error,
            outcome.succeeded,
            dict(request_headers) if request_headers is not None else None,
        )
        if outcome.succeeded:
            # Matches no row (so locks nothing) unless the endpoint was failing: no hot-row contention.
            await conn.execute(
                "UPDATE webhook_endpoints SET failing_since = NULL, updated = now() "
                "WHERE id = $1 AND failing_since IS NOT NULL",
                item.endpoint_id,
            )
            done = await conn.fetchval(_SUCCEEDED, item.id, item.lease, attempt_no, outcome.status_code)
            return Recorded("succeeded", attempt_no, lease_lost=done is None)
        return await _record_failure(conn, item, outcome, attempt_no, schedule=schedule, disable_after=disable_after)


async def _record_failure(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
    item: Claimed,
    outcome: Outcome,
    attempt_no: int,
    *,
    schedule: Sequence[int],
    disable_after: float,
) -> Recorded:
    reason = outcome.describe()[:500]
    await conn.execute(
        "UPDATE webhook_endpoints SET failing_since = now() WHERE id = $1 AND failing_since IS NULL",
        item.endpoint_id,
    )
    disabled_reason: str | None = await conn.fetchval(_DISABLE, item.endpoint_id, float(disable_after), reason)
    if disabled_reason is not None:
        await conn.execute(_FAIL_REST, item.endpoint_id, f"endpoint disabled: {disabled_reason}"[:500])
    active = await conn.fetchval(
        "SELECT enabled AND deleted_at IS NULL FROM webhook_endpoints WHERE id = $1", item.endpoint_id
    )
    delay = next_delay(schedule, attempt_no, retry_after=outcome.retry_after) if active else None
    if delay is None:
        error = reason if active else f"{reason}; endpoint no longer enabled"
        done = await conn.fetchval(_FAILED, item.id, item.lease, attempt_no, outcome.status_code, error[:500])
        return Recorded("failed", attempt_no, disabled_reason=disabled_reason, lease_lost=done is None)
    done = await conn.fetchval(_RESCHEDULED, item.id, item.lease, attempt_no, delay, outcome.status_code, reason)
    return Recorded("pending", attempt_no, retry_in=delay, disabled_reason=disabled_reason, lease_lost=done is None)

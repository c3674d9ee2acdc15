"""``Idempotency-Key``: the same key with the same request gets the stored response again.

The key is claimed under a transaction-scoped advisory lock in the transaction that does the work,
and the response is stored in that same transaction, so a stored response exists exactly when the
work committed; a concurrent request with the same key waits and then replays it. The same key with a
different request is a 409. Keys expire after :data:`KEY_TTL` (then they may be reused).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson

from hub.db import Conn
from hub.errors import Conflict, ValidationFailed
from hub.orders.rows import lock_key
from hub.orders.write import utcnow

KEY_TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response kept for replay."""

    status: int
    body: str


def request_hash(method: str, path: str, payload: Any) -> str:
    """A digest of what was asked (JSON compared by value: key order and spacing do not matter)."""
    canonical = orjson.dumps([method.upper(), path, payload], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def check_key(key: str) -> str:
    """The header value, or 422 when it is empty or too long."""
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(details={"Idempotency-Key": f"must be 1 to {MAX_KEY_LENGTH} printable characters"})
    return key


async def claim(conn: Conn, *, organization_id: str, key: str, digest: str) -> StoredResponse | None:
    """Lock the key for this transaction; the stored response if it was used before (409 if differently)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(organization_id, "idempotency", key))
    row = await conn.fetchrow(
        "SELECT request_hash, status_code, response FROM idempotency_keys "
        "WHERE organization_id = $1 AND key = $2 AND created > $3",
        organization_id,
        key,
        utcnow() - KEY_TTL,
    )
    if row is None:
        return None
    if row["request_hash"] != digest:
        raise Conflict(
            "Idempotency key reused with a different request",
            details={"Idempotency-Key": "was already used with a different request body"},
        )
    return StoredResponse(status=row["status_code"], body=row["response"])


async def store(conn: Conn, *, organization_id: str, key: str, digest: str, status: int, body: str) -> None:
    """Keep the response for the key (replacing an expired one)."""
    await conn.execute(
        "INSERT INTO idempotency_keys (organization_id, key, request_hash, status_code, response, created) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (organization_id, key) DO UPDATE SET "
        "request_hash = EXCLUDED.request_hash, status_code = EXCLUDED.status_code, "
        "response = EXCLUDED.response, created = EXCLUDED.created",
        organization_id,
        key,
        digest,
        status,
        body,
        utcnow(),
    )

"""A connection's pull-sync state, read and written in Postgres (the ``sync`` column, migration 0009).

States: ``idle`` (nothing running; the last sync, if any, succeeded), ``running``, ``failed`` (the last
sync stopped on an error; the next reconcile tries again), ``needs_attention`` (the platform refused
the credentials: nothing is retried until the credentials change or a sync is asked for). Counters
only grow: ``orders_seen`` (orders read from the platform), ``orders_missed_by_webhooks`` (orders or
order versions a reconcile found that no webhook had brought), ``orders_failed`` (orders the
connector could not read, kept as failed inbound events).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from hub.db import Conn
from hub.delivery.outbox import NewEvent, record_events

SyncStateName = Literal["idle", "running", "failed", "needs_attention"]
NEEDS_ATTENTION_EVENT = "connection.needs_attention"


class SyncOut(BaseModel):
    """``data.sync`` of a connection."""

    state: SyncStateName = "idle"
    pull: bool = False
    last_synced_at: str | None = None
    cursor: str | None = None
    orders_seen: int = 0
    orders_missed_by_webhooks: int = 0
    orders_failed: int = 0
    last_error: str | None = None
    subscription_error: str | None = None


class SubscriptionOut(BaseModel):
    """One of ``data.subscriptions``: a webhook the hub registered at the platform."""

    topic: str
    platform_id: str | None = None
    status: str


def sync_out(sync: dict[str, Any] | None, *, pull: bool) -> SyncOut:
    """The public view of the stored state."""
    stored = sync or {}
    return SyncOut(pull=pull, **{k: v for k, v in stored.items() if k in SyncOut.model_fields and k != "pull"})


def iso(moment: datetime) -> str:
    """A UTC timestamp written the hub's way (``…Z``)."""
    return moment.isoformat().replace("+00:00", "Z")


async def _merge(
    conn: Conn,
    connection_id: str,
    values: dict[str, Any],
    *,
    next_at: datetime | None = None,
    synced_at: datetime | None = None,
) -> None:
    """One statement: a reader never sees the state without the rest (say ``idle`` before ``last_synced_at``)."""
    await conn.execute(
        "UPDATE connections SET sync = sync || $2::jsonb, sync_next_at = COALESCE($3, sync_next_at), "
        "last_synced_at = COALESCE($4, last_synced_at) WHERE id = $1",
        connection_id,
        values,
        next_at,
        synced_at,
    )


async def mark_running(conn: Conn, connection_id: str) -> None:
    """The sync has started (and holds the connection's lock)."""
    await _merge(conn, connection_id, {"state": "running"})


async def add_counts(conn: Conn, connection_id: str, *, seen: int, missed: int, failed: int) -> None:
    """Add one page's counts (in the page's transaction, so counts and orders commit together)."""
    await conn.execute(
        "UPDATE connections SET sync = sync || jsonb_build_object("
        "'orders_seen', COALESCE((sync->>'orders_seen')::bigint, 0) + $2, "
        "'orders_missed_by_webhooks', COALESCE((sync->>'orders_missed_by_webhooks')::bigint, 0) + $3, "
        "'orders_failed', COALESCE((sync->>'orders_failed')::bigint, 0) + $4) WHERE id = $1",
        connection_id,
        seen,
        missed,
        failed,
    )


async def mark_done(conn: Conn, connection_id: str, *, cursor: datetime, finished: datetime, next_at: datetime) -> None:
    """Every page was read: the cursor moves to where this sync started."""
    await _merge(
        conn,
        connection_id,
        {
            "state": "idle",
            "cursor": iso(cursor),
            "last_synced_at": iso(finished),
            "last_error": None,
            "backfilled": True,
            "attention_notified": False,
        },
        next_at=next_at,
        synced_at=finished,
    )


async def mark_failed(conn: Conn, connection_id: str, *, error: str, next_at: datetime) -> None:
    """The sync stopped on an error; the next reconcile starts again from the same cursor."""
    await _merge(conn, connection_id, {"state": "failed", "last_error": error[:1000]}, next_at=next_at)


async def mark_needs_attention(
    conn: Conn, *, connection_id: str, organization_id: str, source: str, name: str, reason: str
) -> bool:
    """The platform refused the credentials: stop scheduling, and tell subscribers once.

    Returns True when the connection entered the state now (and ``connection.needs_attention`` was
    recorded in the outbox, in this transaction).
    """
    async with conn.transaction():
        # One event per outage: until a sync succeeds again (mark_done clears the flag).
        notified = await conn.fetchval(
            "SELECT coalesce((sync->>'attention_notified')::boolean, false) FROM connections WHERE id = $1 FOR UPDATE",
            connection_id,
        )
        await conn.execute(
            "UPDATE connections SET sync = sync || $2::jsonb, sync_next_at = NULL WHERE id = $1",
            connection_id,
            {"state": "needs_attention", "last_error": reason[:1000], "attention_notified": True},
        )
        if notified:
            return False
        payload = {"id": connection_id, "source": source, "name": name, "state": "needs_attention", "reason": reason}
        event = NewEvent(organization_id, connection_id, source, NEEDS_ATTENTION_EVENT, payload, data_key="connection")
        await record_events(conn, [event])
    return True


async def set_subscriptions(
    conn: Conn, connection_id: str, subscriptions: list[dict[str, Any]], *, error: str | None
) -> None:
    """What the hub registered at the platform, and why it could not, if it could not."""
    await conn.execute(
        "UPDATE connections SET subscriptions = $2::jsonb, "
        "sync = sync || jsonb_build_object('subscription_error', $3::text) WHERE id = $1",
        connection_id,
        subscriptions,
        error,
    )


async def request_sync(conn: Conn, connection_id: str) -> None:
    """A sync was asked for: due now, and out of ``needs_attention`` (the credentials may work again)."""
    await conn.execute(
        "UPDATE connections SET sync_next_at = now(), sync = CASE WHEN sync->>'state' = 'needs_attention' "
        'THEN sync || \'{"state": "idle"}\'::jsonb ELSE sync END WHERE id = $1',
        connection_id,
    )

"""The outbox: order events and their deliveries, written in the caller's transaction.

Whoever changes an order (the API, the ingest worker, bulk operations) calls :func:`record_events`
on the same connection and transaction as the change, so an event exists if and only if the change
committed, and every matching endpoint has a delivery row from that moment on. After the commit,
:func:`wake_deliveries` pushes the delivery ids to the workers' wake-up list (one round trip, no
arq job); if that push is lost, the sweeper finds the due rows anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from arq.connections import ArqRedis

from hub import queue
from hub.db import Conn
from hub.ids import new_id
from hub.transitions import matches

DELIVER_JOB = "deliver_webhooks"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An ``order.*`` event to record: ``order`` is the order's public view after the change."""

    organization_id: str
    order_id: str
    source: str
    type: str
    order: dict[str, Any]


def envelope(event_id: str, event_type: str, created: datetime, order: dict[str, Any]) -> dict[str, Any]:
    """The webhook body (DESIGN "Outbound webhooks")."""
    return {
        "id": event_id,
        "type": event_type,
        "created": created.isoformat().replace("+00:00", "Z"),
        "data": {"order": order},
    }


async def record_events(conn: Conn, events: Sequence[NewEvent]) -> list[str]:
    """Insert the events and one pending delivery per matching enabled endpoint; return delivery ids."""
    if not events:
        return []
    now = datetime.now(UTC)
    org_ids = sorted({e.organization_id for e in events})
    endpoints = await conn.fetch(
        "SELECT id, organization_id, event_types, source FROM webhook_endpoints "
        "WHERE organization_id = ANY($1::text[]) AND enabled AND deleted_at IS NULL",
        org_ids,
    )
    event_rows: list[tuple[Any, ...]] = []
    delivery_rows: list[tuple[Any, ...]] = []
    for event in events:
        event_id = new_id("evt")
        event_rows.append(
            (
                event_id,
                event.organization_id,
                event.order_id,
                event.type,
                event.source,
                envelope(event_id, event.type, now, event.order),
                now,
            )
        )
        for endpoint in endpoints:
            if endpoint["organization_id"] != event.organization_id:
                continue
            if endpoint["source"] and endpoint["source"] != event.source:
                continue
            if not matches(event.type, endpoint["event_types"]):
                continue
            delivery_rows.append((new_id("dlv"), event.organization_id, endpoint["id"], event_id, event.type, now))
    await conn.executemany(
        "INSERT INTO order_events (id, organization_id, order_id, type, source, payload, created) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        event_rows,
    )
    if delivery_rows:
        await conn.executemany(
            "INSERT INTO deliveries (id, organization_id, endpoint_id, event_id, event_type, status, attempt_count, "
            "next_attempt_at, created, updated) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6)",
            delivery_rows,
        )
    return [row[0] for row in delivery_rows]


async def wake_deliveries(redis: ArqRedis, delivery_ids: Sequence[str]) -> None:
    """Wake a worker for freshly committed deliveries (ids only); best effort."""
    if not delivery_ids:
        return
    await queue.wake_ids(redis, queue.DELIVERY_WAKE, delivery_ids)

"""The outbox: order events and their deliveries, written in the caller's transaction.

Whoever changes an order (the API, the ingest worker, bulk operations) calls :func:`record_events`
on the same connection and transaction as the change, so an event exists if and only if the change
committed, and every matching endpoint has a delivery row from that moment on. After the commit,
the caller wakes the workers (:func:`hub.queue.wake_deliveries`: one round trip, no arq job); if
that wake-up is lost, the sweeper finds the due rows anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.db import Conn
from hub.ids import new_id
from hub.orders.transitions import matches


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to record: ``order`` is the subject's public view after the change.

    For ``order.*`` events the subject is an order (``order_id``); for ``connection.*`` events it is
    a connection: ``order_id`` then holds the connection's id and ``data_key`` is ``"connection"``.
    """

    organization_id: str
    order_id: str
    source: str
    type: str
    order: dict[str, Any]
    data_key: str = "order"


def envelope(
    event_id: str, event_type: str, created: datetime, order: dict[str, Any], *, data_key: str = "order"
) -> dict[str, Any]:
    """The webhook body: ``{"id", "type", "created", "data": {"order": …}}`` (or ``{"connection": …}``)."""
    return {
        "id": event_id,
        "type": event_type,
        "created": created.isoformat().replace("+00:00", "Z"),
        "data": {data_key: order},
    }


# The events and their deliveries in one statement (one round trip); the deliveries' foreign keys are
# checked at the statement's end, when the events are there.
_RECORD = """
WITH events AS (
    INSERT INTO order_events (id, organization_id, order_id, type, source, payload, created)
    SELECT i, o, r, t, s, p, $12 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[])
        AS e(i, o, r, t, s, p)
)
INSERT INTO deliveries (id, organization_id, endpoint_id, event_id, event_type, status, attempt_count,
                        next_attempt_at, created, updated)
SELECT i, o, w, e, t, 'pending', 0, $12, $12, $12
FROM unnest($7::text[], $8::text[], $9::text[], $10::text[], $11::text[]) AS d(i, o, w, e, t)
"""


ENDPOINTS_SQL = (
    "SELECT id, organization_id, event_types, source FROM webhook_endpoints "
    "WHERE organization_id = ANY($1::text[]) AND enabled AND deleted_at IS NULL"
)
"""The enabled endpoints of some organizations, as :func:`record_events` matches them."""


async def record_events(
    conn: Conn, events: Sequence[NewEvent], *, endpoints: Sequence[Mapping[str, Any]] | None = None
) -> list[str]:
    """Insert the events and one pending delivery per matching enabled endpoint; return delivery ids.

    ``endpoints``: the events' organizations' enabled endpoints, already read in the caller's
    transaction (the ingest worker reads them with its claim); by default they are read here.
    """
    if not events:
        return []
    now = datetime.now(UTC)
    if endpoints is None:
        endpoints = [dict(row) for row in await conn.fetch(ENDPOINTS_SQL, sorted({e.organization_id for e in events}))]
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
                envelope(event_id, event.type, now, event.order, data_key=event.data_key),
            )
        )
        for endpoint in endpoints:
            if endpoint["organization_id"] != event.organization_id:
                continue
            if endpoint["source"] and endpoint["source"] != event.source:
                continue
            if not matches(event.type, endpoint["event_types"]):
                continue
            delivery_rows.append((new_id("dlv"), event.organization_id, endpoint["id"], event_id, event.type))
    columns = [list(column) for column in zip(*event_rows, strict=True)]
    deliveries = [list(column) for column in zip(*delivery_rows, strict=True)] or [[], [], [], [], []]
    await conn.execute(_RECORD, *columns, *deliveries, now)
    return [row[0] for row in delivery_rows]

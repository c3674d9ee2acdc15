"""The outbox: order events and their deliveries, written in the caller's transaction.

Whoever changes an order (the API, the ingest worker, bulk operations) calls :func:`record_events`
on the same connection and transaction as the change, so an event exists if and only if the change
committed, and every matching endpoint has a delivery row from that moment on. A hot path collects
its writes in :class:`Writes` and sends them as one statement. After the commit,
the caller wakes the workers (:func:`hub.queue.wake_deliveries`: one round trip, no arq job); if
that wake-up is lost, the sweeper finds the due rows anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hub.db import Conn, Part, columns_of, compose, dumps
from hub.delivery.claims import Claimed, LeaseAsk, leased_inserts
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


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery row to write: one event for one endpoint."""

    id: str
    organization_id: str
    endpoint_id: str
    event_id: str
    event_type: str


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


# The payloads travel as JSON text, cast per row. asyncpg writes a jsonb[] parameter as one escaped array
# literal: 2.3 times the client's CPU per envelope, and twice Postgres' (docs/benchmarks.md, sixth session).
_EVENTS = (
    "INSERT INTO order_events (id, organization_id, order_id, type, source, payload, created) "
    "SELECT i, o, r, t, s, p::jsonb, $7 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
    "$6::text[]) AS e(i, o, r, t, s, p) RETURNING id, payload"
)
_DELIVERIES = (
    "INSERT INTO deliveries (id, organization_id, endpoint_id, event_id, event_type, status, attempt_count, "
    "next_attempt_at, created, updated) "
    "SELECT i, o, w, e, t, 'pending', 0, $6, $6, $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
    "$5::text[]) AS d(i, o, w, e, t)"
)


ENDPOINTS_SQL = (
    "SELECT id, organization_id, event_types, source FROM webhook_endpoints "
    "WHERE organization_id = ANY($1::text[]) AND enabled AND deleted_at IS NULL"
)
"""The enabled endpoints of some organizations, as :func:`record_events` matches them."""


@dataclass
class Writes:
    """One transaction's writes, sent as one statement (:func:`hub.db.compose`): one round trip.

    Writers add their own steps (``parts``: the orders, the ingested events' outcomes) and their
    events (:meth:`add_events`: one delivery per matching endpoint); :meth:`run` writes them all,
    the events before their deliveries, and may lease the fresh deliveries for this process
    (:class:`~hub.delivery.claims.LeaseAsk`). A writer that must read its own writes first (a
    deletion after an insert) runs the writes collected so far, then goes on adding.
    """

    parts: list[Part] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def add(self, sql: str, *args: Any) -> None:
        """Add a data-modifying step (its own ``$1…``), written before the events."""
        self.parts.append(Part(f"step{len(self.parts)}", sql, args))

    def add_events(self, events: Sequence[NewEvent], endpoints: Sequence[Mapping[str, Any]]) -> list[str]:
        """Add ``events`` and a pending delivery per matching enabled endpoint; returns the delivery ids.

        ``endpoints``: the events' organizations' enabled endpoints, read in this transaction.
        """
        ids: list[str] = []
        for event in events:
            event_id = new_id("evt")
            payload = envelope(event_id, event.type, self.now, event.order, data_key=event.data_key)
            self.events.append(
                (event_id, event.organization_id, event.order_id, event.type, event.source, dumps(payload))
            )
            for endpoint in endpoints:
                if endpoint["organization_id"] != event.organization_id:
                    continue
                if endpoint["source"] and endpoint["source"] != event.source:
                    continue
                if not matches(event.type, endpoint["event_types"]):
                    continue
                delivery = Delivery(new_id("dlv"), event.organization_id, endpoint["id"], event_id, event.type)
                self.deliveries.append(delivery)
                ids.append(delivery.id)
        return ids

    async def record(
        self, conn: Conn, events: Sequence[NewEvent], *, endpoints: Sequence[Mapping[str, Any]] | None = None
    ) -> list[str]:
        """:meth:`add_events`, reading the organizations' endpoints first unless given."""
        if endpoints is None and events:
            endpoints = [dict(r) for r in await conn.fetch(ENDPOINTS_SQL, sorted({e.organization_id for e in events}))]
        return self.add_events(events, endpoints or [])

    async def run(self, conn: Conn, *, lease: LeaseAsk | None = None) -> list[Claimed]:
        """Write everything collected (then forget it); returns the deliveries leased for ``lease``."""
        parts = list(self.parts)
        if self.events:
            parts.append(Part("new_events", _EVENTS, (*columns_of(self.events, 6), self.now)))
        final = Part("done", "SELECT NULL")
        leasing = lease is not None and bool(self.deliveries)
        if self.deliveries:
            rows = [(d.id, d.organization_id, d.endpoint_id, d.event_id, d.event_type) for d in self.deliveries]
            if lease is not None:
                more, final = leased_inserts(rows, self.now, lease)
                parts += more
            else:
                parts.append(Part("new_deliveries", _DELIVERIES, (*columns_of(rows, 5), self.now)))
        claimed: list[Claimed] = []
        if parts:
            sql, args = compose(parts, final)
            if leasing:
                claimed = [Claimed.from_row(row) for row in await conn.fetch(sql, *args)]
            else:
                await conn.execute(sql, *args)
        self.parts, self.events, self.deliveries = [], [], []
        return claimed


async def record_events(
    conn: Conn, events: Sequence[NewEvent], *, endpoints: Sequence[Mapping[str, Any]] | None = None
) -> list[str]:
    """Insert the events and one pending delivery per matching enabled endpoint; return delivery ids.

    ``endpoints``: the events' organizations' enabled endpoints, already read in the caller's
    transaction (the ingest worker reads them with its claim); by default they are read here.
    """
    if not events:
        return []
    writes = Writes()
    ids = await writes.record(conn, events, endpoints=endpoints)
    await writes.run(conn)
    return ids

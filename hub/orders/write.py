"""The one way an order is written: stock moved, row stored, ``order.*`` events recorded, together.

Callers hold the order's transaction (and, for changes, the row lock from
``orders.load(..., for_update=True)``), build the row as it should be afterwards, and call
:func:`write_new` or :func:`write_change`. Events are derived from the public views before and after
(``hub.orders.transitions.events_for_change``), so a write that changes nothing emits nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hub.db import Conn
from hub.delivery.outbox import NewEvent, record_events
from hub.orders import rows as orders
from hub.orders.rows import stamp
from hub.orders.stock import held_by, line_index, move_stock
from hub.orders.transitions import events_for_change


@dataclass
class Written:
    """An order after a write: its public view, whether it is new, the deliveries to wake after commit."""

    order: dict[str, Any]
    created: bool = False
    duplicate: bool = False
    events: list[str] = field(default_factory=list)
    delivery_ids: list[str] = field(default_factory=list)


def utcnow() -> datetime:
    """Now, timezone-aware UTC (one clock for ``created``, ``updated`` and history)."""
    return datetime.now(UTC)


def set_status(row: dict[str, Any], status: str, *, actor: str, at: datetime) -> None:
    """Set ``status`` on ``row`` (in place) and append it to the status history if it changed."""
    if row.get("status") == status and row.get("status_history"):
        return
    row["status"] = status
    row["status_history"] = [*(row.get("status_history") or []), {"status": status, "at": stamp(at), "by": actor}]


async def _events(
    conn: Conn, row: Mapping[str, Any], types: Iterable[str], public: dict[str, Any]
) -> tuple[list[str], list[str]]:
    kinds = list(types)
    events = [NewEvent(row["organization_id"], row["id"], row["source"], kind, public) for kind in kinds]
    return kinds, await record_events(conn, events)


async def write_new(conn: Conn, row: dict[str, Any], *, field_name: str = "products") -> Written:
    """Reserve the new order's stock, insert it and record ``order.created``."""
    await move_stock(
        conn,
        organization_id=row["organization_id"],
        before={},
        after=held_by(row),
        field=field_name,
        line_index=line_index(row["products"]),
    )
    await orders.insert(conn, row)
    public = orders.public(row)
    kinds, deliveries = await _events(conn, row, ["order.created"], public)
    return Written(order=public, created=True, events=kinds, delivery_ids=deliveries)


async def write_change(
    conn: Conn,
    *,
    before: Mapping[str, Any],
    after: dict[str, Any],
    field_name: str = "products",
    extra_events: Iterable[str] = (),
    events: Iterable[str] | None = None,
) -> Written:
    """Move the stock difference, store what changed (bumping ``updated``) and record its events.

    The events are those :func:`hub.orders.transitions.events_for_change` finds plus ``extra_events``,
    or exactly ``events`` when given.
    """
    await move_stock(
        conn,
        organization_id=after["organization_id"],
        before=held_by(before),
        after=held_by(after),
        field=field_name,
        line_index=line_index(after["products"]),
    )
    if any(before.get(c) != after.get(c) for c in orders.COLUMNS if c != "updated"):
        after["updated"] = utcnow()
    await orders.update(conn, before=before, after=after)
    public = orders.public(after)
    if events is None:
        events = [*events_for_change(orders.public(before), public), *extra_events]
    kinds, deliveries = await _events(conn, after, events, public)
    return Written(order=public, events=kinds, delivery_ids=deliveries)

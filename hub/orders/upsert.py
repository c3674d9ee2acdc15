"""Upsert normalized source orders by ``(organization, source, external_id)`` and write their events.

Used by the ingest worker (platform webhooks) and the platform pull sync alike, always inside
the caller's transaction so the orders, their ``order.*`` events and the deliveries commit together.

Rules (the unified order's ingestion rules, docs/api.md):
- the source is authoritative: its status is applied as given (no transition table);
- the source's own version clock decides staleness: an event older than what is stored never
  overwrites newer data (equal clocks are applied; a replay changes nothing, so emits nothing).
  A clock ahead of the event's receipt by more than the allowed skew is capped there and flagged
  in the order's ``anomalies``, so one event from "9999-12-31" cannot freeze the order. Why an
  event changed nothing is returned per order (``UpsertResult.notes``: stale, with both clocks).
  An older event may still *fill* what the stored order never had (an order first seen through a
  status-only event gets its customer and lines from the older full event that arrives late);
- only the fields a connector set are applied, so a status-only event keeps the rest;
- the first time the hub stores an order it emits ``order.created``, whatever the event was called;
- the totals check is for API input only: an ingested order is stored as stated, a mismatch logged,
  a negative amount flagged in ``anomalies``; lines are kept in the currency's minor unit.

Several events for one order in one batch are applied in order, each emitting its own events.
Concurrent workers are serialised per order by transaction-scoped advisory locks taken in a fixed
order (no deadlocks), so two workers never both insert the same new order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog

from connectors.base import NormalizedOrder
from hub.db import Conn
from hub.delivery.outbox import NewEvent, Writes, record_events
from hub.money import quantize
from hub.orders import rows
from hub.orders.rows import COLUMNS, lock_key, stamp
from hub.orders.rules import anomaly, money_anomalies
from hub.orders.transitions import events_for_change
from hub.orders.view import order_public

log = structlog.get_logger("hub.ingest")

_MUTABLE = [
    c
    for c in COLUMNS
    if c not in ("id", "organization_id", "source", "external_id", "created_by", "created", "deleted_at")
]
#: How far ahead of its receipt a source clock may be (``HUB_SOURCE_CLOCK_SKEW_SECONDS``).
DEFAULT_CLOCK_SKEW = timedelta(seconds=300)
# The changed orders in one statement: each row's new values, and whether it revives a deleted order.
_UPDATE_MANY = (
    f"UPDATE orders o SET {', '.join(f'{c} = u.{c}' for c in _MUTABLE)}, "
    "deleted_at = CASE WHEN u.revive THEN NULL ELSE o.deleted_at END "
    f"FROM ({rows.unnest_rows(['id', *_MUTABLE], extra=[('revive', 'boolean')])}) AS u WHERE o.id = u.id"
)


_NOT_NULL = frozenset(
    {"currency", "subtotal", "discount", "tax", "delivery_fee", "total_amount", "status", "payment_status"}
    | {"fulfillment_status", "products"}
)


@dataclass
class UpsertResult:
    """What an upsert did: orders touched, deliveries to wake, stale events skipped.

    ``notes`` runs beside ``order_ids``: why that order's event changed nothing, else None.
    """

    order_ids: list[str] = field(default_factory=list)
    notes: list[str | None] = field(default_factory=list)
    delivery_ids: list[str] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0


def _line(line: Any, currency: str) -> dict[str, Any]:
    return rows.line_row(
        product_id=line.product_id,
        sku=line.sku,
        name=line.name,
        quantity=line.quantity,
        price=line.price,
        currency=currency,
    )


def _new_order(organization_id: str, order: NormalizedOrder, currency: str, now: datetime) -> dict[str, Any]:
    zero = Decimal(0)
    state = rows.new_row(
        organization_id=organization_id, source=order.source, created_by="webhook", currency=currency, now=now
    )
    state.update(external_id=order.external_id, created=order.source_created_at or now)
    _apply(state, order, now)
    if "subtotal" not in order.model_fields_set and state["products"]:
        state["subtotal"] = sum((Decimal(str(p["total"])) for p in state["products"]), zero)
    if "total_amount" not in order.model_fields_set:
        state["total_amount"] = state["subtotal"] - state["discount"] + state["tax"] + state["delivery_fee"]
    return state


def _apply(state: dict[str, Any], order: NormalizedOrder, now: datetime) -> None:
    """Apply the fields the connector set onto ``state`` (in place)."""
    for name in order.model_fields_set:
        if name in ("source", "external_id", "source_created_at", "products"):
            continue
        value = getattr(order, name)
        if value is None and name in _NOT_NULL:
            continue  # a connector saying "unknown" must not blank a required column
        state[name] = value
    if "products" in order.model_fields_set and order.products is not None:  # after currency: lines use it
        state["products"] = [_line(line, state["currency"]) for line in order.products]
    if (
        "status" in order.model_fields_set
        and order.status
        and (not state["status_history"] or state["status_history"][-1]["status"] != order.status)
    ):
        state["status_history"] = [
            *state["status_history"],
            {"status": order.status, "at": stamp(now), "by": f"{order.source}:webhook"},
        ]
    state["source_updated_at"] = order.source_updated_at
    state["updated"] = now


def _is_empty(value: Any) -> bool:
    return value is None or value == [] or value == ""


def _fill_gaps(state: dict[str, Any], order: NormalizedOrder) -> None:
    """Apply an older event's fields only where the stored order has nothing (never overwrite)."""
    had_lines = bool(state["products"])
    for name in order.model_fields_set - {"source", "external_id", "source_created_at", "source_updated_at"}:
        value = getattr(order, name)
        if _is_empty(value) or name in ("status", "payment_status", "fulfillment_status"):
            continue
        if name in ("subtotal", "discount", "tax", "delivery_fee", "total_amount"):
            if not had_lines:
                state[name] = value
        elif name == "products":
            if not had_lines:
                state[name] = [_line(line, state["currency"]) for line in value]
        elif _is_empty(state.get(name)):
            state[name] = value


def _check_totals(state: dict[str, Any]) -> None:
    expected = state["subtotal"] - state["discount"] + state["tax"] + state["delivery_fee"]
    currency = state["currency"]
    if quantize(Decimal(str(expected)), currency) != quantize(Decimal(str(state["total_amount"])), currency):
        log.warning(
            "ingested_total_mismatch",
            order_id=state["id"],
            source=state["source"],
            external_id=state["external_id"],
            total_amount=str(state["total_amount"]),
            expected=str(expected),
        )


async def _lock_and_load(
    conn: Conn, organization_id: str, orders: Sequence[NormalizedOrder]
) -> dict[tuple[str, str], dict[str, Any]]:
    keys = sorted({lock_key(organization_id, o.source, o.external_id) for o in orders})
    # One statement (migration 0006): the advisory locks, then the rows FOR UPDATE with a snapshot taken
    # after them, so an order another batch inserted while we waited for its lock is seen, not re-inserted.
    rows = await conn.fetch(
        "SELECT * FROM hub_lock_orders($1, $2::bigint[], $3::text[], $4::text[])",
        organization_id,
        keys,
        [o.source for o in orders],
        [o.external_id for o in orders],
    )
    return {(r["source"], r["external_id"]): dict(r) for r in rows}


def _cap_clock(
    order: NormalizedOrder, received: datetime, skew: timedelta, now: datetime
) -> tuple[NormalizedOrder, dict[str, Any] | None]:
    """``order`` with its clock capped at ``received + skew``, and the anomaly to record if it was."""
    limit = received + skew
    if order.source_updated_at <= limit:
        return order, None
    flag = anomaly(
        "source_clock_capped",
        f"source clock {stamp(order.source_updated_at)} was ahead of the event's receipt; capped at receipt + skew",
        now,
    )
    return order.model_copy(update={"source_updated_at": limit}), flag


def _flag(state: dict[str, Any], found: Sequence[dict[str, Any]]) -> None:
    """Add anomalies not already on the order (same code and detail), in place; a replay adds none."""
    known = {(a.get("code"), a.get("detail")) for a in state.get("anomalies") or []}
    new = [a for a in found if (a["code"], a["detail"]) not in known]
    if new:
        state["anomalies"] = [*(state.get("anomalies") or []), *new]


async def upsert_orders(
    conn: Conn,
    *,
    organization_id: str,
    orders: Sequence[NormalizedOrder],
    default_currency: str = "SAR",
    endpoints: Sequence[Mapping[str, Any]] | None = None,
    received_at: Sequence[datetime] | None = None,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    writes: Writes | None = None,
) -> UpsertResult:
    """Apply ``orders`` (in order) to the organization's orders and record their events.

    ``endpoints``: the organization's enabled endpoints if the caller read them already in this
    transaction (see :func:`~hub.delivery.outbox.record_events`). ``received_at`` (beside
    ``orders``; default now) and ``clock_skew`` bound each source clock. With ``writes`` the
    orders, events and deliveries are added there for the caller to run (one statement with its
    own writes); without, they are written before this returns.
    """
    result = UpsertResult()
    if not orders:
        return result
    now = datetime.now(UTC)
    stored = await _lock_and_load(conn, organization_id, orders)
    inserted: set[tuple[str, str]] = set()
    changed: set[tuple[str, str]] = set()
    revived: set[tuple[str, str]] = set()  # a newer event for a deleted order restores it (Woo order.restored)
    events: list[NewEvent] = []
    for index, given in enumerate(orders):
        order, capped = _cap_clock(given, received_at[index] if received_at else now, clock_skew, now)
        key = (order.source, order.external_id)
        current = stored.get(key)
        note: str | None = None
        if current is None:
            state = _new_order(organization_id, order, order.currency or default_currency, now)
            types = ["order.created"]
            inserted.add(key)
        else:
            before = order_public(current)
            state = dict(current)
            clock = current["source_updated_at"]
            if clock is not None and order.source_updated_at < clock:
                result.stale += 1
                note = f"skipped: stale (event clock {stamp(order.source_updated_at)}, order clock {stamp(clock)})"
                _fill_gaps(state, order)
            else:
                _apply(state, order, now)
                revived.add(key)
        _flag(state, [*([capped] if capped else []), *money_anomalies(state, now)])
        if current is not None:
            rows.next_version(current, state)
            types = events_for_change(before, order_public(state))
            if key not in inserted:
                changed.add(key)
        stored[key] = state
        _check_totals(state)
        result.order_ids.append(state["id"])
        if not types:
            result.unchanged += 1
            result.notes.append(note or "unchanged: the event restates the stored order")
            continue
        result.notes.append(None if note is None else f"{note}; only fields the order lacked were filled")
        public = order_public(state)
        events.extend(NewEvent(organization_id, state["id"], order.source, t, public) for t in types)
    pending = writes if writes is not None else Writes()
    if inserted:
        pending.add(rows.INSERT_MANY_SQL, *rows.column_arrays([stored[k] for k in inserted], COLUMNS))
    changed -= inserted
    if changed:
        states = [stored[k] for k in changed]
        pending.add(_UPDATE_MANY, *rows.column_arrays(states, ["id", *_MUTABLE]), [k in revived for k in changed])
    result.created, result.updated = len(inserted), len(changed)
    result.delivery_ids = await pending.record(conn, events, endpoints=endpoints)
    if writes is None:
        await pending.run(conn)
    return result


def is_deletion(topic: str) -> bool:
    """Platform topics that delete an order (Salla ``order.deleted``, Shopify ``orders/delete``, …)."""
    return topic.rstrip("/").lower().endswith(("deleted", "delete"))


async def delete_orders(
    conn: Conn,
    *,
    organization_id: str,
    order_ids: Sequence[str],
    endpoints: Sequence[Mapping[str, Any]] | None = None,
    writes: Writes | None = None,
) -> list[str]:
    """Soft-delete orders a source deleted and record ``order.deleted``; returns delivery ids.

    With ``writes``, what they hold is written first (the orders to delete may be among them) and
    the events are added there.
    """
    if writes is not None:
        await writes.run(conn)
    rows = await conn.fetch(
        "UPDATE orders SET deleted_at = now(), updated = now(), version = version + 1 "
        "WHERE organization_id = $1 AND id = ANY($2::text[]) "
        "AND deleted_at IS NULL RETURNING *",
        organization_id,
        list(order_ids),
    )
    events = [NewEvent(organization_id, r["id"], r["source"], "order.deleted", order_public(r)) for r in rows]
    if writes is not None:
        return await writes.record(conn, events, endpoints=endpoints)
    return await record_events(conn, events, endpoints=endpoints)

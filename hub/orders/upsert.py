"""Upsert normalized source orders by ``(organization, source, external_id)`` and write their events.

Used by the ingest worker (platform webhooks) and the chat-agent pull sync alike, always inside
the caller's transaction so the orders, their ``order.*`` events and the deliveries commit together.

Rules (DESIGN "Unified order"):
- the source is authoritative: its status is applied as given (no transition table);
- the source's own version clock decides staleness: an event older than what is stored never
  overwrites newer data (equal clocks are applied; a replay changes nothing, so emits nothing).
  An older event may still *fill* what the stored order never had (an order first seen through a
  status-only event gets its customer and lines from the older full event that arrives late);
- only the fields a connector set are applied, so a status-only event keeps the rest;
- the first time the hub stores an order it emits ``order.created``, whatever the event was called;
- the totals check is for API input only: an ingested order is stored as stated, a mismatch logged.

Several events for one order in one batch are applied in order, each emitting its own events.
Concurrent workers are serialised per order by transaction-scoped advisory locks taken in a fixed
order (no deadlocks), so two workers never both insert the same new order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog

from connectors.base import NormalizedOrder
from hub.db import Conn
from hub.delivery.outbox import NewEvent, record_events
from hub.ids import new_id
from hub.money import quantize
from hub.orders.rows import COLUMNS, INSERT_SQL
from hub.orders.transitions import events_for_change
from hub.orders.view import order_public

log = structlog.get_logger("hub.ingest")

_MUTABLE = [
    c
    for c in COLUMNS
    if c not in ("id", "organization_id", "source", "external_id", "created_by", "created", "deleted_at")
]
_UPDATE = (
    "UPDATE orders SET "
    + ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(_MUTABLE))
    + f", deleted_at = CASE WHEN ${len(_MUTABLE) + 2} THEN NULL ELSE deleted_at END WHERE id = $1"
)


_NOT_NULL = frozenset(
    {"currency", "subtotal", "discount", "tax", "delivery_fee", "total_amount", "status", "payment_status"}
    | {"fulfillment_status", "products"}
)


@dataclass
class UpsertResult:
    """What an upsert did: orders touched, deliveries to wake, stale events skipped."""

    order_ids: list[str] = field(default_factory=list)
    delivery_ids: list[str] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0


def lock_key(organization_id: str, source: str, external_id: str) -> int:
    """A signed 64-bit advisory-lock key for one source order."""
    digest = hashlib.blake2b(f"{organization_id}\0{source}\0{external_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _line(line: Any) -> dict[str, Any]:
    return {
        "product_id": line.product_id,
        "sku": line.sku,
        "name": line.name,
        "quantity": line.quantity,
        "price": str(line.price),
        "total": str(line.total),
    }


def _new_order(organization_id: str, order: NormalizedOrder, currency: str, now: datetime) -> dict[str, Any]:
    zero = Decimal(0)
    state: dict[str, Any] = {
        "id": new_id("ord"),
        "organization_id": organization_id,
        "source": order.source,
        "external_id": order.external_id,
        "reference": None,
        "created_by": "webhook",
        "contact_id": None,
        "customer_name": None,
        "customer_email": None,
        "customer_phone": None,
        "shipping_address": None,
        "products": [],
        "subtotal": zero,
        "discount": zero,
        "tax": zero,
        "delivery_fee": zero,
        "total_amount": zero,
        "currency": currency,
        "status": "pending",
        "payment_status": "pending",
        "fulfillment_status": "unfulfilled",
        "notes": None,
        "cancellation_reason": None,
        "status_history": [],
        "fingerprint": None,
        "source_updated_at": order.source_updated_at,
        "created": order.source_created_at or now,
        "updated": now,
    }
    _apply(state, order, now)
    if "subtotal" not in order.model_fields_set and state["products"]:
        state["subtotal"] = sum((Decimal(str(p["total"])) for p in state["products"]), zero)
    if "total_amount" not in order.model_fields_set:
        state["total_amount"] = state["subtotal"] - state["discount"] + state["tax"] + state["delivery_fee"]
    return state


def _apply(state: dict[str, Any], order: NormalizedOrder, now: datetime) -> None:
    """Apply the fields the connector set onto ``state`` (in place)."""
    for name in order.model_fields_set:
        if name in ("source", "external_id", "source_created_at"):
            continue
        value = getattr(order, name)
        if value is None and name in _NOT_NULL:
            continue  # a connector saying "unknown" must not blank a required column
        state[name] = [_line(line) for line in value] if name == "products" else value
    if (
        "status" in order.model_fields_set
        and order.status
        and (not state["status_history"] or state["status_history"][-1]["status"] != order.status)
    ):
        state["status_history"] = [
            *state["status_history"],
            {"status": order.status, "at": now.isoformat(), "by": f"{order.source}:webhook"},
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
                state[name] = [_line(line) for line in value]
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


async def upsert_orders(
    conn: Conn,
    *,
    organization_id: str,
    orders: Sequence[NormalizedOrder],
    default_currency: str = "SAR",
    endpoints: Sequence[Mapping[str, Any]] | None = None,
) -> UpsertResult:
    """Apply ``orders`` (in order) to the organization's orders and record their events.

    ``endpoints``: the organization's enabled endpoints if the caller read them already in this
    transaction (see :func:`~hub.delivery.outbox.record_events`).
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
    for order in orders:
        key = (order.source, order.external_id)
        current = stored.get(key)
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
                _fill_gaps(state, order)
            else:
                _apply(state, order, now)
                revived.add(key)
            types = events_for_change(before, order_public(state))
            if key not in inserted:
                changed.add(key)
        stored[key] = state
        _check_totals(state)
        result.order_ids.append(state["id"])
        if not types:
            result.unchanged += 1
            continue
        public = order_public(state)
        events.extend(NewEvent(organization_id, state["id"], order.source, t, public) for t in types)
    if inserted:
        await conn.executemany(INSERT_SQL, [tuple(stored[k].get(c) for c in COLUMNS) for k in inserted])
    changed -= inserted
    if changed:
        await conn.executemany(
            _UPDATE, [(stored[k]["id"], *(stored[k][c] for c in _MUTABLE), k in revived) for k in changed]
        )
    result.created, result.updated = len(inserted), len(changed)
    result.delivery_ids = await record_events(conn, events, endpoints=endpoints)
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
) -> list[str]:
    """Soft-delete orders a source deleted and record ``order.deleted``; returns delivery ids."""
    rows = await conn.fetch(
        "UPDATE orders SET deleted_at = now(), updated = now() WHERE organization_id = $1 AND id = ANY($2::text[]) "
        "AND deleted_at IS NULL RETURNING *",
        organization_id,
        list(order_ids),
    )
    events = [NewEvent(organization_id, r["id"], r["source"], "order.deleted", order_public(r)) for r in rows]
    return await record_events(conn, events, endpoints=endpoints)

"""Chat-agent connector: orders of a chat-commerce system that speaks seed 000's API.

Its orders have an integer ``id``, ``items`` (``product_id``, ``product_name``, ``product_sku``, ``quantity``,
``unit_price``, ``total_price``), ``subtotal``/``total``, a ``status`` among pending, confirmed, processing
(our ``preparing``), shipped, delivered, cancelled, and ``created_at``/``updated_at``. Its webhooks
``order.created``, ``order.updated``, ``order.cancelled`` and ``order.delivered`` are signed with Standard
Webhooks; seed 000 does not show their body, so both ``{"type": …, "data": {"order": {…}}}`` (the hub's own
envelope) and ``{"event": …, "data": {…order…}}`` are read.

:func:`normalize_order` is also what a pull-sync uses on each item of ``GET /api/v1/orders``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connectors import _standard_webhooks
from connectors._readers import read_text
from connectors._times import read_time
from connectors.base import NormalizedOrder, ParsedEvent, PayloadError, RawRequest
from connectors.generic import EVENT_STATUS, normalize_unified, read_envelope

SOURCE = "chat_agent"
ORDER_EVENTS = frozenset({"order.created", "order.updated", "order.cancelled", "order.delivered"})

# Seed 000's fields that already bear the unified name (or an accepted alias: `items`, status `processing`).
# The rest of an order (contact_id, created_by, item ids) has no place in a NormalizedOrder.
_SAME_NAME = (
    "customer_name",
    "customer_email",
    "customer_phone",
    "shipping_address",
    "notes",
    "cancellation_reason",
    "currency",
    "status",
    "payment_status",
    "fulfillment_status",
    "subtotal",
    "discount",
    "tax",
    "delivery_fee",
    "items",
    "products",
)
# Seed 000 name -> unified name.
_RENAMED = {"total": "total_amount", "created_at": "source_created_at"}


class ChatAgentConnector:
    """Seed 000 orders pushed as Standard Webhooks."""

    source: str = SOURCE

    def verify(self, request: RawRequest, secret: str) -> None:
        """Standard Webhooks signature, timestamp within ``request.tolerance_seconds`` of ``received_at``."""
        _standard_webhooks.verify(request, secret)

    def delivery_id(self, request: RawRequest) -> str:
        """The ``webhook-id`` header, else the body's hash."""
        return _standard_webhooks.delivery_id(request)

    def parse(self, request: RawRequest) -> list[ParsedEvent]:
        """One event; the four order events carry the normalized order, others are acknowledged and ignored."""
        envelope = read_envelope(request.body)
        if envelope.type not in ORDER_EVENTS:
            return [ParsedEvent(envelope.type, None, f"{envelope.type!r} is not an order event of this system")]
        if envelope.order is None:
            raise PayloadError("data: missing (an order event carries the order)")
        order = envelope.order
        if order.get("status") is None and envelope.type in EVENT_STATUS:
            order = {**order, "status": EVENT_STATUS[envelope.type]}
        return [ParsedEvent(envelope.type, normalize_order(order, event_time=envelope.created))]


def normalize_order(order: Mapping[str, Any], *, event_time: datetime | None = None) -> NormalizedOrder:
    """Normalize one seed 000 order (from a webhook or from ``GET /api/v1/orders``).

    The version clock is ``updated_at``; without it (seed 000's list items and cancel response omit it),
    the webhook's own time, else ``created_at``. Fields the order does not carry are left unset.
    """
    if not isinstance(order, Mapping):
        raise PayloadError("order: expected an object")
    unified: dict[str, Any] = {key: order[key] for key in _SAME_NAME if key in order}
    unified.update({new: order[old] for old, new in _RENAMED.items() if old in order})
    unified["external_id"] = _order_id(order.get("id"))
    unified["source_updated_at"] = _version_clock(order, event_time)
    return normalize_unified(unified, source=SOURCE)


def _order_id(value: Any) -> str:
    # Seed 000 ids are integers; a string id is accepted so that another Orderhub (ord_…) can be the upstream.
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        raise PayloadError("id: must not be negative")
    text = read_text(value, "id")
    if text is None:
        raise PayloadError("id: missing")
    return text


def _version_clock(order: Mapping[str, Any], event_time: datetime | None) -> datetime:
    candidates = (
        ("updated_at", order.get("updated_at")),
        ("created", event_time),
        ("created_at", order.get("created_at")),
    )
    for name, value in candidates:
        if value is not None:
            return read_time(value, name)
    raise PayloadError("updated_at: missing, and neither the event's time nor created_at can stand in")


connector = ChatAgentConnector()

"""Generic connector: orders in Orderhub's own unified model, inside a Standard Webhooks envelope.

For platforms without a connector of their own (e.g. HungerStation). The body is the envelope the hub sends
(``{"id": "evt_…", "type": "order.created", "created": "…", "data": {"order": {…}}}``; ``{"event": …,
"data": {…order…}}`` is accepted too), signed with Standard Webhooks (see :mod:`connectors._standard_webhooks`).

This module also owns the *reader of the unified model*, :func:`normalize_unified`, built on the value readers of
:mod:`connectors._readers`. Shopify, WooCommerce and the chat agent translate their payload into the unified field
names and pass it through the same reader, so they obey one set of rules for money, text, quantities and
statuses, and every malformed value becomes a :class:`PayloadError` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

from pydantic import ValidationError

from connectors import _standard_webhooks
from connectors._readers import (
    load_json,
    read_address,
    read_currency,
    read_list,
    read_money,
    read_object,
    read_quantity,
    read_text,
)
from connectors._times import read_time
from connectors.base import (
    FulfillmentStatus,
    NormalizedOrder,
    OrderLine,
    OrderStatus,
    ParsedEvent,
    PayloadError,
    PaymentStatus,
    RawRequest,
    to_e164,
)

SOURCE = "generic"

# The hub's own outbound event types (DESIGN "Outbound webhooks"); each carries a full or partial order.
ORDER_EVENTS = frozenset(
    {
        "order.created",
        "order.updated",
        "order.status_changed",
        "order.cancelled",
        "order.delivered",
        "order.returned",
        "order.payment_updated",
        "order.deleted",  # the hub deletes the order it names
    }
)
# An order without a `status` takes it from these events, so {"id": …} alone still says what happened.
EVENT_STATUS = {"order.cancelled": "cancelled", "order.delivered": "delivered", "order.returned": "returned"}

_STATUS_ALIASES = {"processing": "preparing"}  # seed 000's name for "preparing"

# A `source` in a generic payload names the platform (e.g. "hungerstation"), unless it is one of the hub's
# own names: a generic connection must not write into another connector's (source, external_id) space.
_RESERVED_SOURCES = frozenset({"shopify", "woocommerce", "salla", "zid", "chat_agent", "manual", "api"})
_SOURCE_SLUG = re.compile(r"[a-z][a-z0-9_]{1,31}")

_MAX_ID_LENGTH = 255
_MAX_TYPE_LENGTH = 100


# ---- the Standard Webhooks envelope --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Envelope:
    """An event as sent: its type, its order, and when it happened (if the sender said)."""

    type: str
    order: dict[str, Any] | None
    created: datetime | None


def read_envelope(body: bytes) -> Envelope:
    """``{"type"|"event": …, "created"|"timestamp": …, "data": {"order": {…}} or {…order…}}``."""
    payload = read_object(load_json(body), "body")
    event_type = read_text(_first(payload, "type", "event"), "type")
    if event_type is None:
        raise PayloadError("type: missing (the envelope names its event in 'type' or 'event')")
    if len(event_type) > _MAX_TYPE_LENGTH:
        raise PayloadError(f"type: longer than {_MAX_TYPE_LENGTH} characters")
    data = payload.get("data")
    order = None
    if data is not None:
        data = read_object(data, "data")
        order = read_object(data["order"], "data.order") if "order" in data else data
    created = _first(payload, "created", "timestamp")
    return Envelope(event_type, order, None if created is None else read_time(created, "created"))


# ---- the unified order -----------------------------------------------------------------------------


def normalize_unified(order: Mapping[str, Any], *, source: str, phone_region: str = "SA") -> NormalizedOrder:
    """Read an order written in the unified model's names into a :class:`NormalizedOrder`.

    Only the fields present in ``order`` are set, so a partial order changes only what it names. A null
    clears a nullable text field; a null amount, currency, status or product list is treated as absent,
    since the stored order always has one. Seed 000's names are accepted where DESIGN says so.
    """
    fields: dict[str, Any] = {
        "source": source,
        "external_id": _external_id(order),
        "source_updated_at": _required_time(order, "source_updated_at", "updated"),
    }
    for name in ("reference", "customer_name", "customer_email", "notes", "cancellation_reason"):
        if name in order:
            fields[name] = read_text(order[name], name)
    if "customer_phone" in order:
        fields["customer_phone"] = to_e164(
            read_text(order["customer_phone"], "customer_phone"), default_region=phone_region
        )
    if "shipping_address" in order:
        fields["shipping_address"] = read_address(order["shipping_address"], "shipping_address")
    readers: dict[str, tuple[tuple[str, ...], Callable[[Any, str], Any]]] = {
        "source_created_at": (("source_created_at", "created"), read_time),
        "subtotal": (("subtotal",), read_money),
        "discount": (("discount",), read_money),
        "tax": (("tax",), read_money),
        "delivery_fee": (("delivery_fee",), read_money),
        "total_amount": (("total_amount",), read_money),
        "currency": (("currency",), read_currency),
        "status": (("status",), _status_reader(OrderStatus, aliases=_STATUS_ALIASES)),
        "payment_status": (("payment_status",), _status_reader(PaymentStatus)),
        "fulfillment_status": (("fulfillment_status",), _status_reader(FulfillmentStatus)),
        "products": (("products", "items"), _read_lines),
    }
    for name, (keys, reader) in readers.items():
        key = next((k for k in keys if order.get(k) is not None), None)
        if key is not None:
            fields[name] = reader(order[key], key)
    try:
        return NormalizedOrder(**fields)
    except ValidationError as exc:  # defence in depth: the readers above should have caught it
        raise PayloadError(f"order does not fit the unified model: {exc.errors()[0]['msg']}") from exc


def _external_id(order: Mapping[str, Any]) -> str:
    key = "external_id" if order.get("external_id") is not None else "id"
    value = read_text(order.get(key), key)
    if value is None:
        raise PayloadError("external_id: missing (send the platform's order id as external_id or id)")
    if len(value) > _MAX_ID_LENGTH:
        raise PayloadError(f"{key}: longer than {_MAX_ID_LENGTH} characters")
    return value


def _required_time(order: Mapping[str, Any], *keys: str) -> datetime:
    for key in keys:
        if order.get(key) is not None:
            return read_time(order[key], key)
    raise PayloadError(f"{keys[0]}: missing (the version clock is required; also read from {', '.join(keys[1:])})")


def _status_reader(literal: Any, *, aliases: Mapping[str, str] | None = None) -> Callable[[Any, str], str]:
    """A reader accepting the values of one of base.py's status Literals (plus aliases)."""
    allowed: tuple[str, ...] = get_args(literal)

    def read(value: Any, where: str) -> str:
        text = read_text(value, where) or ""
        status = (aliases or {}).get(text, text)
        if status not in allowed:
            raise PayloadError(f"{where}: {value!r:.40} is not one of {', '.join(allowed)}")
        return status

    return read


def _read_lines(value: Any, where: str) -> list[OrderLine]:
    return [_read_line(line, f"{where}[{i}]") for i, line in enumerate(read_list(value, where))]


def _read_line(value: Any, where: str) -> OrderLine:
    """A line by the unified names, or seed 000's (product_name, product_sku, unit_price, total_price)."""
    if isinstance(value, OrderLine):  # already read by a platform connector, with the platform's field names
        return value
    line = read_object(value, where)
    name = read_text(_first(line, "name", "product_name"), f"{where}.name")
    if name is None:
        raise PayloadError(f"{where}.name: missing")
    if _first(line, "quantity") is None or _first(line, "price", "unit_price") is None:
        raise PayloadError(f"{where}: quantity and price are required")
    quantity = read_quantity(line["quantity"], f"{where}.quantity")
    price = read_money(_first(line, "price", "unit_price"), f"{where}.price")
    total = _first(line, "total", "total_price")
    return OrderLine(
        product_id=read_text(line.get("product_id"), f"{where}.product_id"),
        sku=read_text(_first(line, "sku", "product_sku"), f"{where}.sku"),
        name=name,
        quantity=quantity,
        price=price,
        total=price * quantity if total is None else read_money(total, f"{where}.total"),
    )


def _first(obj: Mapping[str, Any], *keys: str) -> Any:
    return next((obj[k] for k in keys if obj.get(k) is not None), None)


def source_of(order: Mapping[str, Any]) -> str:
    """The platform a generic order names in ``source`` (a slug), else ``generic``."""
    name = read_text(order.get("source"), "source")
    if name is None or name in _RESERVED_SOURCES:
        return SOURCE
    if not _SOURCE_SLUG.fullmatch(name):
        raise PayloadError(f"source: expected a lower-case name like 'hungerstation', got {name[:40]!r}")
    return name


# ---- the connector -----------------------------------------------------------------------------------


class GenericConnector:
    """Unified-model orders in a Standard Webhooks envelope."""

    source: str = SOURCE

    def verify(self, request: RawRequest, secret: str) -> None:
        """Standard Webhooks signature, timestamp within ``request.tolerance_seconds`` of ``received_at``."""
        _standard_webhooks.verify(request, secret)

    def delivery_id(self, request: RawRequest) -> str:
        """The ``webhook-id`` header, else the body's hash."""
        return _standard_webhooks.delivery_id(request)

    def parse(self, request: RawRequest) -> list[ParsedEvent]:
        """One event; order events carry the normalized order, others are acknowledged and ignored."""
        envelope = read_envelope(request.body)
        if envelope.type not in ORDER_EVENTS:
            return [ParsedEvent(envelope.type, None, f"{envelope.type!r} is not an order event")]
        if envelope.order is None:
            raise PayloadError("data: missing (an order event carries the order in data.order)")
        order = envelope.order
        if order.get("status") is None and envelope.type in EVENT_STATUS:
            order = {**order, "status": EVENT_STATUS[envelope.type]}
        return [ParsedEvent(envelope.type, normalize_unified(order, source=source_of(order)))]


connector = GenericConnector()

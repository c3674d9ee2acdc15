"""Salla connector: verify Salla store webhooks and normalize their orders.

Salla posts one event per request as ``{"event", "merchant", "created_at", "data"}``. Its two
security strategies are both accepted: ``Signature`` (``X-Salla-Signature`` = hex HMAC-SHA256 of
the raw body, keyed with the connection secret) and ``Token`` (the secret itself in
``Authorization``, as ``Bearer <secret>`` or bare). Salla sends no per-delivery id, so retries are
recognised by a hash of the body.

Ten order events share Salla's full order model (``data`` is the order); ``order.status.updated``
instead carries a status-history record with the full order under ``data.order``, which is read
like the others (amounts, items, customer, shipping) with the event's status. :func:`normalize_order`
reads the same model as the Admin API's order details answer (the pull client's orders).
Mapping tables and every choice the docs leave open: ``docs/connectors.md``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from connectors._readers import (
    MALFORMED,
    as_bytes,
    describe,
    exact_sum,
    load_json,
    read_amount,
    read_decimal_quantity,
    read_id,
    read_object,
    read_opt_amount,
    read_opt_currency,
    read_opt_id,
    read_opt_list,
    read_opt_object,
    read_shipping_address,
    read_string,
    to_phone,
)
from connectors._times import read_local_time
from connectors.base import (
    FulfillmentStatus,
    NormalizedOrder,
    OrderLine,
    OrderStatus,
    ParsedEvent,
    PayloadError,
    PaymentStatus,
    RawRequest,
    SignatureError,
    body_hash,
)

SOURCE: Final = "salla"

# Topics whose ``data`` is Salla's full order model (docs: "10 order webhook events that share the same model").
FULL_ORDER_TOPICS: Final = frozenset(
    {
        "order.created",
        "order.updated",
        "order.completed",
        "order.payment.updated",
        "order.products.updated",
        "order.coupon.updated",
        "order.total_price.updated",
        "order.cancelled",
        "order.refunded",
        "order.deleted",
    }
)
STATUS_TOPIC: Final = "order.status.updated"

# Salla's original status slugs (custom statuses keep their parent's slug) -> hub status, fulfilment.
# "restoring" (return under way) maps to None: the hub has no such state, so the stored one stays.
STATUS_MAP: Final[dict[str, tuple[OrderStatus | None, FulfillmentStatus | None]]] = {
    "payment_pending": ("pending", "unfulfilled"),
    "waiting_for_payment_confirmation": ("pending", "unfulfilled"),
    "payment_failed": ("pending", "unfulfilled"),
    "under_review": ("pending", "unfulfilled"),
    "in_progress": ("preparing", "unfulfilled"),
    "completed": ("ready", "unfulfilled"),
    "shipped": ("shipped", "fulfilled"),
    "delivering": ("shipped", "fulfilled"),
    "delivered": ("delivered", "fulfilled"),
    "canceled": ("cancelled", None),
    "cancelled": ("cancelled", None),
    "restoring": (None, None),
    "restored": ("returned", "returned"),
}
_AWAITING_PAYMENT: Final = frozenset({"payment_pending", "waiting_for_payment_confirmation"})
_AFTER_CHECKOUT: Final = frozenset(
    {"under_review", "in_progress", "completed", "shipped", "delivering", "delivered", "restoring"}
)

STORE_ZONE: Final = "Asia/Riyadh"  # Salla's naive timestamps and date objects are in store time


class SallaConnector:
    """Salla store webhooks (``/hooks/salla/{connection_id}``)."""

    source = SOURCE

    def verify(self, request: RawRequest, secret: str) -> None:
        """Check ``X-Salla-Signature`` or, under the Token strategy, ``Authorization`` (constant time)."""
        if not secret:
            raise SignatureError("salla: the connection has no secret")
        headers = request.headers
        strategy = headers.get("x-salla-security-strategy", "").strip().lower()
        signature, authorization = headers.get("x-salla-signature"), headers.get("authorization")
        use_token = strategy == "token" or (strategy != "signature" and signature is None and authorization is not None)
        if use_token:
            _check_token(authorization, secret)
        else:
            _check_signature(request.body, signature, secret)

    def delivery_id(self, request: RawRequest) -> str:
        """Salla sends no delivery id header, so a retry is recognised by its identical body."""
        return body_hash(request.body)

    def parse(self, request: RawRequest) -> list[ParsedEvent]:
        """The single event of a Salla request; PayloadError if it is not readable as one."""
        envelope = read_object(load_json(request.body), "body")
        topic = envelope.get("event")
        if not isinstance(topic, str) or not topic.strip() or len(topic) > 200:
            raise PayloadError(f"event: expected the event name, got {describe(topic)}")
        try:
            return [_event(topic.strip(), envelope)]
        except PayloadError:
            raise
        except MALFORMED as exc:
            raise PayloadError(f"{topic}: unreadable payload ({type(exc).__name__}: {exc})"[:500]) from exc


connector = SallaConnector()


# ---- authentication --------------------------------------------------------------------------


def _check_signature(body: bytes, signature: str | None, secret: str) -> None:
    if not signature or not signature.strip():
        raise SignatureError("salla: missing X-Salla-Signature")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), as_bytes(signature.strip().lower())):
        raise SignatureError("salla: X-Salla-Signature does not match the body")


def _check_token(authorization: str | None, secret: str) -> None:
    token = (authorization or "").strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        raise SignatureError("salla: missing Authorization token")
    if not hmac.compare_digest(as_bytes(token), as_bytes(secret)):
        raise SignatureError("salla: Authorization token does not match")


# ---- events ----------------------------------------------------------------------------------


def _event(topic: str, envelope: dict[str, Any]) -> ParsedEvent:
    if topic == STATUS_TOPIC:
        return _status_event(topic, envelope)
    if topic in FULL_ORDER_TOPICS:
        return ParsedEvent(topic, _full_order(topic, envelope))
    if topic.startswith("order.shipment."):
        return ParsedEvent(topic, None, "shipment event: order changes arrive as order.* events")
    return ParsedEvent(topic, None, f"not an order event: {topic}")


def _status_event(topic: str, envelope: dict[str, Any]) -> ParsedEvent:
    # data is a status-history record (data.id is the record's id, data.status a display name); the
    # full order, with its status slug, is data.order and is applied whole (issue 19): an order first
    # seen through this event must not be stored with no lines and a zero total.
    data = read_object(envelope.get("data"), "data")
    order = read_object(data.get("order"), "data.order")
    slug = _slug(order.get("status"), "data.order.status") or _slug(data.get("status"), "data.status")
    clock = _clock(envelope, order)
    return ParsedEvent(topic, _normalized(order, "data.order", slug=slug, clock=clock))


def _full_order(topic: str, envelope: dict[str, Any]) -> NormalizedOrder:
    data = read_object(envelope.get("data"), "data")
    overrides: dict[str, Any] = {}
    if topic == "order.cancelled":  # the event name is explicit even when a custom status hides the slug
        overrides["status"] = "cancelled"
    if topic == "order.refunded":
        overrides["payment_status"] = "refunded"
    slug = _slug(data.get("status"), "data.status")
    return _normalized(data, "data", slug=slug, clock=_clock(envelope, data), **overrides)


def normalize_order(order: dict[str, Any], *, fetched_at: datetime | None = None) -> NormalizedOrder:
    """A Salla order object as the Admin API's order details return it (the webhooks' full model).

    The version clock is the order's ``updated_at``; Salla's documented order object has none, so
    without it the clock is ``fetched_at``, the moment the pull client read the order (the state it
    holds is the platform's state at that moment). PayloadError when neither is there.
    """
    try:
        if order.get("updated_at") not in (None, "", []):
            clock = salla_time(order["updated_at"], "updated_at")
        elif fetched_at is not None:
            clock = fetched_at
        else:
            raise PayloadError("no version clock: updated_at is missing")
        return _normalized(order, "order", slug=_slug(order.get("status"), "order.status"), clock=clock)
    except PayloadError:
        raise
    except MALFORMED as exc:
        raise PayloadError(f"unreadable Salla order ({type(exc).__name__}: {exc})"[:500]) from exc


def _normalized(
    data: dict[str, Any], path: str, *, slug: str | None, clock: datetime, **overrides: Any
) -> NormalizedOrder:
    """Salla's full order model at ``path``; only the fields it holds (or ``overrides``) are set."""
    external_id = read_id(data.get("id"), f"{path}.id")
    status, fulfillment = STATUS_MAP.get(slug or "", (None, None))
    customer = read_opt_object(data.get("customer"), f"{path}.customer") or {}
    fields: dict[str, Any] = {
        "reference": read_opt_id(data.get("reference_id"), f"{path}.reference_id"),
        "customer_name": _customer_name(customer),
        "customer_email": read_string(customer.get("email"), f"{path}.customer.email"),
        "customer_phone": _phone(customer),
        "shipping_address": read_shipping_address(data.get("shipping"), f"{path}.shipping"),
        "products": _lines(data.get("items"), f"{path}.items"),
        "currency": read_opt_currency(data.get("currency"), f"{path}.currency"),
        "status": status,
        "payment_status": _payment_status(slug, data),
        "fulfillment_status": fulfillment,
        "source_created_at": _opt_time(data.get("date"), f"{path}.date"),
        **_amounts(read_opt_object(data.get("amounts"), f"{path}.amounts")),
        **overrides,
    }
    set_fields = {name: value for name, value in fields.items() if value is not None}
    return NormalizedOrder(source=SOURCE, external_id=external_id, source_updated_at=clock, **set_fields)


def _payment_status(slug: str | None, data: dict[str, Any]) -> PaymentStatus | None:
    # Salla has no payment-status field: derive it from the status, the payment method and
    # is_pending_payment, and say nothing where they do not tell (cancelled, unknown slugs).
    method = read_string(data.get("payment_method"), "data.payment_method")
    if data.get("is_pending_payment") is True or slug in _AWAITING_PAYMENT:
        return "pending"
    if slug == "payment_failed":
        return "failed"
    if slug == "restored":
        return "refunded"
    if slug not in _AFTER_CHECKOUT or method is None:
        return None
    if method == "cod":  # cash is collected at the door
        return "paid" if slug == "delivered" else "pending"
    if method == "bank":  # a transfer receipt awaits the merchant's review
        return "pending" if slug == "under_review" else "paid"
    return "paid"


def _amounts(amounts: dict[str, Any] | None) -> dict[str, Decimal | None]:
    if amounts is None:
        return {}
    shipping = read_opt_amount(amounts.get("shipping_cost"), "amounts.shipping_cost")
    cod = read_opt_amount(amounts.get("cash_on_delivery"), "amounts.cash_on_delivery")
    tax = read_opt_object(amounts.get("tax"), "amounts.tax")
    return {
        "subtotal": read_opt_amount(amounts.get("sub_total"), "amounts.sub_total"),
        "discount": _discount(amounts.get("discounts")),
        "tax": read_opt_amount(tax.get("amount"), "amounts.tax.amount") if tax else None,
        "delivery_fee": None if shipping is None and cod is None else exact_sum(shipping, cod),
        "total_amount": read_opt_amount(amounts.get("total"), "amounts.total"),
    }


def _discount(discounts: Any) -> Decimal | None:
    entries = read_opt_list(discounts, "amounts.discounts")
    if entries is None:
        return None
    values = []
    for i, entry in enumerate(entries):
        path = f"amounts.discounts[{i}]"
        values.append(read_amount(read_object(entry, path).get("discount"), f"{path}.discount"))
    return exact_sum(*values)


def _lines(items: Any, path: str) -> list[OrderLine] | None:
    found = read_opt_list(items, path)
    if found is None:
        return None
    return [_line(read_object(item, f"{path}[{i}]"), f"{path}[{i}]") for i, item in enumerate(found)]


def _line(item: dict[str, Any], path: str) -> OrderLine:
    product = read_opt_object(item.get("product"), f"{path}.product") or {}
    amounts = read_object(item.get("amounts"), f"{path}.amounts")
    name = read_string(item.get("name"), f"{path}.name") or read_string(product.get("name"), f"{path}.product.name")
    if name is None:
        raise PayloadError(f"{path}.name: missing")
    product_id = item.get("product_id")  # flat in some events, nested under "product" in others
    product_id = product.get("id") if product_id is None else product_id
    return OrderLine(
        product_id=read_opt_id(product_id, f"{path}.product_id"),
        sku=read_string(item.get("sku"), f"{path}.sku") or read_string(product.get("sku"), f"{path}.product.sku"),
        name=name,
        quantity=read_decimal_quantity(item.get("quantity"), f"{path}.quantity"),
        price=read_amount(amounts.get("price_without_tax"), f"{path}.amounts.price_without_tax"),
        total=read_amount(amounts.get("total"), f"{path}.amounts.total"),
    )


def _customer_name(customer: dict[str, Any]) -> str | None:
    name = read_string(customer.get("name"), "data.customer.name")
    if name:
        return name
    parts = (read_string(customer.get(key), f"data.customer.{key}") for key in ("first_name", "last_name"))
    return " ".join(part for part in parts if part) or None


def _phone(customer: dict[str, Any]) -> str | None:
    # Salla usually splits the number: mobile_code "+966" and mobile 501234567 (an int).
    mobile = read_opt_id(customer.get("mobile"), "data.customer.mobile")
    code = read_opt_id(customer.get("mobile_code"), "data.customer.mobile_code")
    return to_phone(mobile, code)


def _slug(status: Any, path: str) -> str | None:
    if isinstance(status, str):
        return status.strip().lower() or None
    node = read_opt_object(status, path)
    if not node:
        return None
    slug = read_string(node.get("slug"), f"{path}.slug")
    return slug.lower() if slug else None


# ---- Salla time ------------------------------------------------------------------------------


def _clock(envelope: dict[str, Any], data: dict[str, Any]) -> datetime:
    """The version clock: the order's updated_at, else the event's created_at."""
    if data.get("updated_at") not in (None, "", []):
        return salla_time(data["updated_at"], "data.updated_at")
    if envelope.get("created_at") in (None, ""):
        raise PayloadError("no version clock: data.updated_at and created_at are both missing")
    return salla_time(envelope["created_at"], "created_at")


def _opt_time(value: Any, path: str) -> datetime | None:
    return None if value in (None, "", []) else salla_time(value, path)


def salla_time(value: Any, path: str) -> datetime:
    """A Salla timestamp in UTC: a PHP date object, a JavaScript date string or ISO-8601 (naive: store time)."""
    return read_local_time(value, path, STORE_ZONE)

"""Shopify connector: order webhooks of the Admin API (REST order resource as the body).

Authentication: ``X-Shopify-Hmac-Sha256`` is the base64 HMAC-SHA256 of the raw body keyed with the app's
client secret. Retries of one delivery share ``X-Shopify-Webhook-Id``; ``X-Shopify-Topic`` names the topic.
Every order topic handled here carries the whole order, so the order is normalized in full; the version
clock is the order's ``updated_at``. See docs/connectors.md for the mapping tables.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from connectors._readers import load_json, read_list, read_money, read_object, read_quantity, read_text
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
    SignatureError,
    body_hash,
)
from connectors.generic import normalize_unified

SOURCE = "shopify"
ORDER_TOPICS = frozenset(
    {
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/cancelled",
        "orders/fulfilled",
        "orders/partially_fulfilled",
    }
)
# The body is only {"id": …}; the hub deletes the order named by an event of this topic.
DELETE_TOPIC = "orders/delete"
# Order topics whose body is not the order: acknowledged, with the reason recorded.
IGNORED_TOPICS = {
    "orders/edited": "the body is an order-edit summary, not the order; the edited order arrives as orders/updated",
    "refunds/create": "the body is a refund, not the order; the new financial_status arrives as orders/updated",
}

_PAYMENT: dict[str, PaymentStatus] = {
    "pending": "pending",
    "authorized": "pending",  # payment secured but not captured yet
    "partially_paid": "pending",
    "paid": "paid",
    "partially_refunded": "partially_refunded",
    "refunded": "refunded",
    "voided": "failed",  # the authorization was cancelled: no money will come
    "expired": "failed",  # the authorization lapsed uncaptured
}
_FULFILLMENT: dict[str, FulfillmentStatus] = {
    "unfulfilled": "unfulfilled",  # REST sends null for this; older versions spelled it out
    "partial": "partial",
    "fulfilled": "fulfilled",
    "restocked": "unfulfilled",  # every line restocked on cancellation: nothing is with the customer
}
# Financial states in which the sale stands and the merchant is expected to fulfil.
_CONFIRMED_FINANCIAL = frozenset({"authorized", "partially_paid", "paid", "partially_refunded", "refunded"})
_DEAD_FULFILLMENTS = frozenset({"cancelled", "error", "failure"})


class ShopifyConnector:
    """Shopify ``orders/*`` webhooks."""

    source: str = SOURCE

    def verify(self, request: RawRequest, secret: str) -> None:
        """``X-Shopify-Hmac-Sha256`` must equal base64(HMAC-SHA256(secret, raw body)), compared in constant time."""
        if not secret:
            raise SignatureError("the connection has no secret to verify with")
        given = request.headers.get("x-shopify-hmac-sha256", "").strip()
        if not given:
            raise SignatureError("missing X-Shopify-Hmac-Sha256 header")
        expected = base64.b64encode(hmac.new(secret.encode(), request.body, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, given.encode("utf-8", "surrogatepass")):
            raise SignatureError("X-Shopify-Hmac-Sha256 does not match the body")

    def delivery_id(self, request: RawRequest) -> str:
        """``X-Shopify-Webhook-Id`` (same on every retry of a delivery), else the body's hash."""
        return request.headers.get("x-shopify-webhook-id", "").strip() or body_hash(request.body)

    def parse(self, request: RawRequest) -> list[ParsedEvent]:
        """One event: the normalized order for order topics, an ignored event for any other topic."""
        topic = request.headers.get("x-shopify-topic", "").strip()
        if not topic:
            raise PayloadError("missing X-Shopify-Topic header")
        if topic == DELETE_TOPIC:
            return [ParsedEvent(topic, _deletion(request))]
        if topic not in ORDER_TOPICS:
            return [ParsedEvent(topic, None, IGNORED_TOPICS.get(topic, f"{topic!r} is not an order topic"))]
        return [ParsedEvent(topic, normalize_order(read_object(load_json(request.body), "body")))]


def normalize_order(order: Mapping[str, Any]) -> NormalizedOrder:
    """Normalize a Shopify REST order (the body of every order topic)."""
    customer = _section(order, "customer")
    shipping = _section(order, "shipping_address")
    billing = _section(order, "billing_address")
    cancelled = order.get("cancelled_at") is not None
    unified: dict[str, Any] = {
        "external_id": _order_id(order.get("id")),
        "source_updated_at": read_time(order.get("updated_at"), "updated_at"),
        "reference": read_text(order.get("name"), "name") or read_text(order.get("order_number"), "order_number"),
        "customer_name": _person_name(customer, billing, shipping),
        "customer_email": _first_text(order, customer, keys=("email", "contact_email")),
        "customer_phone": _first_text(order, customer, shipping, billing, keys=("phone",)),
        "shipping_address": shipping,
        "products": [
            _line(item, f"line_items[{i}]") for i, item in enumerate(read_list(order.get("line_items"), "line_items"))
        ],
        "delivery_fee": _shipping_fee(order),
        "notes": read_text(order.get("note"), "note"),
        "cancellation_reason": read_text(order.get("cancel_reason"), "cancel_reason") if cancelled else None,
        **_statuses(order),
    }
    if order.get("created_at") is not None:
        unified["source_created_at"] = read_time(order["created_at"], "created_at")
    if order.get("currency") is not None:
        unified["currency"] = order["currency"]
    amounts = {
        "subtotal": "total_line_items_price",
        "discount": "total_discounts",
        "tax": "total_tax",
        "total_amount": "total_price",
    }
    for name, key in amounts.items():
        if order.get(key) is not None:
            unified[name] = read_money(order[key], key)
    return normalize_unified(unified, source=SOURCE, phone_region=_region(shipping, billing))


def _deletion(request: RawRequest) -> NormalizedOrder:
    """The deleted order's id; the clock is when Shopify fired the webhook (else when it arrived)."""
    body = read_object(load_json(request.body), "body")
    triggered = request.headers.get("x-shopify-triggered-at", "").strip()
    clock = read_time(triggered, "X-Shopify-Triggered-At") if triggered else request.received_at
    return normalize_unified({"external_id": _order_id(body.get("id")), "source_updated_at": clock}, source=SOURCE)


def _order_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PayloadError(f"id: expected the order's numeric id, got {value!r:.40}")
    text = read_text(value, "id")
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 20:
        raise PayloadError(f"id: expected the order's numeric id, got {value!r:.40}")
    return text


def _line(value: Any, where: str) -> OrderLine:
    item = read_object(value, where)
    name = read_text(item.get("name"), f"{where}.name") or read_text(item.get("title"), f"{where}.title")
    if name is None:
        raise PayloadError(f"{where}: has neither name nor title")
    quantity = read_quantity(item.get("quantity"), f"{where}.quantity")
    price = read_money(item.get("price"), f"{where}.price")
    return OrderLine(
        product_id=read_text(item.get("product_id"), f"{where}.product_id"),  # null for custom items
        sku=read_text(item.get("sku"), f"{where}.sku"),
        name=name,
        quantity=quantity,
        price=price,
        total=price * quantity,  # before discounts, which the order states in total_discounts
    )


def _shipping_fee(order: Mapping[str, Any]) -> Decimal | None:
    price_set = _section(order, "total_shipping_price_set")
    shop_money = _section(price_set, "shop_money") if price_set else None
    if shop_money and shop_money.get("amount") is not None:
        return read_money(shop_money["amount"], "total_shipping_price_set.shop_money.amount")
    if order.get("shipping_lines") is None:
        return None
    lines = read_list(order["shipping_lines"], "shipping_lines")
    total = Decimal(0)
    for i, line in enumerate(lines):
        total += read_money(read_object(line, f"shipping_lines[{i}]").get("price"), f"shipping_lines[{i}].price")
    return total


def _statuses(order: Mapping[str, Any]) -> dict[str, str]:
    """status, payment_status and fulfillment_status; an unknown Shopify value leaves its field unset."""
    financial = read_text(order.get("financial_status"), "financial_status")
    shipped = read_text(order.get("fulfillment_status"), "fulfillment_status") or "unfulfilled"
    result: dict[str, str] = {}
    if financial in _PAYMENT:
        result["payment_status"] = _PAYMENT[financial]
    if shipped in _FULFILLMENT:
        result["fulfillment_status"] = _FULFILLMENT[shipped]
    status = _order_status(order, financial, shipped)
    if status is not None:
        result["status"] = status
    return result


def _order_status(order: Mapping[str, Any], financial: str | None, shipped: str) -> OrderStatus | None:
    if order.get("cancelled_at") is not None:
        return "cancelled"
    if shipped == "fulfilled":
        return "delivered" if _all_delivered(order) else "shipped"
    if shipped == "partial":
        return "preparing"
    if financial in _CONFIRMED_FINANCIAL:
        return "confirmed"
    return "pending" if financial in _PAYMENT else None


def _all_delivered(order: Mapping[str, Any]) -> bool:
    """True when every live fulfillment's carrier status is ``delivered``."""
    states = []
    for i, value in enumerate(read_list(order.get("fulfillments"), "fulfillments")):
        fulfillment = read_object(value, f"fulfillments[{i}]")
        status = read_text(fulfillment.get("status"), f"fulfillments[{i}].status")
        shipment = read_text(fulfillment.get("shipment_status"), f"fulfillments[{i}].shipment_status")
        if status not in _DEAD_FULFILLMENTS:
            states.append(shipment)
    return bool(states) and all(state == "delivered" for state in states)


def _section(obj: Mapping[str, Any] | None, key: str) -> dict[str, Any] | None:
    if obj is None or obj.get(key) is None:
        return None
    return read_object(obj[key], key)


def _first_text(*sources: Mapping[str, Any] | None, keys: tuple[str, ...]) -> str | None:
    for source in sources:
        for key in keys:
            if source is not None and (text := read_text(source.get(key), key)):
                return text
    return None


def _person_name(*sources: Mapping[str, Any] | None) -> str | None:
    for source in sources:
        if source is None:
            continue
        parts = [read_text(source.get(key), key) for key in ("first_name", "last_name")]
        name = " ".join(part for part in parts if part) or read_text(source.get("name"), "name")
        if name:
            return name
    return None


def _region(*addresses: Mapping[str, Any] | None) -> str:
    """The address's country, so a local phone number gets the right country code."""
    for address in addresses:
        code = read_text(address.get("country_code"), "country_code") if address else None
        if code and len(code) == 2 and code.isascii() and code.isalpha():
            return code.upper()
    return "SA"


connector = ShopifyConnector()

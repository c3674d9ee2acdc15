"""WooCommerce connector: ``order.*`` webhooks (the body is the REST API v3 order).

Authentication: ``X-WC-Webhook-Signature`` is the base64 HMAC-SHA256 of the raw body keyed with the
webhook's secret. When a webhook is saved, WooCommerce first POSTs an unsigned activation ping, the form
body ``webhook_id=<n>``, and activates the webhook only if it gets a 200; it is let through and ignored.
``X-WC-Webhook-Delivery-ID`` identifies a delivery, ``X-WC-Webhook-Topic`` its topic. The version clock
is ``date_modified_gmt`` (UTC, written without an offset). See docs/connectors.md for the mapping tables.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
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

SOURCE = "woocommerce"
PING_TOPIC = "webhook.ping"
ORDER_TOPICS = frozenset({"order.created", "order.updated", "order.restored"})
# Fired when an order is moved to the trash, with the body {"id": n}; the hub deletes the order it names
# (order.restored brings it back with the full order).
DELETE_TOPIC = "order.deleted"

_FOUR_PLACES = Decimal("0.0001")

# WooCommerce's ping body, exactly as WC_Webhook::deliver_ping() builds it.
_PING = re.compile(rb"webhook_id=\d{1,20}")

# status -> (status, payment_status, fulfillment_status); None leaves that field as stored.
_STATUS: dict[str, tuple[OrderStatus, PaymentStatus | None, FulfillmentStatus]] = {
    "pending": ("pending", "pending", "unfulfilled"),  # awaiting payment
    "on-hold": ("pending", "pending", "unfulfilled"),  # awaiting payment confirmation (e.g. bank transfer)
    "processing": ("confirmed", "paid", "unfulfilled"),  # paid (cash on delivery: not yet), awaiting fulfilment
    "completed": ("delivered", "paid", "fulfilled"),  # fulfilled and complete: nothing further happens
    "cancelled": ("cancelled", None, "unfulfilled"),  # unpaid or not, Woo does not say
    "refunded": ("cancelled", "refunded", "unfulfilled"),  # "returned" if it had been completed: _statuses()
    "failed": ("pending", "failed", "unfulfilled"),  # the customer may still pay again
    "checkout-draft": ("pending", "pending", "unfulfilled"),  # a block-checkout still in progress
}


class WooCommerceConnector:
    """WooCommerce ``order.*`` webhooks."""

    source: str = SOURCE

    def verify(self, request: RawRequest, secret: str) -> None:
        """``X-WC-Webhook-Signature`` must match; the unsigned activation ping alone is let through."""
        if is_ping(request):
            return
        if not secret:
            raise SignatureError("the connection has no secret to verify with")
        given = request.headers.get("x-wc-webhook-signature", "").strip()
        if not given:
            raise SignatureError("missing X-WC-Webhook-Signature header")
        expected = base64.b64encode(hmac.new(secret.encode(), request.body, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, given.encode("utf-8", "surrogatepass")):
            raise SignatureError("X-WC-Webhook-Signature does not match the body")

    def delivery_id(self, request: RawRequest) -> str:
        """``X-WC-Webhook-Delivery-ID``, else the body's hash."""
        return request.headers.get("x-wc-webhook-delivery-id", "").strip() or body_hash(request.body)

    def parse(self, request: RawRequest) -> list[ParsedEvent]:
        """One event: the normalized order for order topics, an ignored event for the ping and other topics."""
        if is_ping(request):
            return [ParsedEvent(PING_TOPIC, None, "WooCommerce's activation ping")]
        topic = request.headers.get("x-wc-webhook-topic", "").strip()
        if not topic:
            raise PayloadError("missing X-WC-Webhook-Topic header")
        if topic == DELETE_TOPIC:
            return [ParsedEvent(topic, _deletion(request))]
        if topic not in ORDER_TOPICS:
            return [ParsedEvent(topic, None, f"{topic!r} is not an order topic")]
        return [ParsedEvent(topic, normalize_order(read_object(load_json(request.body), "body")))]


def is_ping(request: RawRequest) -> bool:
    """The unsigned form body ``webhook_id=<n>`` that WooCommerce sends once when a webhook is saved."""
    return "x-wc-webhook-signature" not in request.headers and _PING.fullmatch(request.body.strip()) is not None


def normalize_order(order: Mapping[str, Any]) -> NormalizedOrder:
    """Normalize a WooCommerce REST v3 order."""
    billing = _section(order, "billing")
    shipping = _section(order, "shipping")
    lines = [_line(item, f"line_items[{i}]") for i, item in enumerate(read_list(order.get("line_items"), "line_items"))]
    unified: dict[str, Any] = {
        "external_id": _order_id(order.get("id")),
        "source_updated_at": read_time(order.get("date_modified_gmt"), "date_modified_gmt"),
        "reference": read_text(order.get("number"), "number"),
        "customer_name": _person_name(billing) or _person_name(shipping),
        "customer_email": read_text(billing.get("email"), "billing.email") if billing else None,
        "customer_phone": _phone(billing, shipping),
        # Virtual orders carry a shipping object of empty strings: that is no address.
        "shipping_address": shipping if shipping and any(shipping.values()) else None,
        "products": lines,
        "subtotal": sum((line.total for line in lines), Decimal(0)),
        "delivery_fee": _delivery_fee(order),
        "notes": read_text(order.get("customer_note"), "customer_note"),
        **_statuses(order),
    }
    if order.get("date_created_gmt") is not None:
        unified["source_created_at"] = read_time(order["date_created_gmt"], "date_created_gmt")
    if order.get("currency") is not None:
        unified["currency"] = order["currency"]
    for name, key in {"discount": "discount_total", "tax": "total_tax", "total_amount": "total"}.items():
        if order.get(key) is not None:
            unified[name] = read_money(order[key], key)
    country = read_text(billing.get("country"), "billing.country") if billing else None
    region = country.upper() if country and len(country) == 2 and country.isascii() else "SA"
    return normalize_unified(unified, source=SOURCE, phone_region=region)


def _deletion(request: RawRequest) -> NormalizedOrder:
    """The trashed order's id; Woo sends no time with it, so the clock is when the request arrived."""
    body = read_object(load_json(request.body), "body")
    clock = request.received_at
    return normalize_unified({"external_id": _order_id(body.get("id")), "source_updated_at": clock}, source=SOURCE)


def _order_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value >= 2**63:
        raise PayloadError(f"id: expected the order's positive integer id, got {value!r:.40}")
    return str(value)


def _line(value: Any, where: str) -> OrderLine:
    """A line item; its total is ``subtotal`` (before coupons, excluding tax) as in the unified model."""
    item = read_object(value, where)
    name = read_text(item.get("name"), f"{where}.name")
    if name is None:
        raise PayloadError(f"{where}.name: missing")
    quantity = read_quantity(item.get("quantity"), f"{where}.quantity")
    subtotal = read_money(item.get("subtotal"), f"{where}.subtotal")
    unit = subtotal / quantity if quantity else subtotal
    if unit != unit.quantize(_FOUR_PLACES):  # Woo stores no unit price; 10.00 / 3 rounds to numeric's 4 places
        unit = unit.quantize(_FOUR_PLACES)
    product_id = read_text(item.get("product_id"), f"{where}.product_id")
    return OrderLine(
        product_id=None if product_id == "0" else product_id,  # 0: the product has since been deleted
        sku=read_text(item.get("sku"), f"{where}.sku"),
        name=name,
        quantity=quantity,
        price=unit,
        total=subtotal,
    )


def _delivery_fee(order: Mapping[str, Any]) -> Decimal:
    """Shipping plus fee lines: Woo has no COD fee field, cash-on-delivery plugins add a fee line."""
    shipping = order.get("shipping_total")
    fee = Decimal(0) if shipping is None else read_money(shipping, "shipping_total")
    for i, line in enumerate(read_list(order.get("fee_lines"), "fee_lines")):
        fee += read_money(read_object(line, f"fee_lines[{i}]").get("total"), f"fee_lines[{i}].total")
    return fee


def _statuses(order: Mapping[str, Any]) -> dict[str, str]:
    """The three statuses from Woo's one; an unknown (plugin) status leaves all three unset."""
    slug = read_text(order.get("status"), "status")
    if slug not in _STATUS:
        return {}
    status, payment, fulfillment = _STATUS[slug]
    refunds = read_list(order.get("refunds"), "refunds")
    if slug == "refunded" and order.get("date_completed_gmt") is not None:
        status, fulfillment = "returned", "returned"  # it had been completed (delivered) before the refund
    if slug == "processing" and order.get("payment_method") == "cod":
        payment = "pending"  # WooCommerce's cash-on-delivery gateway files unpaid orders as processing
    if payment == "paid" and refunds:
        payment = "partially_refunded"  # a full refund would have moved the order to "refunded"
    result: dict[str, str] = {"status": status, "fulfillment_status": fulfillment}
    return result if payment is None else {**result, "payment_status": payment}


def _section(order: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    return None if order.get(key) is None else read_object(order[key], key)


def _person_name(address: Mapping[str, Any] | None) -> str | None:
    if address is None:
        return None
    parts = [read_text(address.get(key), key) for key in ("first_name", "last_name")]
    return " ".join(part for part in parts if part) or None


def _phone(*addresses: Mapping[str, Any] | None) -> str | None:
    # shipping.phone exists since WooCommerce 5.6; the billing phone is the one checkout asks for.
    for address in addresses:
        phone = read_text(address.get("phone"), "phone") if address else None
        if phone:
            return phone
    return None


connector = WooCommerceConnector()

"""Zid connector: authenticate Zid webhooks by their URL token and normalize Zid orders.

Zid documents no webhook signature. Each connection therefore has a random token that the
merchant puts in the ``target_url`` registered with Zid (``…/hooks/zid/{connection_id}?token=…``);
Zid calls that URL back and :meth:`ZidConnector.verify` compares the token in constant time.

Zid's order events (``order.create``, ``order.status.update``, ``order.payment_status.update``)
all post the same body: the Order object itself, with no envelope and no event name. The event is
read from an optional ``&event=`` query parameter of the same URL; without it an order-shaped body
is taken as a full order snapshot (topic ``order``), and any other body is acknowledged and ignored.

Values are read with :mod:`connectors._readers` (Salla's and Zid's rules where the families differ).
Mapping tables and every choice the docs leave open: ``docs/connectors.md``.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from connectors._readers import (
    MALFORMED,
    as_bytes,
    clean_text,
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

SOURCE: Final = "zid"
SNAPSHOT_TOPIC: Final = "order"  # an order body whose event name the URL did not carry

# order_status.code, lower-cased (the docs spell some codes two ways: inDelivery/indelivery,
# processingReverse/reverse_in_progress, canceled/cancelled) -> hub status, fulfilment.
# None leaves the stored value alone: refunds and chargebacks are payment facts (payment_status
# carries them) and a return under way has no hub state until it completes.
STATUS_MAP: Final[dict[str, tuple[OrderStatus | None, FulfillmentStatus | None]]] = {
    "new": ("pending", "unfulfilled"),
    "processed": ("confirmed", "unfulfilled"),
    "preparing": ("preparing", "unfulfilled"),
    "ready": ("ready", "unfulfilled"),
    "indelivery": ("shipped", "fulfilled"),
    "delivered": ("delivered", "fulfilled"),
    "reversed": ("returned", "returned"),
    "canceledreversal": ("delivered", "fulfilled"),  # the return was called off
    **dict.fromkeys(("canceled", "cancelled", "failed", "expired", "voided", "denied"), ("cancelled", None)),
    **dict.fromkeys(("refunded", "chargeback", "reverse_in_progress", "processingreverse"), (None, None)),
}
PAYMENT_MAP: Final[dict[str, PaymentStatus]] = {
    "paid": "paid",
    "pending": "pending",
    "unpaid": "pending",
    "refunded": "refunded",
    "partially_refunded": "partially_refunded",
    "voided": "failed",  # the authorisation was released: nothing was collected
    "failed": "failed",
}
# The invoice lines Zid documents; a cash-on-delivery fee line is not in its examples (see docs).
SUBTOTAL_CODES: Final = ("sub_totals_before_vat", "sub_totals")
COD_CODES: Final = ("cod", "cod_fee", "cash_on_delivery", "cash_on_delivery_fee")


class ZidConnector:
    """Zid store webhooks (``/hooks/zid/{connection_id}?token=…``)."""

    source = SOURCE

    def verify(self, request: RawRequest, secret: str) -> None:
        """Compare ``?token=`` of the inbound URL with the connection's token in constant time."""
        if not secret:
            raise SignatureError("zid: the connection has no token")
        token = request.query.get("token")
        if not token:
            raise SignatureError("zid: missing ?token= in the inbound URL")
        if not hmac.compare_digest(as_bytes(token), as_bytes(secret)):
            raise SignatureError("zid: token does not match")

    def delivery_id(self, request: RawRequest) -> str:
        """Zid sends no delivery id, so a retry is recognised by its identical body."""
        return body_hash(request.body)

    def parse(self, request: RawRequest) -> list[ParsedEvent]:
        """The order in a Zid request; PayloadError if it is not readable as one."""
        body = load_json(request.body)
        topic = _topic(request.query.get("event"))
        if topic is not None and not topic.startswith("order."):
            return [ParsedEvent(topic, None, f"not an order event: {topic}")]
        order = read_object(body, "body")
        if topic is None and "order_status" not in order:
            return [ParsedEvent("unknown", None, "not an order (no order_status); name the event with ?event=")]
        try:
            return [ParsedEvent(topic or SNAPSHOT_TOPIC, normalize(order))]
        except PayloadError:
            raise
        except MALFORMED as exc:
            raise PayloadError(f"unreadable Zid order ({type(exc).__name__}: {exc})"[:500]) from exc


connector = ZidConnector()


def _topic(event: str | None) -> str | None:
    if event is None or not event.strip():
        return None
    return clean_text(event.strip())[:100]


def normalize_order(order: dict[str, Any]) -> NormalizedOrder:
    """A Zid Order object from the manager API (the same object the webhooks post); only ConnectorErrors leave."""
    try:
        return normalize(order)
    except PayloadError:
        raise
    except MALFORMED as exc:
        raise PayloadError(f"unreadable Zid order ({type(exc).__name__}: {exc})"[:500]) from exc


def normalize(order: dict[str, Any]) -> NormalizedOrder:
    """A Zid Order object in the unified model's names; only the fields Zid sent are set."""
    status, fulfillment = STATUS_MAP.get(_status_code(order.get("order_status")) or "", (None, None))
    payment = read_string(order.get("payment_status"), "payment_status")
    customer = read_opt_object(order.get("customer"), "customer") or {}
    fields: dict[str, Any] = {
        "reference": read_opt_id(order.get("code"), "code"),
        "customer_name": read_string(customer.get("name"), "customer.name"),
        "customer_email": read_string(customer.get("email"), "customer.email"),
        "customer_phone": to_phone(read_opt_id(customer.get("mobile"), "customer.mobile")),
        "shipping_address": read_shipping_address(order.get("shipping"), "shipping"),
        "products": _lines(order.get("products")),
        "currency": read_opt_currency(order.get("currency_code"), "currency_code")
        or _order_currency(order.get("currency")),
        "status": status,
        "payment_status": PAYMENT_MAP.get(payment.lower()) if payment else None,
        "fulfillment_status": fulfillment,
        "notes": read_string(order.get("customer_note"), "customer_note"),
        "source_created_at": _opt_time(order.get("created_at"), "created_at"),
        **_totals(order),
    }
    set_fields = {name: value for name, value in fields.items() if value is not None}
    external_id = read_id(order.get("id"), "id")
    # The version clock is updated_at; an order never updated has only created_at.
    clock = _opt_time(order.get("updated_at"), "updated_at") or fields["source_created_at"]
    if clock is None:
        raise PayloadError("updated_at: missing (and no created_at to fall back on)")
    return NormalizedOrder(source=SOURCE, external_id=external_id, source_updated_at=clock, **set_fields)


def _status_code(status: Any) -> str | None:
    if isinstance(status, str):
        code = read_string(status, "order_status")
    else:
        node = read_opt_object(status, "order_status")
        code = read_string(node.get("code"), "order_status.code") if node else None
    return code.lower() if code else None


def _totals(order: dict[str, Any]) -> dict[str, Decimal | None]:
    # payment.invoice is Zid's receipt: [{"code": "sub_totals_before_vat", "value": "217.39…"}, …].
    order_total = read_opt_amount(order.get("order_total"), "order_total")
    lines = _invoice(order.get("payment"))
    if lines is None:
        return {"total_amount": order_total}
    first: dict[str, Decimal] = {}
    for code, value in lines:
        first.setdefault(code, value)
    fees = [first[code] for code in ("shipping", *COD_CODES) if code in first]
    return {
        "subtotal": next((first[code] for code in SUBTOTAL_CODES if code in first), None),
        # Every negative line (products_discount, coupon, shipping_discount, …) lowers what is paid.
        "discount": abs(exact_sum(*(value for _, value in lines if value < 0))),
        "tax": first.get("vat"),
        "delivery_fee": exact_sum(*fees) if fees else None,
        "total_amount": order_total if order_total is not None else first.get("total"),
    }


def _invoice(payment: Any) -> list[tuple[str, Decimal]] | None:
    node = read_opt_object(payment, "payment")
    entries = read_opt_list(node.get("invoice") if node else None, "payment.invoice")
    if entries is None:
        return None
    lines = []
    for i, entry in enumerate(entries):
        line = read_object(entry, f"payment.invoice[{i}]")
        code = read_string(line.get("code"), f"payment.invoice[{i}].code")
        if code is None:
            raise PayloadError(f"payment.invoice[{i}].code: missing")
        lines.append((code.lower(), read_amount(line.get("value"), f"payment.invoice[{i}].value")))
    return lines


def _lines(products: Any) -> list[OrderLine] | None:
    items = read_opt_list(products, "products")
    return (
        None
        if items is None
        else [_line(read_object(item, f"products[{i}]"), f"products[{i}]") for i, item in enumerate(items)]
    )


def _line(item: dict[str, Any], path: str) -> OrderLine:
    name = read_string(item.get("name"), f"{path}.name")
    if name is None:
        raise PayloadError(f"{path}.name: missing")
    return OrderLine(
        product_id=read_opt_id(item.get("id"), f"{path}.id"),
        sku=read_string(item.get("sku"), f"{path}.sku"),
        name=name,
        quantity=read_decimal_quantity(item.get("quantity"), f"{path}.quantity"),
        price=read_amount(item.get("price"), f"{path}.price"),  # VAT-inclusive, as Zid shows it
        total=read_amount(item.get("total"), f"{path}.total"),
    )


def _order_currency(currency_node: Any) -> str | None:
    node = read_opt_object(currency_node, "currency")
    order_currency = read_opt_object(node.get("order_currency"), "currency.order_currency") if node else None
    return read_opt_currency(order_currency.get("code"), "currency.order_currency.code") if order_currency else None


def _opt_time(value: Any, path: str) -> datetime | None:
    # Zid's "2023-09-14 08:33:06" is UTC: issue_date shows the same moment as "11:33" Riyadh time.
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value) > 64:
        raise PayloadError(f"{path}: not a timestamp")
    return read_time(value, path)

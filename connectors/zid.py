"""Zid connector: authenticate Zid webhooks by their URL token and normalize Zid orders.

Zid documents no webhook signature. Each connection therefore has a random token that the
merchant puts in the ``target_url`` registered with Zid (``…/hooks/zid/{connection_id}?token=…``);
Zid calls that URL back and :meth:`ZidConnector.verify` compares the token in constant time.

Zid's order events (``order.create``, ``order.status.update``, ``order.payment_status.update``)
all post the same body: the Order object itself, with no envelope and no event name. The event is
read from an optional ``&event=`` query parameter of the same URL; without it an order-shaped body
is taken as a full order snapshot (topic ``order``), and any other body is acknowledged and ignored.

The strict JSON readers at the end of this module are shared with :mod:`connectors.salla`.
Mapping tables and every choice the docs leave open: ``docs/connectors.md``.
"""

from __future__ import annotations

import hmac
import json
import math
import re
from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any, Final

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
    parse_time,
    to_decimal,
    to_e164,
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
        order = obj(body, "body")
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
    return sanitize(event.strip())[:100]


def normalize(order: dict[str, Any]) -> NormalizedOrder:
    """A Zid Order object in the unified model's names; only the fields Zid sent are set."""
    status, fulfillment = STATUS_MAP.get(_status_code(order.get("order_status")) or "", (None, None))
    payment = text(order.get("payment_status"), "payment_status")
    customer = opt_obj(order.get("customer"), "customer") or {}
    fields: dict[str, Any] = {
        "reference": opt_ident(order.get("code"), "code"),
        "customer_name": text(customer.get("name"), "customer.name"),
        "customer_email": text(customer.get("email"), "customer.email"),
        "customer_phone": phone(opt_ident(customer.get("mobile"), "customer.mobile")),
        "shipping_address": address(order.get("shipping"), "shipping"),
        "products": _lines(order.get("products")),
        "currency": currency(order.get("currency_code"), "currency_code") or _order_currency(order.get("currency")),
        "status": status,
        "payment_status": PAYMENT_MAP.get(payment.lower()) if payment else None,
        "fulfillment_status": fulfillment,
        "notes": text(order.get("customer_note"), "customer_note"),
        "source_created_at": _opt_time(order.get("created_at"), "created_at"),
        **_totals(order),
    }
    set_fields = {name: value for name, value in fields.items() if value is not None}
    external_id = ident(order.get("id"), "id")
    # The version clock is updated_at; an order never updated has only created_at.
    clock = _opt_time(order.get("updated_at"), "updated_at") or fields["source_created_at"]
    if clock is None:
        raise PayloadError("updated_at: missing (and no created_at to fall back on)")
    return NormalizedOrder(source=SOURCE, external_id=external_id, source_updated_at=clock, **set_fields)


def _status_code(status: Any) -> str | None:
    if isinstance(status, str):
        code = text(status, "order_status")
    else:
        node = opt_obj(status, "order_status")
        code = text(node.get("code"), "order_status.code") if node else None
    return code.lower() if code else None


def _totals(order: dict[str, Any]) -> dict[str, Decimal | None]:
    # payment.invoice is Zid's receipt: [{"code": "sub_totals_before_vat", "value": "217.39…"}, …].
    order_total = opt_amount(order.get("order_total"), "order_total")
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
        "discount": abs(add(*(value for _, value in lines if value < 0))),
        "tax": first.get("vat"),
        "delivery_fee": add(*fees) if fees else None,
        "total_amount": order_total if order_total is not None else first.get("total"),
    }


def _invoice(payment: Any) -> list[tuple[str, Decimal]] | None:
    node = opt_obj(payment, "payment")
    entries = array(node.get("invoice") if node else None, "payment.invoice")
    if entries is None:
        return None
    lines = []
    for i, entry in enumerate(entries):
        line = obj(entry, f"payment.invoice[{i}]")
        code = text(line.get("code"), f"payment.invoice[{i}].code")
        if code is None:
            raise PayloadError(f"payment.invoice[{i}].code: missing")
        lines.append((code.lower(), amount(line.get("value"), f"payment.invoice[{i}].value")))
    return lines


def _lines(products: Any) -> list[OrderLine] | None:
    items = array(products, "products")
    return (
        None
        if items is None
        else [_line(obj(item, f"products[{i}]"), f"products[{i}]") for i, item in enumerate(items)]
    )


def _line(item: dict[str, Any], path: str) -> OrderLine:
    name = text(item.get("name"), f"{path}.name")
    if name is None:
        raise PayloadError(f"{path}.name: missing")
    return OrderLine(
        product_id=opt_ident(item.get("id"), f"{path}.id"),
        sku=text(item.get("sku"), f"{path}.sku"),
        name=name,
        quantity=quantity(item.get("quantity"), f"{path}.quantity"),
        price=amount(item.get("price"), f"{path}.price"),  # VAT-inclusive, as Zid shows it
        total=amount(item.get("total"), f"{path}.total"),
    )


def _order_currency(currency_node: Any) -> str | None:
    node = opt_obj(currency_node, "currency")
    order_currency = opt_obj(node.get("order_currency"), "currency.order_currency") if node else None
    return currency(order_currency.get("code"), "currency.order_currency.code") if order_currency else None


def _opt_time(value: Any, path: str) -> datetime | None:
    # Zid's "2023-09-14 08:33:06" is UTC: issue_date shows the same moment as "11:33" Riyadh time.
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value) > 64:
        raise PayloadError(f"{path}: not a timestamp")
    try:
        return parse_time(value, field_name=path).astimezone(UTC)
    except OverflowError as exc:
        raise PayloadError(f"{path}: timestamp out of range") from exc


# ---- strict JSON readers shared by the connectors (strict types, readable reasons) -------------

MAX_AMOUNT: Final = Decimal(10) ** 15  # far above any order; keeps garbage out of NUMERIC columns
MAX_DECIMALS: Final = 20  # Zid states amounts with 14 decimals
MAX_TEXT: Final = 4000
MAX_DEPTH: Final = 12  # nesting allowed inside a stored address object
_WIDE: Final = Context(prec=60)  # amounts are < 10**15 with <= 20 decimals: sums stay exact
_CURRENCY = re.compile(r"[A-Z]{3}")
# Whatever slips past the explicit checks is still the sender's fault, never ours: parse() re-raises
# these as PayloadError, so only ConnectorErrors ever leave a connector.
MALFORMED: Final = (KeyError, IndexError, TypeError, ValueError, AttributeError, ArithmeticError, RecursionError)


def load_json(body: bytes) -> Any:
    """Decode a UTF-8 JSON body; NaN/Infinity literals, bad bytes and absurd nesting are PayloadErrors."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except RecursionError as exc:
        raise PayloadError("body is nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, and integers longer than Python's 4300-digit limit
        raise PayloadError(f"body is not valid JSON: {exc}"[:300]) from exc


def _reject_constant(name: str) -> Any:
    raise PayloadError(f"body holds {name}, which is not a JSON number")


def kind(value: Any) -> str:
    """A short description of a value for error messages (never the whole value)."""
    return "null" if value is None else f"{type(value).__name__} {str(value)[:40]!r}"


def obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{path}: expected an object, got {kind(value)}")
    return value


def array(value: Any, path: str) -> list[Any] | None:
    if value is not None and not isinstance(value, list):
        raise PayloadError(f"{path}: expected a list, got {kind(value)}")
    return value


def opt_obj(value: Any, path: str) -> dict[str, Any] | None:
    if value is None or value == []:  # PHP (Salla, Zid) encodes an empty object as []
        return None
    return obj(value, path)


def text(value: Any, path: str) -> str | None:
    """A string field: None when absent or blank; NUL removed and lone surrogates replaced."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{path}: expected a string, got {kind(value)}")
    cleaned = sanitize(value).strip()
    if len(cleaned) > MAX_TEXT:
        raise PayloadError(f"{path}: longer than {MAX_TEXT} characters")
    return cleaned or None


def sanitize(value: str) -> str:
    # Postgres text rejects NUL, and UTF-8 cannot encode a lone surrogate ("\ud800" is valid JSON).
    return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value.replace("\x00", ""))


def ident(value: Any, path: str) -> str:
    result = opt_ident(value, path)
    if result is None:
        raise PayloadError(f"{path}: missing")
    return result


def opt_ident(value: Any, path: str) -> str | None:
    """An id or code sent as an integer or a string, as a string."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PayloadError(f"{path}: expected an id, got {kind(value)}")
    if isinstance(value, int):
        if not 0 <= value < 10**30:
            raise PayloadError(f"{path}: out of range")
        return str(value)
    result = text(value, path)
    if result is not None and len(result) > 255:
        raise PayloadError(f"{path}: longer than 255 characters")
    return result


def phone(number: str | None, country_code: str | None = None) -> str | None:
    """E.164 from a number that may lack its "+" (966501234567) or come split from its country code."""
    if number is None:
        return None
    digits = country_code.strip().lstrip("+") if country_code else ""
    if number.isdigit() and not number.startswith("0") and len(number) >= 11:
        number = "+" + number  # already international, only the "+" is missing
    elif digits.isdigit() and number.isdigit():
        number = "+" + digits + number.lstrip("0")
    return to_e164(number)


def add(*values: Decimal | None) -> Decimal:
    """Exact sum (a wide context, so many-decimal amounts never round); None counts as zero."""
    total = Decimal(0)
    for value in values:
        if value is not None:
            total = _WIDE.add(total, value)
    return total


def amount(value: Any, path: str) -> Decimal:
    """An exact amount from a number, a decimal string or a money object {"amount": …}."""
    for _ in range(2):  # Salla nests money: tax.amount = {"amount": 0, "currency": "SAR"}
        if isinstance(value, dict):
            value = value.get("amount")
    if isinstance(value, (dict, list)):
        raise PayloadError(f"{path}: expected a number, got {kind(value)}")
    result = to_decimal(value, field_name=path)
    exponent = result.as_tuple().exponent
    if abs(result) >= MAX_AMOUNT or (isinstance(exponent, int) and exponent < -MAX_DECIMALS):
        raise PayloadError(f"{path}: amount out of range: {str(value)[:40]!r}")
    return result


def opt_amount(value: Any, path: str) -> Decimal | None:
    return None if value is None else amount(value, path)


def quantity(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PayloadError(f"{path}: expected a whole number, got {kind(value)}")
    try:
        number = Decimal(str(value).strip())
    except ArithmeticError as exc:
        raise PayloadError(f"{path}: not a number: {kind(value)}") from exc
    if not number.is_finite() or number != number.to_integral_value() or not 0 <= number <= 10**7:
        raise PayloadError(f"{path}: not a plausible quantity: {kind(value)}")
    return int(number)


def currency(value: Any, path: str) -> str | None:
    code = text(value, path)
    if code is None:
        return None
    if not _CURRENCY.fullmatch(code.upper()):
        raise PayloadError(f"{path}: not an ISO 4217 code: {code[:20]!r}")
    return code.upper()


def address(shipping: Any, path: str) -> dict[str, Any] | str | None:
    """``shipping.address`` as sent (object or string); None for pickup and digital orders."""
    node = opt_obj(shipping, path)
    found = node.get("address") if node else None
    if isinstance(found, str):
        return text(found, f"{path}.address")
    found = opt_obj(found, f"{path}.address")
    return clean_json(found, f"{path}.address") if found else None


def as_bytes(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")  # compare_digest needs bytes for non-ASCII input


def clean_json(value: Any, path: str, depth: int = 0) -> Any:
    """A copy of a JSON value fit for storage: strings sanitized, bounded depth, finite numbers."""
    if depth > MAX_DEPTH:
        raise PayloadError(f"{path}: nested too deeply")
    if isinstance(value, str):
        return sanitize(value)
    if isinstance(value, dict):
        return {sanitize(str(key)): clean_json(item, path, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [clean_json(item, path, depth + 1) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise PayloadError(f"{path}: holds a non-finite number")
    return value

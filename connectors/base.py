"""The connector interface: verify a platform's raw request, parse it into events, normalize orders.

A connector does no I/O. The receiver calls :meth:`Connector.verify` on the raw request before
anything is stored, and :meth:`Connector.delivery_id` to recognise a platform's retry of the same
delivery. The worker later calls :meth:`Connector.parse` on the stored raw request, which returns
the events it holds, each with the order normalized into :class:`NormalizedOrder`.

Error tree::

    ConnectorError
    ├── SignatureError      the request is not authentic: 401, nothing stored
    └── PayloadError        authentic but unreadable: stored as a failed event with the reason
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Literal, Protocol

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field

OrderStatus = Literal["pending", "confirmed", "preparing", "ready", "shipped", "delivered", "cancelled", "returned"]
PaymentStatus = Literal["pending", "paid", "refunded", "partially_refunded", "failed"]
FulfillmentStatus = Literal["unfulfilled", "partial", "fulfilled", "returned"]


class ConnectorError(Exception):
    """Base of every error a connector raises."""


class SignatureError(ConnectorError):
    """The request's signature (or token) is missing or wrong."""


class PayloadError(ConnectorError):
    """The request is authentic but its body cannot be read as the platform's order payload."""


@dataclass(frozen=True, slots=True)
class RawRequest:
    """An inbound request as the receiver saw it.

    ``headers`` keys are lower-case. ``query`` holds the URL's query parameters (Zid's token
    travels there). ``received_at`` is the receiver's clock and ``tolerance_seconds`` how far a
    signed timestamp may be from it (Standard Webhooks; ``HUB_INBOUND_TOLERANCE_SECONDS``).
    """

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    tolerance_seconds: float = 300.0


class OrderLine(BaseModel):
    """One purchasable line of an order."""

    model_config = ConfigDict(frozen=True)

    product_id: str | None = None
    sku: str | None = None
    name: str
    quantity: int
    price: Decimal
    total: Decimal


class NormalizedOrder(BaseModel):
    """An order as a platform states it, in the unified model's names.

    Only the fields a connector *sets* are applied to a stored order (``model_fields_set``), so a
    status-only event (e.g. Salla ``order.status.updated``) carries just ``status`` and leaves the
    rest alone. ``source``, ``external_id`` and ``source_updated_at`` are always set.
    """

    source: str
    external_id: str
    source_updated_at: datetime
    reference: str | None = None
    customer_name: str | None = None
    customer_email: str | None = None
    customer_phone: str | None = None
    shipping_address: str | dict[str, Any] | None = None
    products: list[OrderLine] = Field(default_factory=list)
    subtotal: Decimal | None = None
    discount: Decimal | None = None
    tax: Decimal | None = None
    delivery_fee: Decimal | None = None
    total_amount: Decimal | None = None
    currency: str | None = None
    status: OrderStatus | None = None
    payment_status: PaymentStatus | None = None
    fulfillment_status: FulfillmentStatus | None = None
    notes: str | None = None
    cancellation_reason: str | None = None
    source_created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """One event found in a request.

    ``order`` is None for topics the connector acknowledges but ignores (``ignored_reason`` says why).
    """

    topic: str
    order: NormalizedOrder | None
    ignored_reason: str | None = None


class Connector(Protocol):
    """What every source module exposes (see ``connectors/__init__.py`` REGISTRY)."""

    source: str

    def verify(self, request: RawRequest, secret: str) -> None:
        """Raise :class:`SignatureError` unless the request is authentic (constant-time compare)."""

    def delivery_id(self, request: RawRequest) -> str:
        """The platform's id of this delivery, stable across its retries; else a hash of the body."""

    def parse(self, request: RawRequest) -> list[ParsedEvent]:
        """The events in the request, orders normalized; raise :class:`PayloadError` if unreadable."""


# ---- small pure helpers shared by connectors -------------------------------------------------

#: The one grammar of an amount written as text, for the API (``hub.money``) and every connector:
#: ASCII digits only ("٣" is refused everywhere), optional sign, fraction and exponent ("1e3" is
#: accepted everywhere). Python's Decimal() alone would also take "1_000", "NaN" and other digits.
DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
MAX_DECIMAL_TEXT = 64  # far more than any real amount; bounds work on hostile input


def body_hash(body: bytes) -> str:
    """Fallback delivery id: the SHA-256 of the raw body."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def to_decimal(value: Any, *, field_name: str) -> Decimal:
    """Parse a JSON number or decimal string (``"12.50"``, ``12.5``) exactly; PayloadError otherwise."""
    if isinstance(value, bool) or value is None:
        raise PayloadError(f"{field_name}: expected a number, got {value!r}")
    if isinstance(value, dict) and "amount" in value:  # Salla money objects: {"amount": 10, "currency": "SAR"}
        value = value["amount"]
    if isinstance(value, str) and (len(value) > MAX_DECIMAL_TEXT or not DECIMAL_TEXT.fullmatch(value.strip())):
        raise PayloadError(f"{field_name}: not a number: {value[:40]!r}")
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise PayloadError(f"{field_name}: not a number: {value!r}") from exc
    if not result.is_finite():
        raise PayloadError(f"{field_name}: not a finite number: {value!r}")
    return result


def to_e164(raw: Any, *, default_region: str = "SA") -> str | None:
    """Best-effort E.164 (``+9665…``); returns None for empty input, the raw string if unparseable."""
    if raw is None:
        return None
    text = str(raw).strip()
    if not text:
        return None
    # Parsing a number costs more than the rest of an order's fields; a customer's number recurs (every
    # event of an order, every order of a returning customer), so short ones are cached.
    return _e164_cached(text, default_region) if len(text) <= 64 else _e164(text, default_region)


def _e164(text: str, default_region: str) -> str:
    """:func:`to_e164` of stripped, non-empty text."""
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException:
        return text
    if not phonenumbers.is_possible_number(parsed):
        return text
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


_e164_cached = lru_cache(maxsize=4096)(_e164)


def parse_time(value: Any, *, field_name: str) -> datetime:
    """Parse an ISO-8601 or ``YYYY-MM-DD HH:MM:SS`` timestamp; naive times are taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"{field_name}: expected a timestamp, got {value!r}")
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PayloadError(f"{field_name}: not a timestamp: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

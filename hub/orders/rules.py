"""The safety rules every stored order meets, whoever sends it (API schemas and ingest alike).

The API enforces them through ``hub.schemas`` (422); ingest through :func:`refusal`, which fails
the inbound event with the reason before anything is stored (never a partial order). Rules about
the source's own data (its totals, its statuses) are not here: a source is stated as it is, and
oddities are flagged on the order (:func:`anomalies`), not refused.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from connectors.base import NormalizedOrder
from hub.money import CURRENCIES, MAX_AMOUNT
from hub.orders.rows import stamp
from hub.schemas.orders import MAX_LINES

#: Longest text per field, as the API's request models allow it.
MAX_LENGTHS: dict[str, int] = {
    "external_id": 255,
    "reference": 200,
    "customer_name": 200,
    "customer_email": 320,
    "customer_phone": 40,
    "notes": 5000,
    "cancellation_reason": 5000,
}
MAX_LINE_LENGTHS: dict[str, int] = {"product_id": 200, "sku": 100, "name": 200}
MAX_ADDRESS_BYTES = 5000
_MONEY = ("subtotal", "discount", "tax", "delivery_fee", "total_amount")


def refusal(order: NormalizedOrder) -> str | None:
    """Why ``order`` cannot be stored (``"products: 501 lines, at most 500"``), or None when it can."""
    if len(order.products) > MAX_LINES:
        return f"products: {len(order.products)} lines, at most {MAX_LINES}"
    for name, limit in MAX_LENGTHS.items():
        value = getattr(order, name)
        if isinstance(value, str) and len(value) > limit:
            return f"{name}: longer than {limit} characters"
    if order.shipping_address is not None and len(orjson.dumps(order.shipping_address)) > MAX_ADDRESS_BYTES:
        return f"shipping_address: larger than {MAX_ADDRESS_BYTES} bytes"
    if order.currency is not None and order.currency not in CURRENCIES:
        return f"currency: {order.currency[:8]!r} is not an ISO 4217 currency code"
    for i, line in enumerate(order.products):
        for name, limit in MAX_LINE_LENGTHS.items():
            value = getattr(line, name)
            if isinstance(value, str) and len(value) > limit:
                return f"products[{i}].{name}: longer than {limit} characters"
        if abs(line.price) > MAX_AMOUNT or abs(line.price * line.quantity) > MAX_AMOUNT:
            return f"products[{i}]: amount beyond {MAX_AMOUNT:f}"
    for name in _MONEY:
        value = getattr(order, name)
        if value is not None and abs(value) > MAX_AMOUNT:
            return f"{name}: amount beyond {MAX_AMOUNT:f}"
    return None


def anomaly(code: str, detail: str, at: datetime) -> dict[str, Any]:
    """One flag on an order: what the hub noticed (``code``), in words, and when."""
    return {"code": code, "detail": detail, "at": stamp(at)}


def money_anomalies(state: dict[str, Any], at: datetime) -> list[dict[str, Any]]:
    """Flags for money a platform stated that the API would refuse (negative totals), kept as stated."""
    found = []
    for name in _MONEY:
        value = state.get(name)
        if value is not None and Decimal(str(value)) < 0:
            found.append(anomaly("negative_amount", f"{name} {value} as the source stated it", at))
    return found

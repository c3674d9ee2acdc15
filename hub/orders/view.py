"""The public JSON view of an order, shared by API responses, webhook payloads and exports.

Money is exact in the database (NUMERIC) and in arithmetic (Decimal); it becomes a JSON number
with the currency's decimals only here, at the output edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from hub.money import to_json_number

MONEY_FIELDS = ("subtotal", "discount", "tax", "delivery_fee", "total_amount")
PUBLIC_FIELDS = (
    "id",
    "organization_id",
    "source",
    "external_id",
    "reference",
    "created_by",
    "contact_id",
    "customer_name",
    "customer_email",
    "customer_phone",
    "shipping_address",
    "products",
    *MONEY_FIELDS,
    "currency",
    "status",
    "payment_status",
    "fulfillment_status",
    "notes",
    "cancellation_reason",
    "status_history",
    "source_updated_at",
    "created",
    "updated",
    "version",
    "anomalies",
)
#: Columns added after the first release: a row read without them shows their defaults.
_DEFAULTS: dict[str, Any] = {"version": 1, "anomalies": []}


def _money(value: Any, currency: str) -> float | int:
    return to_json_number(value if isinstance(value, Decimal) else Decimal(str(value)), currency)


def _line(line: Mapping[str, Any], currency: str) -> dict[str, Any]:
    return {
        "product_id": line.get("product_id"),
        "sku": line.get("sku"),
        "name": line.get("name"),
        "quantity": line.get("quantity"),
        "price": _money(line.get("price", 0), currency),
        "total": _money(line.get("total", 0), currency),
    }


def _time(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, str) and value.endswith("+00:00"):  # history stored before every writer used "Z"
        return value[: -len("+00:00")] + "Z"
    return value


def order_public(row: Any, *, is_duplicate: bool = False) -> dict[str, Any]:
    """The order as the API and webhooks show it, from a row mapping or an ``Order`` object."""
    if isinstance(row, Mapping | asyncpg.Record):

        def get(name: str) -> Any:
            if name in _DEFAULTS and name not in row.keys():  # noqa: SIM118 - a Record iterates values
                return _DEFAULTS[name]
            return row[name]

    else:

        def get(name: str) -> Any:
            return getattr(row, name, _DEFAULTS.get(name))

    currency = str(get("currency"))
    out: dict[str, Any] = {}
    for name in PUBLIC_FIELDS:
        value = get(name)
        if name in MONEY_FIELDS:
            out[name] = _money(value, currency)
        elif name == "products":
            out[name] = [_line(line, currency) for line in value or []]
        elif name == "status_history":
            out[name] = [{**entry, "at": _time(entry.get("at"))} for entry in value or []]
        else:
            out[name] = _time(value)
    out["is_duplicate"] = is_duplicate
    return out

"""The public JSON view of an order, shared by API responses, webhook payloads and exports.

Money is exact in the database (NUMERIC) and in arithmetic (Decimal); it becomes a JSON number
with the currency's decimals only here, at the output edge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


def _products(value: Any, currency: str) -> list[dict[str, Any]]:
    return [_line(line, currency) for line in value or []]


def _history(value: Any, _currency: str) -> list[dict[str, Any]]:
    return [{**entry, "at": _time(entry.get("at"))} for entry in value or []]


#: How each field that is not shown as stored is shown (every other field is its stored value).
_SHOWN: dict[str, Callable[[Any, str], Any]] = {
    **dict.fromkeys(MONEY_FIELDS, _money),
    **dict.fromkeys(("source_updated_at", "created", "updated"), lambda value, _currency: _time(value)),
    "products": _products,
    "status_history": _history,
}


def order_public(row: Any, *, is_duplicate: bool = False) -> dict[str, Any]:
    """The order as the API and webhooks show it, from a row mapping or an ``Order`` object."""
    if isinstance(row, Mapping | asyncpg.Record):
        present = set(row.keys())
        values = [_DEFAULTS[name] if name in _DEFAULTS and name not in present else row[name] for name in PUBLIC_FIELDS]
    else:
        values = [getattr(row, name, _DEFAULTS.get(name)) for name in PUBLIC_FIELDS]
    currency = str(values[_CURRENCY])
    out: dict[str, Any] = {}
    for name, value in zip(PUBLIC_FIELDS, values):  # noqa: B905 - built from PUBLIC_FIELDS just above
        shown = _SHOWN.get(name)
        out[name] = value if shown is None else shown(value, currency)
    out["is_duplicate"] = is_duplicate
    return out


_CURRENCY = PUBLIC_FIELDS.index("currency")

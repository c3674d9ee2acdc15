"""The public view of an order (``hub.orders.view.order_public``): what the API, webhooks and exports show."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from hub.orders.view import PUBLIC_FIELDS, order_public


def _row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(PUBLIC_FIELDS)
    row.update(
        id="ord_1",
        currency="KWD",
        subtotal=Decimal("10.1235"),
        discount=Decimal("0"),
        tax=Decimal("1"),
        delivery_fee=Decimal("0.5"),
        total_amount=Decimal("11.6235"),
        products=[{"product_id": "p", "sku": "s", "name": "n", "quantity": 2, "price": "5.06175", "total": "10.1235"}],
        status_history=[{"status": "pending", "at": "2026-01-02T03:04:05+00:00"}],
        created=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        updated=datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC),
        source_updated_at="2026-01-02T03:04:05+00:00",
        notes="call after 18:00 +00:00",
        version=3,
        anomalies=[],
    )
    row.update(changes)
    return row


def test_money_is_rounded_to_the_currency_and_times_end_in_z() -> None:
    shown = order_public(_row())
    assert shown["subtotal"] == 10.124
    assert shown["total_amount"] == 11.624
    assert shown["products"][0]["price"] == 5.062
    assert shown["products"][0]["total"] == 10.124
    assert shown["created"] == "2026-01-02T03:04:05Z"
    assert shown["source_updated_at"] == "2026-01-02T03:04:05Z"
    assert shown["status_history"] == [{"status": "pending", "at": "2026-01-02T03:04:05Z"}]
    assert list(shown) == [*PUBLIC_FIELDS, "is_duplicate"]


def test_zero_decimal_currencies_are_integers() -> None:
    shown = order_public(_row(currency="JPY", total_amount=Decimal("1500.4")))
    assert shown["total_amount"] == 1500
    assert isinstance(shown["total_amount"], int)


def test_text_fields_are_shown_as_stored_even_when_they_look_like_times() -> None:
    assert order_public(_row())["notes"] == "call after 18:00 +00:00"


def test_objects_and_rows_without_later_columns_show_the_defaults() -> None:
    row = _row()
    del row["version"], row["anomalies"]
    assert order_public(row)["version"] == 1
    assert order_public(row)["anomalies"] == []
    assert order_public(SimpleNamespace(**_row()))["total_amount"] == 11.624


def test_a_row_missing_a_column_is_a_bug_not_a_null() -> None:
    row = _row()
    del row["currency"]
    with pytest.raises(KeyError):
        order_public(row)

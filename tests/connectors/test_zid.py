"""Zid connector: recorded payloads normalize exactly, URL-token authentication, malformed input.

Payloads under ``payloads/`` follow Zid's Order schema (the webhook body of ``order.create``,
``order.status.update`` and ``order.payment_status.update``) and its "Get Order by ID" examples.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.base import NormalizedOrder, OrderLine, ParsedEvent, RawRequest
from connectors.zid import connector

PAYLOADS = Path(__file__).parent / "payloads"
TOKEN = "zid-conn-token-Jr3xQ9wLm2"


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text(encoding="utf-8"))
    return data


def body_of(data: Any) -> bytes:
    return json.dumps(data).encode()  # ASCII escapes, so lone surrogates survive the trip


def parse_one(data: Any, event: str | None = "order.create") -> ParsedEvent:
    query = {"token": TOKEN} | ({"event": event} if event is not None else {})
    events = connector.parse(RawRequest(body=body_of(data), query=query))
    assert len(events) == 1
    return events[0]


def assert_order(actual: NormalizedOrder | None, expected: NormalizedOrder) -> None:
    assert actual == expected
    assert actual.model_fields_set == expected.model_fields_set  # what the hub will apply


CREATED = NormalizedOrder(
    source="zid",
    external_id="44834593",
    source_updated_at=datetime(2024, 12, 5, 12, 27, 22, tzinfo=UTC),
    reference="dyV6hS0VZi",
    customer_name="Abdulrhman Essa",
    customer_email="abdulrhman.essa@example.com",
    customer_phone="+966550448447",
    shipping_address={
        "formatted_address": "طريق الملك فهد، العليا، الرياض",
        "street": "طريق الملك فهد",
        "district": "العليا",
        "lat": 24.7136,
        "lng": 46.6753,
        "short_address": "RRRD2929",
        "meta": None,
        "city": {"id": 1, "name": "الرياض"},
        "country": {"id": 184, "name": "السعودية", "code": "SA"},
    },
    products=[
        OrderLine(
            product_id="f91a678a76f44c5689b48db40ad049e9",
            sku="BP-100",
            name="حقيبة ظهر جلدية",
            quantity=1,
            price=Decimal(200),
            total=Decimal(200),
        ),
        OrderLine(
            product_id="73258621-2e34-43a7-b678-187db3f4ea34",
            sku="WL-7",
            name="محفظة جلدية",
            quantity=2,
            price=Decimal(50),
            total=Decimal(100),
        ),
    ],
    subtotal=Decimal("260.86956521739000"),
    discount=Decimal("26.08695652174000"),
    tax=Decimal("35.21739130435000"),
    delivery_fee=Decimal("25.00000000000000"),
    total_amount=Decimal("295.00000000000000"),
    currency="SAR",
    status="pending",
    payment_status="pending",
    fulfillment_status="unfulfilled",
    notes="الرجاء الاتصال قبل التوصيل",
    source_created_at=datetime(2024, 12, 5, 12, 27, 15, tzinfo=UTC),
)


# ---- recorded payloads -----------------------------------------------------------------------


def test_order_create_normalizes_to_the_exact_order() -> None:
    event = parse_one(payload("zid_order_create.json"), "order.create")
    assert event.topic == "order.create"
    assert event.ignored_reason is None
    assert_order(event.order, CREATED)


def test_order_status_update_carries_the_whole_order() -> None:
    event = parse_one(payload("zid_order_status_update.json"), "order.status.update")
    expected = CREATED.model_copy(
        update={
            "source_updated_at": datetime(2024, 12, 6, 9, 10, 44, tzinfo=UTC),
            "status": "shipped",
            "fulfillment_status": "fulfilled",
        }
    )
    assert event.topic == "order.status.update"
    assert_order(event.order, expected)


def test_order_payment_status_update() -> None:
    event = parse_one(payload("zid_order_payment_status_update.json"), "order.payment_status.update")
    expected = CREATED.model_copy(
        update={
            "source_updated_at": datetime(2024, 12, 7, 16, 45, 3, tzinfo=UTC),
            "status": "delivered",
            "payment_status": "paid",
            "fulfillment_status": "fulfilled",
        }
    )
    assert event.topic == "order.payment_status.update"
    assert_order(event.order, expected)


def test_without_an_event_name_an_order_body_is_a_snapshot() -> None:
    event = parse_one(payload("zid_order_create.json"), event=None)
    assert event.topic == "order"
    assert_order(event.order, CREATED)


@pytest.mark.parametrize(
    ("event", "body"),
    [
        ("product.update", {"id": "f91a678a", "name": {"ar": "حقيبة", "en": "Bag"}, "price": 200}),
        ("customer.create", {"id": 2083543, "name": "Abdulrhman"}),
        ("abandoned_cart.created", {"id": "c1", "cart_total": 300}),
        (None, {"id": "f91a678a", "sku": "BP-100", "price": 200}),  # not order-shaped
    ],
)
def test_other_events_are_acknowledged_and_ignored(event: str | None, body: dict[str, Any]) -> None:
    parsed = parse_one(body, event)
    assert parsed.order is None
    assert parsed.ignored_reason


# ---- mappings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "fulfillment"),
    [
        ("new", "pending", "unfulfilled"),
        ("processed", "confirmed", "unfulfilled"),
        ("preparing", "preparing", "unfulfilled"),
        ("ready", "ready", "unfulfilled"),
        ("inDelivery", "shipped", "fulfilled"),
        ("indelivery", "shipped", "fulfilled"),
        ("delivered", "delivered", "fulfilled"),
        ("cancelled", "cancelled", None),
        ("canceled", "cancelled", None),
        ("failed", "cancelled", None),
        ("expired", "cancelled", None),
        ("voided", "cancelled", None),
        ("denied", "cancelled", None),
        ("reversed", "returned", "returned"),
        ("canceledReversal", "delivered", "fulfilled"),
        ("refunded", None, None),
        ("chargeback", None, None),
        ("reverse_in_progress", None, None),
        ("processingReverse", None, None),
        ("a_new_zid_code", None, None),
    ],
)
def test_order_status_codes(code: str, status: str | None, fulfillment: str | None) -> None:
    data = payload("zid_order_create.json")
    data["order_status"] = {"name": "x", "code": code}
    order = parse_one(data).order
    assert order is not None
    assert (order.status, order.fulfillment_status) == (status, fulfillment)
    assert ("status" in order.model_fields_set) is (status is not None)  # unknown: the stored status stays


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("paid", "paid"),
        ("pending", "pending"),
        ("unpaid", "pending"),
        ("refunded", "refunded"),
        ("partially_refunded", "partially_refunded"),
        ("voided", "failed"),
        ("failed", "failed"),
        ("mystery", None),
    ],
)
def test_payment_statuses(value: str, expected: str | None) -> None:
    data = payload("zid_order_create.json")
    data["payment_status"] = value
    order = parse_one(data).order
    assert order is not None
    assert order.payment_status == expected


def test_cash_on_delivery_fee_and_shipping_discount() -> None:
    data = payload("zid_order_create.json")
    invoice = data["payment"]["invoice"]
    invoice[-1:-1] = [{"code": "shipping_discount", "value": "-25.00"}, {"code": "cod", "value": "7.50"}]
    data["order_total"] = "277.5"
    order = parse_one(data).order
    assert order is not None
    assert order.delivery_fee == Decimal("32.50")
    assert order.discount == Decimal("51.08695652174")
    assert order.total_amount == Decimal("277.5")


def test_without_invoice_only_the_total_is_known() -> None:
    data = payload("zid_order_create.json")
    del data["payment"]
    order = parse_one(data).order
    assert order is not None
    assert order.total_amount == Decimal(295)
    assert {"subtotal", "discount", "tax", "delivery_fee"}.isdisjoint(order.model_fields_set)


def test_currency_falls_back_to_the_order_currency_object() -> None:
    data = payload("zid_order_create.json")
    data["currency_code"] = None
    data["currency"]["order_currency"]["code"] = "kwd"
    order = parse_one(data).order
    assert order is not None
    assert order.currency == "KWD"


def test_clock_falls_back_to_created_at() -> None:
    data = payload("zid_order_create.json")
    del data["updated_at"]
    order = parse_one(data).order
    assert order is not None
    assert order.source_updated_at == datetime(2024, 12, 5, 12, 27, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("mobile", "expected"),
    [("966550448447", "+966550448447"), ("+966550448447", "+966550448447"), ("0550448447", "+966550448447")],
)
def test_mobile_numbers_become_e164(mobile: str, expected: str) -> None:
    data = payload("zid_order_create.json")
    data["customer"]["mobile"] = mobile
    order = parse_one(data).order
    assert order is not None
    assert order.customer_phone == expected

"""Shopify connector: HMAC, delivery id, topics, normalization of recorded payloads, malformed input."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.base import (
    Connector,
    NormalizedOrder,
    OrderLine,
    ParsedEvent,
    PayloadError,
    RawRequest,
)
from connectors.shopify import connector

PAYLOADS = Path(__file__).parent / "payloads"
SECRET = "shpss_5f0c2a7e9b1d4c3a8e6f"

CUSTOMER_ADDRESS: dict[str, Any] = {
    "first_name": "Ahmed",
    "address1": "123 King Fahd Road",
    "phone": "0501234567",
    "city": "Riyadh",
    "zip": "12211",
    "province": "Riyadh",
    "country": "Saudi Arabia",
    "last_name": "Al-Rashid",
    "address2": "Building 7",
    "company": None,
    "latitude": 24.7136,
    "longitude": 46.6753,
    "name": "Ahmed Al-Rashid",
    "country_code": "SA",
    "province_code": "01",
}


def _order_1042(**changes: Any) -> NormalizedOrder:
    fields: dict[str, Any] = {
        "source": "shopify",
        "external_id": "5208334008572",
        "source_updated_at": datetime(2026, 4, 5, 10, 30, 5, tzinfo=UTC),
        "source_created_at": datetime(2026, 4, 5, 10, 30, tzinfo=UTC),
        "reference": "#1042",
        "customer_name": "Ahmed Al-Rashid",
        "customer_email": "ahmed@example.com",
        "customer_phone": "+966501234567",
        "shipping_address": CUSTOMER_ADDRESS,
        "products": [
            OrderLine(
                product_id="632910392",
                sku="TSH-001-L",
                name="Premium T-Shirt - L",
                quantity=3,
                price=Decimal("100.00"),
                total=Decimal("300.00"),
            ),
            OrderLine(
                product_id="632910393",
                sku="CAP-002",
                name="Logo Cap",
                quantity=1,
                price=Decimal("150.00"),
                total=Decimal("150.00"),
            ),
        ],
        "subtotal": Decimal("450.00"),
        "discount": Decimal("45.00"),
        "tax": Decimal("60.75"),
        "delivery_fee": Decimal("25.00"),
        "total_amount": Decimal("490.75"),
        "currency": "SAR",
        "status": "confirmed",
        "payment_status": "paid",
        "fulfillment_status": "unfulfilled",
        "notes": "Please call before delivery",
        "cancellation_reason": None,
    }
    return NormalizedOrder(**(fields | changes))


EXPECTED = {
    "shopify_orders_create.json": ("orders/create", _order_1042()),
    "shopify_orders_fulfilled.json": (
        "orders/fulfilled",
        _order_1042(
            source_updated_at=datetime(2026, 4, 8, 13, 45, 10, tzinfo=UTC),
            status="delivered",
            fulfillment_status="fulfilled",
        ),
    ),
    "shopify_orders_cancelled.json": (
        "orders/cancelled",
        NormalizedOrder(
            source="shopify",
            external_id="5208334990001",
            source_updated_at=datetime(2026, 4, 6, 6, 15, 2, tzinfo=UTC),
            source_created_at=datetime(2026, 4, 5, 19, 10, tzinfo=UTC),
            reference="#1043",
            customer_name="Noura Al-Saud",
            customer_email=None,
            customer_phone="+966551234567",  # "055 123 4567" in a Saudi address
            shipping_address={
                "first_name": "Noura",
                "last_name": "Al-Saud",
                "name": "Noura Al-Saud",
                "address1": "9 Tahlia St",
                "address2": None,
                "city": "Jeddah",
                "zip": "23431",
                "province": "Makkah",
                "country": "Saudi Arabia",
                "country_code": "SA",
                "province_code": "02",
                "phone": "055 123 4567",
                "company": None,
                "latitude": None,
                "longitude": None,
            },
            products=[
                OrderLine(
                    product_id=None,
                    sku=None,
                    name="Gift wrapping (custom)",
                    quantity=1,
                    price=Decimal("80.00"),
                    total=Decimal("80.00"),
                )
            ],
            subtotal=Decimal("80.00"),
            discount=Decimal("0.00"),
            tax=Decimal("10.43"),
            delivery_fee=Decimal("0"),
            total_amount=Decimal("80.00"),
            currency="SAR",
            status="cancelled",
            payment_status="failed",
            fulfillment_status="unfulfilled",
            notes=None,
            cancellation_reason="customer",
        ),
    ),
}


def _sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _request(body: bytes, topic: str = "orders/create", **headers: str) -> RawRequest:
    return RawRequest(body=body, headers={"x-shopify-topic": topic, **headers})


def _payload(name: str = "shopify_orders_create.json") -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PAYLOADS / name).read_bytes())
    return loaded


def test_is_a_connector() -> None:
    typed: Connector = connector
    assert typed.source == "shopify"


# ---- normalization ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_payload_normalizes_exactly(name: str) -> None:
    topic, expected = EXPECTED[name]
    body = (PAYLOADS / name).read_bytes()

    events = connector.parse(_request(body, topic, **{"x-shopify-hmac-sha256": _sign(body)}))

    assert len(events) == 1
    assert events[0].topic == topic
    assert events[0].ignored_reason is None
    assert events[0].order == expected
    # Shopify bodies are the whole order: every field is set, so stale stored values are replaced.
    assert events[0].order is not None
    assert events[0].order.model_fields_set == expected.model_fields_set


@pytest.mark.parametrize(
    ("financial", "fulfillment", "status", "payment", "fulfilled"),
    [
        ("pending", None, "pending", "pending", "unfulfilled"),
        ("authorized", None, "confirmed", "pending", "unfulfilled"),
        ("partially_paid", None, "confirmed", "pending", "unfulfilled"),
        ("paid", "partial", "preparing", "paid", "partial"),
        ("paid", "fulfilled", "shipped", "paid", "fulfilled"),
        ("partially_refunded", None, "confirmed", "partially_refunded", "unfulfilled"),
        ("refunded", "restocked", "confirmed", "refunded", "unfulfilled"),
        ("expired", None, "pending", "failed", "unfulfilled"),
    ],
)
def test_status_table(financial: str, fulfillment: str | None, status: str, payment: str, fulfilled: str) -> None:
    order = _payload() | {"financial_status": financial, "fulfillment_status": fulfillment}

    [event] = connector.parse(_request(json.dumps(order).encode()))

    assert event.order is not None
    assert (event.order.status, event.order.payment_status, event.order.fulfillment_status) == (
        status,
        payment,
        fulfilled,
    )


def test_unknown_shopify_status_values_leave_the_fields_unset() -> None:
    order = _payload() | {"financial_status": "some_future_state", "fulfillment_status": "on_the_moon"}

    [event] = connector.parse(_request(json.dumps(order).encode()))

    assert event.order is not None
    assert {"status", "payment_status", "fulfillment_status"}.isdisjoint(event.order.model_fields_set)


def test_shipping_lines_stand_in_for_a_missing_shipping_price_set() -> None:
    order = _payload()
    del order["total_shipping_price_set"]
    order["shipping_lines"].append({"title": "Cash on delivery handling", "price": "7.50"})

    [event] = connector.parse(_request(json.dumps(order).encode()))

    assert event.order is not None
    assert event.order.delivery_fee == Decimal("32.50")


# ---- topics -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("orders/edited", "order-edit summary"),
        ("refunds/create", "is a refund"),
        ("products/update", "not an order topic"),
    ],
)
def test_other_topics_are_acknowledged_and_ignored(topic: str, reason: str) -> None:
    [event] = connector.parse(_request(b'{"id": 5208334008572}', topic))

    assert (event.topic, event.order) == (topic, None)
    assert reason in (event.ignored_reason or "")


def test_orders_delete_names_the_order_to_delete_at_the_time_shopify_fired() -> None:
    body = (PAYLOADS / "shopify_orders_delete.json").read_bytes()
    headers = {"x-shopify-triggered-at": "2026-04-09T07:00:27.877041743Z", "x-shopify-hmac-sha256": _sign(body)}
    deleted = NormalizedOrder(
        source="shopify",
        external_id="5208334008572",
        source_updated_at=datetime(2026, 4, 9, 7, 0, 27, 877041, tzinfo=UTC),
    )

    assert connector.parse(_request(body, "orders/delete", **headers)) == [ParsedEvent("orders/delete", deleted)]


def test_orders_delete_without_a_trigger_time_uses_the_time_of_receipt() -> None:
    received_at = datetime(2026, 4, 9, 7, 0, 30, tzinfo=UTC)
    request = RawRequest(body=b'{"id": 1}', headers={"x-shopify-topic": "orders/delete"}, received_at=received_at)

    [event] = connector.parse(request)

    assert event.order is not None
    assert (event.order.external_id, event.order.source_updated_at) == ("1", received_at)
    assert event.order.model_fields_set == {"source", "external_id", "source_updated_at"}


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (b'{"id": "one"}', {}, "id"),
        (b"[]", {}, "expected an object"),
        (b'{"id": 1}', {"x-shopify-triggered-at": "soon"}, "X-Shopify-Triggered-At"),
    ],
)
def test_malformed_deletions_are_payload_errors(body: bytes, headers: dict[str, str], reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        connector.parse(_request(body, "orders/delete", **headers))


def test_missing_topic_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="X-Shopify-Topic"):
        connector.parse(RawRequest(body=b"{}"))

"""Salla connector: recorded payloads normalize exactly, authentication, and malformed input.

Payloads under ``payloads/`` follow the examples of Salla's "Orders Webhook Events Model" and
"Order Status Updated Webhook Event Model" documentation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.base import NormalizedOrder, OrderLine, ParsedEvent, PayloadError, RawRequest
from connectors.salla import connector, normalize_order, salla_time

PAYLOADS = Path(__file__).parent / "payloads"
SECRET = "salla-webhook-secret-7f3c9a"


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text(encoding="utf-8"))
    return data


def body_of(data: Any) -> bytes:
    return json.dumps(data).encode()  # ASCII escapes, so lone surrogates survive the trip


def signed(body: bytes, secret: str = SECRET, **headers: str) -> RawRequest:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return RawRequest(
        body=body, headers={"x-salla-security-strategy": "Signature", "x-salla-signature": signature, **headers}
    )


def parse_one(data: Any) -> ParsedEvent:
    events = connector.parse(RawRequest(body=body_of(data)))
    assert len(events) == 1
    return events[0]


def assert_order(actual: NormalizedOrder | None, expected: NormalizedOrder) -> None:
    assert actual == expected
    assert actual.model_fields_set == expected.model_fields_set  # what the hub will apply


CREATED = NormalizedOrder(
    source="salla",
    external_id="2116149737",
    source_updated_at=datetime(2024, 3, 10, 11, 5, 13, tzinfo=UTC),  # envelope "GMT+0300", no data.updated_at
    reference="41027662",
    customer_name="Mohammed Ali",
    customer_email="mohammed.ali@example.com",
    customer_phone="+966501806978",
    shipping_address={
        "country": "SA",
        "country_code": "SA",
        "city": "جدة",
        "shipping_address": " شارع ابو امية الضمري، الحي الزهراء ،, جدة, السعودية",
        "street_number": "ابو امية الضمري",
        "block": "الزهراء",
        "postal_code": "23425",
        "geo_coordinates": {"lat": 21.5679, "lng": 39.1563},
    },
    products=[
        OrderLine(
            product_id="720881993",
            sku="SH-001",
            name="قميص قطني",
            quantity=2,
            price=Decimal("100"),
            total=Decimal("200"),
        ),
        OrderLine(
            product_id="1994210129", sku=None, name="قبعة صيفية", quantity=1, price=Decimal(50), total=Decimal(50)
        ),
    ],
    subtotal=Decimal("250"),
    discount=Decimal("25.00"),
    tax=Decimal("33.75"),
    delivery_fee=Decimal("25"),  # shipping 20 + cash on delivery 5
    total_amount=Decimal("283.75"),
    currency="SAR",
    status="pending",
    payment_status="pending",
    fulfillment_status="unfulfilled",
    source_created_at=datetime(2024, 3, 10, 11, 5, 11, tzinfo=UTC),
)


# ---- recorded payloads -----------------------------------------------------------------------


def test_order_created_normalizes_to_the_exact_order() -> None:
    event = parse_one(payload("salla_order_created.json"))
    assert event.topic == "order.created"
    assert event.ignored_reason is None
    assert_order(event.order, CREATED)


def test_order_updated_uses_data_updated_at_and_a_prepaid_payment() -> None:
    event = parse_one(payload("salla_order_updated.json"))
    expected = NormalizedOrder(
        source="salla",
        external_id="1427738113",
        source_updated_at=datetime(2024, 3, 11, 6, 30, 1, 687605, tzinfo=UTC),
        reference="41030566",
        customer_name="Del Don",
        customer_email="user@example.com",
        customer_phone="+971555555555",
        products=[
            OrderLine(
                product_id="1994210129",
                sku="2400409-20000012660-",
                name="تنورة",
                quantity=1,
                price=Decimal(79),
                total=Decimal(79),
            )
        ],
        subtotal=Decimal(79),
        discount=Decimal(0),
        tax=Decimal(0),
        delivery_fee=Decimal(0),
        total_amount=Decimal(79),
        currency="SAR",
        status="preparing",
        payment_status="paid",
        fulfillment_status="unfulfilled",
        source_created_at=datetime(2024, 3, 11, 6, 12, 40, tzinfo=UTC),
    )
    assert event.topic == "order.updated"
    assert_order(event.order, expected)  # shipping is null (branch pickup): shipping_address is not set


STATUS_UPDATED = NormalizedOrder(
    source="salla",
    external_id="629263027",  # data.order.id, not the status record's data.id nor reference_id
    source_updated_at=datetime(2022, 8, 17, 20, 59, 38, tzinfo=UTC),  # the event's created_at
    reference="42264",
    customer_name="Test Salla",
    customer_email="Test.2022@salla.sa",
    customer_phone="+96652318526",
    products=[
        OrderLine(
            product_id="2047473815",
            sku=None,
            name="سي كيه وان شوك، فور هي، 100 مل",
            quantity=1,
            price=Decimal(120),
            total=Decimal(120),
        )
    ],
    subtotal=Decimal(246),
    discount=Decimal(126),
    tax=Decimal(0),
    delivery_fee=Decimal(34),
    total_amount=Decimal(154),
    currency="SAR",
    status="shipped",
    payment_status="pending",  # cash on delivery, not delivered yet
    fulfillment_status="fulfilled",
    source_created_at=datetime(2022, 8, 17, 17, 59, 36, tzinfo=UTC),
)


def test_status_updated_applies_the_whole_order_it_carries() -> None:
    # Issue 19: an order first seen through this event must not be stored with total 0 and no lines.
    event = parse_one(payload("salla_order_status_updated.json"))
    assert event.topic == "order.status.updated"
    assert_order(event.order, STATUS_UPDATED)


def test_status_updated_clock_is_the_orders_updated_at_when_it_has_one() -> None:
    data = payload("salla_order_status_updated.json")
    data["data"]["order"]["updated_at"] = "2022-08-18T09:00:00Z"
    order = parse_one(data).order
    assert order is not None
    assert order.source_updated_at == datetime(2022, 8, 18, 9, 0, tzinfo=UTC)


def test_status_updated_with_only_a_status_sets_only_the_status() -> None:
    data = payload("salla_order_status_updated.json")
    data["data"]["order"] = {"id": 629263027, "status": {"id": 1, "name": "x", "slug": "delivered"}}
    order = parse_one(data).order
    assert order is not None
    assert order.model_fields_set == {
        "source",
        "external_id",
        "source_updated_at",
        "status",
        "fulfillment_status",
    }
    assert (order.status, order.fulfillment_status) == ("delivered", "fulfilled")


def test_status_updated_falls_back_to_the_records_status_slug() -> None:
    data = payload("salla_order_status_updated.json")
    data["data"]["order"]["status"] = None
    data["data"]["status"] = {"slug": "completed", "name": "تم التنفيذ"}
    order = parse_one(data).order
    assert order is not None
    assert order.status == "ready"


def test_normalize_order_reads_an_admin_api_order() -> None:
    order = payload("salla_order_status_updated.json")["data"]["order"]
    fetched = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    normalized = normalize_order(order, fetched_at=fetched)
    assert normalized == STATUS_UPDATED.model_copy(update={"source_updated_at": fetched})
    order["updated_at"] = {"date": "2024-01-01 12:00:00.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"}
    assert normalize_order(order).source_updated_at == datetime(2024, 1, 1, 9, 0, tzinfo=UTC)


def test_normalize_order_needs_a_clock_and_a_readable_order() -> None:
    order = payload("salla_order_status_updated.json")["data"]["order"]
    with pytest.raises(PayloadError, match="clock"):
        normalize_order(order)
    with pytest.raises(PayloadError):
        normalize_order({"id": None}, fetched_at=datetime.now(UTC))


@pytest.mark.parametrize(
    ("topic", "changes"),
    [
        ("order.cancelled", {"status": "cancelled"}),
        ("order.refunded", {"payment_status": "refunded"}),
        ("order.deleted", {}),
        ("order.payment.updated", {}),
    ],
)
def test_other_full_order_topics(topic: str, changes: dict[str, Any]) -> None:
    data = payload("salla_order_created.json")
    data["event"] = topic
    event = parse_one(data)
    assert event.topic == topic
    assert_order(event.order, CREATED.model_copy(update=changes))


@pytest.mark.parametrize("topic", ["product.updated", "customer.created", "order.shipment.created", "app.installed"])
def test_other_topics_are_acknowledged_and_ignored(topic: str) -> None:
    event = parse_one({"event": topic, "merchant": 1, "created_at": "2024-01-01T00:00:00Z", "data": {"id": 7}})
    assert (event.topic, event.order) == (topic, None)
    assert event.ignored_reason


# ---- mappings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slug", "status"),
    [
        ("payment_pending", "pending"),
        ("under_review", "pending"),
        ("in_progress", "preparing"),
        ("completed", "ready"),
        ("shipped", "shipped"),
        ("delivering", "shipped"),
        ("delivered", "delivered"),
        ("canceled", "cancelled"),
        ("restored", "returned"),
    ],
)
def test_status_slugs_map_to_hub_statuses(slug: str, status: str) -> None:
    data = payload("salla_order_status_updated.json")
    data["data"]["order"]["status"]["slug"] = slug
    order = parse_one(data).order
    assert order is not None
    assert order.status == status


@pytest.mark.parametrize("slug", ["restoring", "some_custom_slug", None])
def test_status_event_without_a_hub_status_keeps_the_status_and_applies_the_rest(slug: str | None) -> None:
    data = payload("salla_order_status_updated.json")
    data["data"]["order"]["status"]["slug"] = slug
    data["data"]["status"] = "display name only"
    order = parse_one(data).order
    assert order is not None
    assert "status" not in order.model_fields_set
    assert order.total_amount == Decimal(154)


@pytest.mark.parametrize(
    ("slug", "method", "pending_flag", "expected"),
    [
        ("payment_pending", "mada", False, "pending"),
        ("under_review", "mada", True, "pending"),
        ("payment_failed", "credit_card", False, "failed"),
        ("under_review", "mada", False, "paid"),
        ("under_review", "bank", False, "pending"),
        ("in_progress", "bank", False, "paid"),
        ("shipped", "cod", False, "pending"),
        ("delivered", "cod", False, "paid"),
        ("restored", "mada", False, "refunded"),
        ("canceled", "mada", False, None),
        ("unknown_slug", "mada", False, None),
    ],
)
def test_payment_status_is_derived_from_status_and_method(
    slug: str, method: str, pending_flag: bool, expected: str | None
) -> None:
    data = payload("salla_order_created.json")
    data["data"].update(payment_method=method, is_pending_payment=pending_flag)
    data["data"]["status"]["slug"] = slug
    order = parse_one(data).order
    assert order is not None
    assert order.payment_status == expected
    assert ("payment_status" in order.model_fields_set) is (expected is not None)


def test_unknown_status_slug_leaves_status_unset_but_applies_the_rest() -> None:
    data = payload("salla_order_created.json")
    data["data"]["status"] = {"id": 1, "name": "حالة خاصة", "slug": "brand_new_slug"}
    order = parse_one(data).order
    assert order is not None
    assert {"status", "fulfillment_status", "payment_status"}.isdisjoint(order.model_fields_set)
    assert order.total_amount == Decimal("283.75")


@pytest.mark.parametrize(
    ("customer", "phone"),
    [
        ({"mobile": 501806978, "mobile_code": "+966"}, "+966501806978"),
        ({"mobile": "0501806978", "mobile_code": "966"}, "+966501806978"),
        ({"mobile": "+971555555555", "mobile_code": "+971"}, "+971555555555"),
        ({"mobile": "966501806978", "mobile_code": "+966"}, "+966501806978"),
        ({"mobile": "0501806978"}, "+966501806978"),
    ],
)
def test_phone_is_joined_and_formatted_as_e164(customer: dict[str, Any], phone: str) -> None:
    data = payload("salla_order_created.json")
    data["data"]["customer"] = {"id": 1, "first_name": "A", "last_name": "B", **customer}
    order = parse_one(data).order
    assert order is not None
    assert order.customer_phone == phone


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"date": "2024-01-01 10:00:00.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"}, (1, 7, 0, 0)),
        ({"date": "2024-01-01 10:00:00.250000", "timezone_type": 1, "timezone": "+03:00"}, (1, 7, 0, 250000)),
        ({"date": "2024-01-01 10:00:00.000000", "timezone_type": 3, "timezone": "UTC"}, (1, 10, 0, 0)),
        ("Mon Jan 01 2024 10:00:00 GMT+0300", (1, 7, 0, 0)),
        ("Mon Jan 01 2024 10:00:00 GMT+0300 (Arabia Standard Time)", (1, 7, 0, 0)),
        ("2024-01-01T10:00:00Z", (1, 10, 0, 0)),
        ("2024-01-01T10:00:00+03:00", (1, 7, 0, 0)),
        ("2024-01-01 10:00:00", (1, 7, 0, 0)),  # naive: Salla's store time
    ],
)
def test_salla_timestamps_honour_their_time_zone(value: Any, expected: tuple[int, int, int, int]) -> None:
    day, hour, minute, micro = expected
    assert salla_time(value, "t") == datetime(2024, 1, day, hour, minute, 0, micro, tzinfo=UTC)


def test_text_is_made_storable() -> None:
    data = payload("salla_order_created.json")
    data["data"]["customer"].update(first_name="Mo\x00hammed", last_name="\ud800Ali")
    order = parse_one(data).order
    assert order is not None
    assert order.customer_name == "Mohammed \ufffdAli"

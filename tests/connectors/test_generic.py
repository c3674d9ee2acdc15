"""Generic connector: unified-model orders in a Standard Webhooks envelope (e.g. from HungerStation)."""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from connectors.base import Connector, NormalizedOrder, OrderLine, PayloadError, RawRequest, SignatureError
from connectors.generic import connector
from tests.connectors.fuzzing import JSON

PAYLOADS = Path(__file__).parent / "payloads"
SECRET = "whsec_" + base64.b64encode(b"generic-connection-key-32-bytes!").decode()
SENT_AT = datetime(2026, 4, 5, 18, 20, 3, tzinfo=UTC)

EXPECTED = {
    "generic_order_created.json": (
        "order.created",
        NormalizedOrder(
            source="hungerstation",  # the platform named in the order, not "generic"
            external_id="HS-99812345",
            source_updated_at=datetime(2026, 4, 5, 18, 20, tzinfo=UTC),
            source_created_at=datetime(2026, 4, 5, 18, 19, 40, tzinfo=UTC),
            reference="#8123",
            customer_name="Faisal Al-Harbi",
            customer_email=None,
            customer_phone="+966501112233",
            shipping_address={"line1": "King Abdullah Rd, Al Malqa", "city": "Riyadh", "lat": 24.8102, "lng": 46.6211},
            products=[
                OrderLine(
                    product_id="hs-item-771",
                    sku="SHAW-CHK",
                    name="Chicken Shawarma",
                    quantity=2,
                    price=Decimal("18.50"),
                    total=Decimal("37.00"),
                ),
                # No total given: price x quantity.
                OrderLine(name="Garlic sauce (extra)", quantity=1, price=Decimal(3), total=Decimal(3)),
            ],
            subtotal=Decimal("40.00"),
            discount=Decimal(5),
            tax=Decimal("5.25"),
            delivery_fee=Decimal("9.00"),
            total_amount=Decimal("49.25"),
            currency="SAR",
            status="confirmed",
            payment_status="paid",
            fulfillment_status="unfulfilled",
            notes="No onions",
        ),
    ),
    "generic_order_status_changed.json": (
        "order.status_changed",
        NormalizedOrder(
            source="hungerstation",
            external_id="HS-99812345",
            source_updated_at=datetime(2026, 4, 5, 18, 41, 10, tzinfo=UTC),  # from `updated`
            status="shipped",
        ),
    ),
}


def _signed(body: bytes, *, sent_at: datetime = SENT_AT, secret: str = SECRET) -> RawRequest:
    headers = {
        "webhook-id": "msg_generic_1",
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_generic_1", sent_at, body.decode()),
    }
    return RawRequest(body=body, headers=headers, received_at=SENT_AT)


def _envelope(order: Any, event_type: str = "order.updated") -> bytes:
    return json.dumps({"type": event_type, "data": {"order": order}}).encode()


def _order(**changes: Any) -> dict[str, Any]:
    order: dict[str, Any] = json.loads((PAYLOADS / "generic_order_created.json").read_bytes())["data"]["order"]
    return order | changes


def _parse_one(order: Any, event_type: str = "order.updated") -> NormalizedOrder:
    [event] = connector.parse(RawRequest(body=_envelope(order, event_type)))
    assert event.order is not None
    return event.order


def test_is_a_connector() -> None:
    typed: Connector = connector
    assert typed.source == "generic"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_payload_normalizes_exactly(name: str) -> None:
    topic, expected = EXPECTED[name]
    request = _signed((PAYLOADS / name).read_bytes())
    connector.verify(request, SECRET)

    events = connector.parse(request)

    assert len(events) == 1
    assert (events[0].topic, events[0].ignored_reason) == (topic, None)
    assert events[0].order == expected
    assert events[0].order is not None
    assert events[0].order.model_fields_set == expected.model_fields_set


def test_money_as_numbers_or_decimal_strings_is_exact() -> None:
    order = _parse_one({"id": "1", "updated": "2026-04-05T10:00:00Z", "total_amount": 0.1, "tax": "0.20"})
    assert (order.total_amount, order.tax) == (Decimal("0.1"), Decimal("0.20"))


def test_seed_000_item_names_and_processing_are_accepted() -> None:
    order = _parse_one(
        {
            "external_id": "7",
            "source_updated_at": "2026-04-05T10:00:00Z",
            "status": "processing",
            "items": [
                {"product_id": 5, "product_name": "Shirt", "product_sku": "S-1", "quantity": "2", "unit_price": 10}
            ],
        }
    )
    assert order.status == "preparing"
    assert order.products == [
        OrderLine(product_id="5", sku="S-1", name="Shirt", quantity=2, price=Decimal(10), total=Decimal(20))
    ]


def test_nul_and_lone_surrogates_are_cleaned_not_refused() -> None:
    order = _parse_one(
        {
            "id": "HS-\x001",
            "updated": "2026-04-05T10:00:00Z",
            "customer_name": "Sara\x00 \ud83d",
            "shipping_address": {"street\x00": "Olaya\udc00"},
            "products": [{"name": "Shawarma\x00", "quantity": 1, "price": "18.50"}],
        }
    )
    assert (order.external_id, order.customer_name) == ("HS-1", "Sara \ufffd")
    assert order.shipping_address == {"street": "Olaya\ufffd"}
    assert order.products[0].name == "Shawarma"


def test_null_clears_text_but_not_required_columns() -> None:
    order = _parse_one(
        {"id": "1", "updated": "2026-04-05T10:00:00Z", "notes": None, "currency": None, "total_amount": None}
    )
    assert order.model_fields_set == {"source", "external_id", "source_updated_at", "notes"}


@pytest.mark.parametrize(
    ("source", "expected"),
    [("hungerstation", "hungerstation"), (None, "generic"), ("shopify", "generic"), ("manual", "generic")],
)
def test_source_names_the_platform_unless_it_is_a_built_in_one(source: str | None, expected: str) -> None:
    assert _parse_one({"id": "1", "updated": "2026-04-05T10:00:00Z", "source": source}).source == expected


@pytest.mark.parametrize(("event_type", "status"), [("order.cancelled", "cancelled"), ("order.returned", "returned")])
def test_status_events_imply_their_status(event_type: str, status: str) -> None:
    assert _parse_one({"id": "1", "updated": "2026-04-05T10:00:00Z"}, event_type).status == status


def test_order_deleted_names_the_order_to_delete() -> None:
    order = _parse_one({"external_id": "HS-99812345", "updated": "2026-04-06T09:00:00Z"}, "order.deleted")
    assert order.model_fields_set == {"source", "external_id", "source_updated_at"}


@pytest.mark.parametrize("event_type", ["customer.created", "ping"])
def test_other_events_are_acknowledged_and_ignored(event_type: str) -> None:
    [event] = connector.parse(RawRequest(body=_envelope({"id": "1"}, event_type)))
    assert (event.topic, event.order) == (event_type, None)
    assert event.ignored_reason


# ---- signature --------------------------------------------------------------------------------------


def test_body_signed_by_the_standardwebhooks_library_verifies() -> None:
    connector.verify(_signed((PAYLOADS / "generic_order_created.json").read_bytes()), SECRET)


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (RawRequest(b"{}", {}, received_at=SENT_AT), "missing webhook-id"),
        (_signed(b"{}", secret="whsec_" + base64.b64encode(b"somebody else's key.....").decode()), "matches"),
        (RawRequest(b"{ }", _signed(b"{}").headers, received_at=SENT_AT), "matches"),  # forged body
        (_signed(b"{}", sent_at=SENT_AT - timedelta(minutes=10)), "away from the time of receipt"),  # stale
    ],
)
def test_invalid_requests_are_refused(request_: RawRequest, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        connector.verify(request_, SECRET)


def test_delivery_id_is_the_webhook_id() -> None:
    assert connector.delivery_id(_signed(b"{}")) == "msg_generic_1"


# ---- malformed input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        (_order(external_id=None), "external_id: missing"),
        (_order(external_id=["HS-1"]), "external_id"),
        (_order(source_updated_at=None), "source_updated_at: missing"),
        (_order(source_updated_at="2026-04-05 25:00"), "source_updated_at"),
        (_order(source="Hunger Station"), "source"),
        (_order(total_amount="49.25 SAR"), "total_amount"),
        (_order(total_amount="1" * 25), "total_amount"),
        (_order(discount=True), "discount"),
        (_order(status="Confirmed"), "status"),
        (_order(payment_status="processing"), "payment_status"),  # the alias is for status only
        (_order(fulfillment_status="shipped"), "fulfillment_status"),
        (_order(currency="ريال"), "currency"),
        (_order(products="Chicken Shawarma x2"), "products"),
        (_order(products=[{"name": "Shawarma", "quantity": 2, "price": "18.50", "total": {}}]), r"products\[0\].total"),
        (_order(products=[{"name": "", "quantity": 2, "price": "18.50"}]), r"products\[0\].name"),
        (_order(products=[{"name": "Shawarma", "quantity": True, "price": "1"}]), "quantity"),
        (_order(shipping_address=42.5), "shipping_address"),
        (_order(customer_phone=["0501112233"]), "customer_phone"),
        (_order(created="last week"), "created"),
        (_order(source_updated_at="9999-12-31T23:00:00-05:00"), "out of range"),  # parses, overflows as UTC
        (_order(shipping_address={"building": 2**70}), "shipping_address.building"),
        (_order(subtotal="\u0664\u0660"), "subtotal"),  # Arabic-Indic digits are not a decimal string
    ],
)
def test_malformed_orders_are_payload_errors(order: dict[str, Any], reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        connector.parse(RawRequest(body=_envelope(order)))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xc0\xaf", "not UTF-8"),
        (b"{", "not JSON"),
        (b'{"type": "order.created", "data": {"order": {"id": "1", "tax": -Infinity}}}', "Infinity"),
        (b'{"type": "order.created", "data": null}', "data: missing"),
        (b"[" * 50_000 + b"]" * 50_000, "nests too deeply"),
    ],
)
def test_malformed_bodies_are_payload_errors(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        connector.parse(RawRequest(body=body))


FIELDS = sorted(_order()) + ["items", "id", "updated", "created", "products"]


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), value=JSON, event_type=st.sampled_from(["order.created", "order.delivered"]))
def test_any_value_in_any_field_raises_only_payload_error(field: str, value: Any, event_type: str) -> None:
    with contextlib.suppress(PayloadError):
        connector.parse(RawRequest(body=_envelope(_order(**{field: value}), event_type)))


@settings(max_examples=200, deadline=None, database=None)
@given(order=JSON, line=JSON)
def test_any_order_or_line_raises_only_payload_error(order: Any, line: Any) -> None:
    for candidate in (order, _order(products=[line]), _order(products=[{"name": "x", "quantity": 1, "price": line}])):
        with contextlib.suppress(PayloadError):
            connector.parse(RawRequest(body=_envelope(candidate)))

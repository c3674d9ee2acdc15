"""WooCommerce connector: HMAC, activation ping, delivery id, topics, normalization, malformed input."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import (
    Connector,
    NormalizedOrder,
    OrderLine,
    ParsedEvent,
    PayloadError,
    RawRequest,
    SignatureError,
    body_hash,
)
from connectors.woocommerce import connector
from tests.connectors.fuzzing import JSON, paths, replace

PAYLOADS = Path(__file__).parent / "payloads"
SECRET = "s3cr3t-from-woocommerce-settings"

SARA_ADDRESS: dict[str, Any] = {
    "first_name": "Sara",
    "last_name": "Al-Qahtani",
    "company": "",
    "address_1": "45 Olaya St",
    "address_2": "Apt 3",
    "city": "Riyadh",
    "state": "Riyadh",
    "postcode": "12241",
    "country": "SA",
    "phone": "",
}
COFFEE_LINES = [
    # Line totals are Woo's `subtotal` (before the coupon); the coupon is the order's discount.
    OrderLine(
        product_id="93",
        sku="COF-500",
        name="Arabic Coffee Beans 500g",
        quantity=2,
        price=Decimal("60.00"),
        total=Decimal("120.00"),
    ),
    OrderLine(
        product_id="101",
        sku="DALLAH-BR",
        name="Dallah Coffee Pot - Brass",
        quantity=1,
        price=Decimal("85.00"),
        total=Decimal("85.00"),
    ),
]


def _order_727(**changes: Any) -> NormalizedOrder:
    fields: dict[str, Any] = {
        "source": "woocommerce",
        "external_id": "727",
        "source_updated_at": datetime(2026, 4, 5, 10, 31, 12, tzinfo=UTC),
        "source_created_at": datetime(2026, 4, 5, 10, 30, tzinfo=UTC),
        "reference": "727",
        "customer_name": "Sara Al-Qahtani",
        "customer_email": "sara@example.com",
        "customer_phone": "+966551234567",
        "shipping_address": SARA_ADDRESS,
        "products": COFFEE_LINES,
        "subtotal": Decimal("205.00"),
        "discount": Decimal("20.00"),
        "tax": Decimal("33.00"),
        "delivery_fee": Decimal("35.00"),  # 25.00 flat rate + 10.00 cash-on-delivery fee line
        "total_amount": Decimal("253.00"),
        "currency": "SAR",
        "status": "confirmed",
        "payment_status": "pending",  # cash on delivery: processing, but not paid yet
        "fulfillment_status": "unfulfilled",
        "notes": "Leave at the door",
    }
    return NormalizedOrder(**(fields | changes))


EXPECTED = {
    "woocommerce_order_created.json": ("order.created", _order_727()),
    "woocommerce_order_updated_refunded.json": (
        "order.updated",
        _order_727(
            source_updated_at=datetime(2026, 4, 12, 15, 2, 40, tzinfo=UTC),
            status="returned",  # refunded after it had been completed
            payment_status="refunded",
            fulfillment_status="returned",
        ),
    ),
    "woocommerce_order_completed_digital.json": (
        "order.updated",
        NormalizedOrder(
            source="woocommerce",
            external_id="731",
            source_updated_at=datetime(2026, 4, 10, 5, 0, tzinfo=UTC),
            source_created_at=datetime(2026, 4, 9, 7, 0, tzinfo=UTC),
            reference="731",
            customer_name="Omar",
            customer_email="omar@example.ae",
            customer_phone="+971501234567",  # billing country AE
            shipping_address=None,  # a shipping object of empty strings
            products=[
                OrderLine(
                    product_id=None,  # product 0: deleted since
                    sku=None,
                    name="Brewing guide (PDF) x3 licences",
                    quantity=3,
                    price=Decimal("3.3333"),
                    total=Decimal("10.00"),
                )
            ],
            subtotal=Decimal("10.00"),
            discount=Decimal("0.00"),
            tax=Decimal("1.50"),
            delivery_fee=Decimal("0.00"),
            total_amount=Decimal("11.50"),
            currency="SAR",
            status="delivered",
            payment_status="partially_refunded",
            fulfillment_status="fulfilled",
            notes=None,
        ),
    ),
}


def _sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _request(body: bytes, topic: str = "order.updated", **headers: str) -> RawRequest:
    return RawRequest(body=body, headers={"x-wc-webhook-topic": topic, **headers})


def _payload(name: str = "woocommerce_order_created.json") -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PAYLOADS / name).read_bytes())
    return loaded


def test_is_a_connector() -> None:
    typed: Connector = connector
    assert typed.source == "woocommerce"


# ---- normalization ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_payload_normalizes_exactly(name: str) -> None:
    topic, expected = EXPECTED[name]
    body = (PAYLOADS / name).read_bytes()

    events = connector.parse(_request(body, topic, **{"x-wc-webhook-signature": _sign(body)}))

    assert len(events) == 1
    assert (events[0].topic, events[0].ignored_reason) == (topic, None)
    assert events[0].order == expected
    assert events[0].order is not None
    assert events[0].order.model_fields_set == expected.model_fields_set


@pytest.mark.parametrize(
    ("woo", "payment_method", "expected"),
    [
        ("pending", "bacs", ("pending", "pending", "unfulfilled")),
        ("on-hold", "bacs", ("pending", "pending", "unfulfilled")),
        ("processing", "stripe", ("confirmed", "paid", "unfulfilled")),
        ("processing", "cod", ("confirmed", "pending", "unfulfilled")),
        ("completed", "cod", ("delivered", "paid", "fulfilled")),
        ("cancelled", "bacs", ("cancelled", None, "unfulfilled")),
        ("refunded", "stripe", ("cancelled", "refunded", "unfulfilled")),  # never completed
        ("failed", "stripe", ("pending", "failed", "unfulfilled")),
        ("checkout-draft", "stripe", ("pending", "pending", "unfulfilled")),
        ("trash", "stripe", (None, None, None)),  # not a status Woo sends in a webhook: left unset
        ("wc-shipped-by-plugin", "cod", (None, None, None)),
    ],
)
def test_status_table(woo: str, payment_method: str, expected: tuple[str | None, ...]) -> None:
    order = _payload() | {"status": woo, "payment_method": payment_method}

    [event] = connector.parse(_request(json.dumps(order).encode()))

    assert event.order is not None
    assert (event.order.status, event.order.payment_status, event.order.fulfillment_status) == expected
    assert "payment_status" in event.order.model_fields_set or expected[1] is None


# ---- the activation ping and other topics ---------------------------------------------------------------


def test_activation_ping_passes_verification_unsigned_and_is_ignored() -> None:
    ping = RawRequest(body=b"webhook_id=17", headers={"content-type": "application/x-www-form-urlencoded"})

    connector.verify(ping, SECRET)
    assert connector.parse(ping) == [ParsedEvent("webhook.ping", None, "WooCommerce's activation ping")]


@pytest.mark.parametrize("body", [b"webhook_id=17&status=cancelled", b"webhook_id=x", b'{"webhook_id": 17}'])
def test_only_the_exact_ping_body_goes_unsigned(body: bytes) -> None:
    with pytest.raises(SignatureError, match="missing"):
        connector.verify(RawRequest(body=body), SECRET)


@pytest.mark.parametrize("topic", ["product.updated", "customer.created", "action.woocommerce_add_to_cart"])
def test_other_topics_are_acknowledged_and_ignored(topic: str) -> None:
    [event] = connector.parse(_request(b'{"id": 727}', topic))

    assert (event.topic, event.order) == (topic, None)
    assert "not an order topic" in (event.ignored_reason or "")


def test_a_trashed_order_is_named_for_deletion_at_the_time_of_receipt() -> None:
    body = (PAYLOADS / "woocommerce_order_deleted.json").read_bytes()
    received_at = datetime(2026, 4, 13, 8, 0, tzinfo=UTC)
    request = RawRequest(body, {"x-wc-webhook-topic": "order.deleted"}, received_at=received_at)
    deleted = NormalizedOrder(source="woocommerce", external_id="727", source_updated_at=received_at)

    assert connector.parse(request) == [ParsedEvent("order.deleted", deleted)]


@pytest.mark.parametrize(("body", "reason"), [(b'{"id": "727"}', "id"), (b"null", "expected an object")])
def test_malformed_deletions_are_payload_errors(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        connector.parse(_request(body, "order.deleted"))


def test_restored_order_is_normalized() -> None:
    [event] = connector.parse(_request((PAYLOADS / "woocommerce_order_created.json").read_bytes(), "order.restored"))

    assert event.order == _order_727()


def test_missing_topic_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="X-WC-Webhook-Topic"):
        connector.parse(RawRequest(body=b"{}"))


# ---- signature and delivery id --------------------------------------------------------------------------


def test_valid_signature_passes() -> None:
    body = (PAYLOADS / "woocommerce_order_created.json").read_bytes()
    connector.verify(_request(body, **{"x-wc-webhook-signature": _sign(body)}), SECRET)


@pytest.mark.parametrize(
    ("headers", "secret", "reason"),
    [
        ({}, SECRET, "missing"),
        ({"x-wc-webhook-signature": _sign(b'{"id": 1}')}, SECRET, "does not match"),  # forged: other body
        ({"x-wc-webhook-signature": _sign(b'{"id": 2}', "other")}, SECRET, "does not match"),
        ({"x-wc-webhook-signature": "@@@"}, SECRET, "does not match"),
        ({"x-wc-webhook-signature": _sign(b'{"id": 2}', "")}, "", "no secret"),
    ],
)
def test_bad_signatures_are_refused(headers: dict[str, str], secret: str, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        connector.verify(_request(b'{"id": 2}', **headers), secret)


def test_a_signed_ping_shaped_body_is_still_checked() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        connector.verify(RawRequest(body=b"webhook_id=17", headers={"x-wc-webhook-signature": "forged"}), SECRET)


def test_delivery_id_is_the_delivery_header_else_the_body_hash() -> None:
    body = b'{"id": 727}'
    delivery = "36e520ebabc2fa725092ff4a47acedf2"

    assert connector.delivery_id(_request(body, **{"x-wc-webhook-delivery-id": delivery})) == delivery
    assert connector.delivery_id(_request(body)) == body_hash(body)


# ---- malformed input --------------------------------------------------------------------------------


def _mutated(**changes: Any) -> bytes:
    return json.dumps(_payload() | changes).encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>502</html>", "not JSON"),
        (b'{"id": 727, "name": "\xc3\x28"}', "not UTF-8"),
        (b'"an order"', "expected an object"),
        (b'{"total": Infinity}', "Infinity"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nests too deeply"),
        (_mutated(id=None), "id"),
        (_mutated(id="727"), "id"),
        (_mutated(id=-1), "id"),
        (_mutated(id=2**70), "id"),
        (_mutated(date_modified_gmt=None), "date_modified_gmt"),
        (_mutated(date_modified_gmt="2026-13-45T00:00:00"), "date_modified_gmt"),
        (_mutated(total="two hundred"), "total"),
        (_mutated(total="9" * 30), "total"),
        (_mutated(discount_total=True), "discount_total"),
        (_mutated(shipping_total={"amount": 1}), "shipping_total"),
        (_mutated(fee_lines=[{"name": "COD", "total": None}]), r"fee_lines\[0\].total"),
        (_mutated(fee_lines="10.00"), "fee_lines"),
        (_mutated(line_items=[{"name": "x", "quantity": 1, "subtotal": "abc"}]), r"line_items\[0\].subtotal"),
        (_mutated(line_items=[{"name": "x", "quantity": "lots", "subtotal": "1"}]), "quantity"),
        (_mutated(line_items=[{"quantity": 1, "subtotal": "1"}]), "name"),
        (_mutated(line_items=["beans"]), r"line_items\[0\]"),
        (_mutated(billing=["Sara"]), "billing"),
        (_mutated(billing={"first_name": 5.5}), "first_name"),
        (_mutated(shipping={"address_1": ["45 Olaya St"]}), "shipping_address.address_1"),
        (_mutated(status=["processing"]), "status"),
        (_mutated(refunds={"id": 1}), "refunds"),
    ],
)
def test_malformed_input_is_a_payload_error(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        connector.parse(_request(body))


def test_nul_and_lone_surrogates_are_cleaned_not_refused() -> None:
    [event] = connector.parse(_request(_mutated(customer_note="\x00Leave at the door\ud800")))
    assert event.order is not None
    assert event.order.notes == "Leave at the door\ufffd"


MUTATION_POINTS = [(name, path) for name in sorted(EXPECTED) for path in paths(_payload(name))]


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(point=st.sampled_from(MUTATION_POINTS), value=JSON)
def test_any_value_anywhere_raises_only_payload_error(point: tuple[str, tuple[Any, ...]], value: Any) -> None:
    name, path = point
    body = json.dumps(replace(_payload(name), path, value)).encode()
    with contextlib.suppress(PayloadError):
        connector.parse(_request(body))


@settings(max_examples=200, deadline=None, database=None)
@given(body=JSON.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=64))
def test_any_body_raises_only_payload_error(body: bytes) -> None:
    with contextlib.suppress(PayloadError):
        connector.parse(_request(body))

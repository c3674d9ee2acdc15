"""Shopify connector: the HMAC signature, the delivery id, and malformed input.

Every malformed body raises PayloadError, never anything else; shared fixtures live in ``test_shopify``.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import (
    PayloadError,
    SignatureError,
    body_hash,
)
from connectors.shopify import connector
from tests.connectors.fuzzing import JSON, paths, replace
from tests.connectors.test_shopify import EXPECTED, PAYLOADS, SECRET, _payload, _request, _sign

# ---- signature and delivery id --------------------------------------------------------------------------


def test_valid_signature_passes() -> None:
    body = (PAYLOADS / "shopify_orders_create.json").read_bytes()
    connector.verify(_request(body, **{"x-shopify-hmac-sha256": _sign(body)}), SECRET)


@pytest.mark.parametrize(
    ("headers", "secret", "reason"),
    [
        ({}, SECRET, "missing"),
        ({"x-shopify-hmac-sha256": _sign(b'{"id": 1}')}, SECRET, "does not match"),  # forged: other body
        ({"x-shopify-hmac-sha256": _sign(b'{"id": 2}', "wrong")}, SECRET, "does not match"),
        ({"x-shopify-hmac-sha256": "not base64 \udcff"}, SECRET, "does not match"),
        ({"x-shopify-hmac-sha256": _sign(b'{"id": 2}', "")}, "", "no secret"),
    ],
)
def test_bad_signatures_are_refused(headers: dict[str, str], secret: str, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        connector.verify(_request(b'{"id": 2}', **headers), secret)


def test_delivery_id_is_the_webhook_id_else_the_body_hash() -> None:
    body = b'{"id": 1}'
    webhook_id = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"

    assert connector.delivery_id(_request(body, **{"x-shopify-webhook-id": webhook_id})) == webhook_id
    assert connector.delivery_id(_request(body)) == body_hash(body)


# ---- malformed input --------------------------------------------------------------------------------


def _mutated(**changes: Any) -> bytes:
    return json.dumps(_payload() | changes).encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "expected an object"),
        (b'{"id": NaN}', "NaN"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
        (b'{"id": ' + b"9" * 5000 + b"}", "not JSON"),
        (_mutated(id=None), "id"),
        (_mutated(id="#1042"), "id"),
        (_mutated(id=True), "id"),
        (_mutated(updated_at="yesterday"), "updated_at"),
        (_mutated(updated_at=None), "updated_at"),
        (_mutated(total_price="12,50"), "total_price"),
        (_mutated(total_price="1e400"), "total_price"),
        (_mutated(total_price=10**40), "total_price"),
        (_mutated(total_tax=[1]), "total_tax"),
        (_mutated(currency="riyal"), "currency"),
        (_mutated(line_items={"a": 1}), "line_items"),
        (_mutated(line_items=[{"name": "x", "price": "1.00", "quantity": -1}]), "quantity"),
        (_mutated(line_items=[{"name": "x", "price": "1.00", "quantity": 1.5}]), "quantity"),
        (_mutated(line_items=[{"price": "1.00", "quantity": 1}]), "name nor title"),
        (_mutated(customer="Ahmed"), "customer"),
        (_mutated(shipping_address={"city": {"nested": True}}), "shipping_address.city"),
        (_mutated(fulfillment_status="fulfilled", fulfillments="none"), "fulfillments"),
        (_mutated(fulfillment_status="fulfilled", fulfillments=[{"status": []}]), r"fulfillments\[0\].status"),
        (_mutated(total_shipping_price_set={"shop_money": []}), "shop_money"),
    ],
)
def test_malformed_input_is_a_payload_error(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        connector.parse(_request(body, "orders/updated"))


def test_nul_and_lone_surrogates_are_cleaned_not_refused() -> None:
    body = _mutated(note="a\x00b \ud800", shipping_address={"city\x00": "Riy\x00adh\udfff"})
    [event] = connector.parse(_request(body, "orders/updated"))
    assert event.order is not None
    assert event.order.notes == "ab \ufffd"
    assert event.order.shipping_address == {"city": "Riyadh\ufffd"}


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

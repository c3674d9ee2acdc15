"""Chat-agent connector (seed 000) and the Standard Webhooks verification it shares with ``generic``."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from connectors.base import (
    Connector,
    NormalizedOrder,
    OrderLine,
    PayloadError,
    RawRequest,
    SignatureError,
    body_hash,
)
from connectors.chat_agent import connector, normalize_order
from tests.connectors.fuzzing import JSON, paths, replace

PAYLOADS = Path(__file__).parent / "payloads"
KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
SENT_AT = datetime(2026, 4, 5, 10, 30, 1, tzinfo=UTC)
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"

AHMED_LINES = [
    OrderLine(
        product_id="5", sku="TSH-001", name="Premium T-Shirt", quantity=3, price=Decimal(150), total=Decimal(450)
    ),
    OrderLine(product_id="8", sku="WAL-010", name="Leather Wallet", quantity=1, price=Decimal(150), total=Decimal(150)),
]


def _order_42(**changes: Any) -> NormalizedOrder:
    fields: dict[str, Any] = {
        "source": "chat_agent",
        "external_id": "42",
        "source_updated_at": datetime(2026, 4, 5, 10, 30, tzinfo=UTC),
        "source_created_at": datetime(2026, 4, 5, 10, 30, tzinfo=UTC),
        "customer_name": "Ahmed Al-Rashid",
        "customer_email": "ahmed@example.com",
        "customer_phone": "+966501234567",
        "shipping_address": "123 King Fahd Road, Riyadh",
        "products": AHMED_LINES,
        "subtotal": Decimal(600),
        "total_amount": Decimal(600),
        "currency": "SAR",
        "status": "pending",
        "notes": "Please call before delivery",
    }
    return NormalizedOrder(**(fields | changes))


EXPECTED = {
    "chat_agent_order_created.json": ("order.created", _order_42()),
    "chat_agent_order_updated.json": (
        "order.updated",
        _order_42(
            source_updated_at=datetime(2026, 4, 5, 12, 5, 41, tzinfo=UTC),
            status="preparing",  # seed 000's "processing"
            notes="Customer confirmed by phone",
        ),
    ),
    # The flat {"event", "data": order} shape with a partial order: only what it names is set, and the
    # envelope's timestamp stands in for the missing updated_at.
    "chat_agent_order_cancelled.json": (
        "order.cancelled",
        NormalizedOrder(
            source="chat_agent",
            external_id="43",
            source_updated_at=datetime(2026, 4, 5, 13, 0, tzinfo=UTC),
            status="cancelled",
            cancellation_reason="Customer requested cancellation",
        ),
    ),
}


def _signed(body: bytes, *, secret: str = SECRET, sent_at: datetime = SENT_AT, msg_id: str = MSG_ID) -> RawRequest:
    """A request signed by the reference library, received ten seconds after it was sent."""
    signature = Webhook(secret).sign(msg_id, sent_at, body.decode())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }
    return RawRequest(body=body, headers=headers, received_at=sent_at + timedelta(seconds=10))


def _with(request: RawRequest, **headers: str) -> RawRequest:
    merged = {**request.headers, **{name.replace("_", "-"): value for name, value in headers.items()}}
    return RawRequest(body=request.body, headers=merged, received_at=request.received_at)


def _payload(name: str = "chat_agent_order_created.json") -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PAYLOADS / name).read_bytes())
    return loaded


def test_is_a_connector() -> None:
    typed: Connector = connector
    assert typed.source == "chat_agent"


# ---- normalization ----------------------------------------------------------------------------------


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


def test_normalize_order_serves_a_pull_sync_of_the_list_endpoint() -> None:
    # An item of GET /api/v1/orders as seed 000 shows it: no updated_at, so created_at is the clock.
    item = {"id": 42, "customer_name": "Ahmed Al-Rashid", "status": "pending", "total": 450.00, "currency": "SAR"}
    item["items"] = [_payload()["data"]["order"]["items"][0]]
    item["created_at"] = "2026-04-05T10:30:00.000000Z"

    assert normalize_order(item) == NormalizedOrder(
        source="chat_agent",
        external_id="42",
        source_updated_at=datetime(2026, 4, 5, 10, 30, tzinfo=UTC),
        source_created_at=datetime(2026, 4, 5, 10, 30, tzinfo=UTC),
        customer_name="Ahmed Al-Rashid",
        status="pending",
        total_amount=Decimal(450),
        currency="SAR",
        products=AHMED_LINES[:1],
    )


@pytest.mark.parametrize(
    ("seed_status", "status"),
    [
        ("pending", "pending"),
        ("confirmed", "confirmed"),
        ("processing", "preparing"),
        ("shipped", "shipped"),
        ("delivered", "delivered"),
        ("cancelled", "cancelled"),
    ],
)
def test_status_table(seed_status: str, status: str) -> None:
    order = normalize_order({"id": 1, "status": seed_status, "updated_at": "2026-04-05T10:30:00Z"})
    assert order.status == status


def test_a_delivered_event_without_a_status_says_delivered() -> None:
    body = json.dumps({"type": "order.delivered", "created": "2026-04-06T08:00:00Z", "data": {"order": {"id": 42}}})

    [event] = connector.parse(RawRequest(body=body.encode()))

    assert event.order is not None
    assert (event.order.status, event.order.source_updated_at) == ("delivered", datetime(2026, 4, 6, 8, tzinfo=UTC))


def test_an_orderhub_upstream_keeps_its_own_id_and_not_its_sources() -> None:
    order = normalize_order(
        {"id": "ord_01HV", "external_id": "5208334008572", "source": "shopify", "updated_at": "2026-04-05T10:30:00Z"}
    )
    assert (order.source, order.external_id) == ("chat_agent", "ord_01HV")


@pytest.mark.parametrize("event_type", ["product.updated", "contact.created", "message.received"])
def test_other_events_are_acknowledged_and_ignored(event_type: str) -> None:
    [event] = connector.parse(RawRequest(body=json.dumps({"type": event_type, "data": {"id": 5}}).encode()))

    assert (event.topic, event.order) == (event_type, None)
    assert event.ignored_reason


# ---- Standard Webhooks signature ------------------------------------------------------------------------


def test_body_signed_by_the_standardwebhooks_library_verifies() -> None:
    body = (PAYLOADS / "chat_agent_order_created.json").read_bytes()
    request = _signed(body)

    connector.verify(request, SECRET)
    # The reference library agrees on the very same request (it uses the wall clock, so no timestamp check).
    assert Webhook(SECRET).sign(MSG_ID, SENT_AT, body.decode()) == request.headers["webhook-signature"]


def test_secret_without_the_whsec_prefix_verifies() -> None:
    connector.verify(_signed(b'{"type":"order.created"}'), base64.b64encode(KEY).decode())


def test_rotation_any_v1_entry_may_match() -> None:
    request = _signed(b'{"type":"order.updated"}')
    old = Webhook("whsec_" + base64.b64encode(b"old key of 24 bytes....!").decode()).sign(
        MSG_ID, SENT_AT, request.body.decode()
    )
    ed25519 = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="

    connector.verify(
        _with(request, webhook_signature=f"{old} {ed25519} {request.headers['webhook-signature']}"), SECRET
    )


def test_boundary_of_the_five_minute_tolerance_is_accepted() -> None:
    request = _signed(b"{}")
    for skew in (timedelta(minutes=5), -timedelta(minutes=5)):
        connector.verify(RawRequest(request.body, request.headers, received_at=SENT_AT + skew), SECRET)


def test_an_authentic_body_that_is_not_utf8_verifies_then_fails_to_parse() -> None:
    body = b'{"type": "order.created", "data": {"order": {"id": 42, "notes": "\xff"}}}'
    timestamp = str(int(SENT_AT.timestamp()))
    digest = hmac.new(KEY, f"{MSG_ID}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    headers = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": timestamp,
        "webhook-signature": f"v1,{base64.b64encode(digest).decode()}",
    }
    request = RawRequest(body=body, headers=headers, received_at=SENT_AT)

    connector.verify(request, SECRET)
    with pytest.raises(PayloadError, match="not UTF-8"):
        connector.parse(request)


FORGED = _signed(b'{"type":"order.created","data":{"order":{"id":42,"total":1}}}')


@pytest.mark.parametrize(
    ("request_", "secret", "reason"),
    [
        (
            RawRequest(FORGED.body.replace(b"1}", b"9}"), FORGED.headers, received_at=FORGED.received_at),
            SECRET,
            "matches",
        ),
        (FORGED, "whsec_" + base64.b64encode(b"another key, 24 bytes...").decode(), "matches"),
        (_with(FORGED, webhook_id="msg_other"), SECRET, "matches"),  # the id is signed too
        (_with(FORGED, webhook_signature="v1,AAAA v2,xyz garbage v1,@@@"), SECRET, "matches"),
        (_with(FORGED, webhook_signature=""), SECRET, "missing webhook-signature"),
        (_with(FORGED, webhook_id=""), SECRET, "missing webhook-id"),
        (_with(FORGED, webhook_timestamp=""), SECRET, "missing webhook-timestamp"),
        (RawRequest(FORGED.body, {}, received_at=FORGED.received_at), SECRET, "missing"),
        (_with(FORGED, webhook_timestamp="1775385001.5"), SECRET, "integer"),
        (_with(FORGED, webhook_timestamp="999999999999"), SECRET, "out of range|away from"),
        (_with(FORGED, webhook_timestamp="\u0661\u0667\u0667\u0665"), SECRET, "integer"),
        (
            RawRequest(FORGED.body, FORGED.headers, received_at=SENT_AT + timedelta(minutes=5, seconds=1)),
            SECRET,
            "away",
        ),
        (RawRequest(FORGED.body, FORGED.headers, received_at=SENT_AT - timedelta(minutes=6)), SECRET, "away"),
        (FORGED, "whsec_", "empty"),
        (FORGED, "whsec_a", "not base64"),
        (FORGED, "whsec_ünïcode", "not base64"),
    ],
)
def test_invalid_requests_are_refused(request_: RawRequest, secret: str, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        connector.verify(request_, secret)


def test_stale_timestamp_is_refused_even_with_a_valid_signature() -> None:
    stale = _signed(b"{}", sent_at=SENT_AT - timedelta(hours=1))
    with pytest.raises(SignatureError, match="away from the time of receipt"):
        connector.verify(RawRequest(stale.body, stale.headers, received_at=SENT_AT), SECRET)


def test_delivery_id_is_the_webhook_id_else_the_body_hash() -> None:
    request = _signed(b"{}")
    assert connector.delivery_id(request) == MSG_ID
    assert connector.delivery_id(RawRequest(b"{}")) == body_hash(b"{}")


# ---- malformed input --------------------------------------------------------------------------------


def _envelope(order: Any, **extra: Any) -> bytes:
    return json.dumps(
        {"type": "order.updated", "created": "2026-04-05T10:30:01Z", "data": {"order": order}} | extra
    ).encode()


def _order(**changes: Any) -> dict[str, Any]:
    order: dict[str, Any] = _payload()["data"]["order"]
    return order | changes


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "not JSON"),
        (b"\x80", "not UTF-8"),
        (b"[]", "expected an object"),
        (b'{"data": {}}', "type: missing"),
        (b'{"type": ["order.created"]}', "type"),
        (b'{"type": "order.created"}', "data: missing"),
        (b'{"type": "order.created", "data": "42"}', "data"),
        (b'{"type": "order.created", "data": {"order": 42}}', "data.order"),
        (json.dumps({"type": "x" * 101}).encode(), "longer than"),
        (_envelope(_order(), created="tomorrow"), "created"),
        (_envelope(_order(id=None)), "id"),
        (_envelope(_order(id=-4)), "id"),
        (_envelope(_order(id=4.0)), "id"),
        (_envelope(_order(id="x" * 300)), "longer than"),
        (_envelope(_order(status="lost")), "status"),
        (_envelope(_order(total="450,00")), "total_amount"),
        (_envelope(_order(subtotal=1e300)), "subtotal"),
        (_envelope(_order(currency="SA")), "currency"),
        (_envelope(_order(updated_at=12345)), "updated_at"),
        (_envelope(_order(items={"id": 101})), "items"),
        (_envelope(_order(items=[{"product_name": "Shirt", "quantity": 1}])), "price"),
        (_envelope(_order(items=[{"product_name": "Shirt", "quantity": 10**12, "unit_price": 1}])), "quantity"),
        (_envelope(_order(items=[{"product_id": 5, "quantity": 1, "unit_price": 1}])), "name"),
        (_envelope(_order(shipping_address=["Riyadh"])), "shipping_address"),
        (_envelope(_order(customer_name={"first": "Ahmed"})), "customer_name"),
        (_envelope({"id": 42}, created=None), "updated_at: missing"),
    ],
)
def test_malformed_input_is_a_payload_error(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        connector.parse(RawRequest(body=body))


def test_normalize_order_refuses_what_is_not_an_order() -> None:
    with pytest.raises(PayloadError, match="expected an object"):
        normalize_order([42])  # type: ignore[arg-type]


MUTATION_POINTS = [(name, path) for name in sorted(EXPECTED) for path in paths(_payload(name))]


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(point=st.sampled_from(MUTATION_POINTS), value=JSON)
def test_any_value_anywhere_raises_only_payload_error(point: tuple[str, tuple[Any, ...]], value: Any) -> None:
    name, path = point
    body = json.dumps(replace(_payload(name), path, value)).encode()
    with contextlib.suppress(PayloadError):
        connector.parse(RawRequest(body=body))


@settings(max_examples=200, deadline=None, database=None)
@given(body=JSON.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=64))
def test_any_body_raises_only_payload_error(body: bytes) -> None:
    with contextlib.suppress(PayloadError):
        connector.parse(RawRequest(body=body))


@settings(max_examples=200, deadline=None, database=None)
@given(headers=st.dictionaries(st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]), st.text()))
def test_any_headers_raise_only_signature_error(headers: dict[str, str]) -> None:
    with contextlib.suppress(SignatureError):
        connector.verify(RawRequest(body=b"{}", headers=headers, received_at=SENT_AT), SECRET)

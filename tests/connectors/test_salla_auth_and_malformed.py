"""Salla connector: authentication (signature and token strategies) and malformed input.

Every malformed body raises PayloadError, never anything else; shared fixtures live in test_salla.
"""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import PayloadError, RawRequest, SignatureError, body_hash
from connectors.salla import SallaConnector, connector
from tests.connectors.test_salla import PAYLOADS, SECRET, body_of, payload, signed

# ---- authentication --------------------------------------------------------------------------


def test_valid_signature_is_accepted() -> None:
    body = (PAYLOADS / "salla_order_created.json").read_bytes()
    connector.verify(signed(body), SECRET)
    connector.verify(
        RawRequest(body=body, headers={"x-salla-signature": signed(body).headers["x-salla-signature"]}), SECRET
    )


def test_signature_hex_case_is_ignored() -> None:
    body = b'{"event": "order.created"}'
    request = signed(body)
    upper = RawRequest(body=body, headers={"x-salla-signature": request.headers["x-salla-signature"].upper()})
    connector.verify(upper, SECRET)


@pytest.mark.parametrize(
    "request_",
    [
        signed(b'{"event": "order.created", "data": {"id": 2}}', secret="another-secret"),  # forged
        RawRequest(  # body altered after signing
            body=b'{"event": "order.created", "data": {"id": 3}}',
            headers=dict(signed(b'{"event": "order.created", "data": {"id": 2}}').headers),
        ),
        RawRequest(body=b"{}", headers={"x-salla-signature": "zz-not-hex-\u00e9"}),
        RawRequest(body=b"{}", headers={"x-salla-security-strategy": "Signature"}),  # missing
        RawRequest(body=b"{}"),  # nothing at all
        RawRequest(body=b"{}", headers={"x-salla-security-strategy": "Signature", "authorization": f"Bearer {SECRET}"}),
    ],
)
def test_wrong_or_missing_signature_is_refused(request_: RawRequest) -> None:
    with pytest.raises(SignatureError):
        connector.verify(request_, SECRET)


@pytest.mark.parametrize("authorization", [f"Bearer {SECRET}", f"bearer {SECRET}", SECRET, f"  Bearer   {SECRET} "])
def test_token_strategy_accepts_the_secret_in_authorization(authorization: str) -> None:
    connector.verify(
        RawRequest(body=b"{}", headers={"x-salla-security-strategy": "Token", "authorization": authorization}), SECRET
    )
    connector.verify(RawRequest(body=b"{}", headers={"authorization": authorization}), SECRET)


@pytest.mark.parametrize(
    "authorization", ["Bearer wrong", "", "Bearer ", f"Basic {SECRET}", SECRET + "x", "\u00e9\u00e9"]
)
def test_token_strategy_refuses_a_wrong_token(authorization: str) -> None:
    request = RawRequest(body=b"{}", headers={"x-salla-security-strategy": "Token", "authorization": authorization})
    with pytest.raises(SignatureError):
        connector.verify(request, SECRET)


def test_an_empty_connection_secret_never_authenticates() -> None:
    with pytest.raises(SignatureError):
        connector.verify(RawRequest(body=b"{}", headers={"authorization": ""}), "")


def test_delivery_id_is_the_body_hash() -> None:
    body = (PAYLOADS / "salla_order_created.json").read_bytes()
    assert connector.delivery_id(signed(body)) == body_hash(body) == connector.delivery_id(RawRequest(body=body))
    assert SallaConnector.source == connector.source == "salla"


# ---- malformed input: PayloadError, never anything else --------------------------------------


def _created_with(path: tuple[Any, ...], value: Any) -> bytes:
    data = payload("salla_order_created.json")
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body_of(data)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00{",  # not UTF-8
        b"[]",
        b'"order.created"',
        b'{"event": 5}',
        b'{"event": "order.created"}',
        b'{"event": "order.created", "data": []}',
        b'{"event": "order.created", "data": {"id": 1, "amounts": {"total": NaN}}}',
        b'{"event": "order.created", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"event": "order.created", "data": {"id": ' + b"9" * 5000 + b"}}",
        _created_with(("data", "id"), None),
        _created_with(("data", "id"), True),
        _created_with(("data", "id"), {"id": 1}),
        _created_with(("data", "amounts", "total", "amount"), "12,50 SAR"),
        _created_with(("data", "amounts", "total", "amount"), False),
        _created_with(("data", "amounts", "total", "amount"), 1e400),
        _created_with(("data", "amounts", "total", "amount"), "1e999999999"),
        _created_with(("data", "amounts", "total", "amount"), 10**40),
        _created_with(("data", "amounts", "discounts"), {"discount": "5"}),
        _created_with(("data", "items"), "two shirts"),
        _created_with(("data", "items", 0, "quantity"), -1),
        _created_with(("data", "items", 0, "quantity"), 1.5),
        _created_with(("data", "items", 0, "amounts"), None),
        _created_with(("data", "customer", "first_name"), ["Mohammed"]),
        _created_with(("data", "currency"), "riyal"),
        _created_with(("data", "date"), {"date": "yesterday", "timezone": "Asia/Riyadh"}),
        _created_with(("data", "date"), {"date": "2024-01-01 00:00:00", "timezone": "Mars/Olympus"}),
        _created_with(("created_at",), "Sun Mar 10 2024 14:05:13 GMT+9999"),
        _created_with(("created_at",), None),
        _created_with(("data", "shipping", "address", "geo_coordinates"), json.loads("[" * 50 + "]" * 50)),
    ],
)
def test_malformed_payloads_raise_payload_error_with_a_reason(body: bytes) -> None:
    with pytest.raises(PayloadError) as caught:
        connector.parse(RawRequest(body=body))
    assert str(caught.value)


def _json_values() -> st.SearchStrategy[Any]:
    keys = st.sampled_from(["event", "data", "id", "order", "status", "slug", "amounts", "items", "amount", "date"])
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(keys | st.text(max_size=5), children, max_size=5)
        ),
        max_leaves=30,
    )


TOPICS = st.sampled_from(["order.created", "order.updated", "order.status.updated", "order.refunded", "x"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_json_values(), topic=TOPICS)
def test_random_json_only_ever_raises_payload_error(value: Any, topic: str) -> None:
    for candidate in (value, {"event": topic, "created_at": "2024-01-01T00:00:00Z", "data": value}):
        with contextlib.suppress(PayloadError):
            connector.parse(RawRequest(body=body_of(candidate)))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    return [prefix] + [path for key, child in children for path in _paths(child, (*prefix, key))]


CREATED_PATHS = [
    path for name in ("salla_order_created.json", "salla_order_status_updated.json") for path in _paths(payload(name))
][1:]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(0, len(CREATED_PATHS) - 1),
    junk=_json_values(),
    name=st.sampled_from(["salla_order_created.json", "salla_order_status_updated.json"]),
)
def test_a_real_payload_with_junk_anywhere_only_raises_payload_error(index: int, junk: Any, name: str) -> None:
    data = copy.deepcopy(payload(name))
    node = data
    path = CREATED_PATHS[index]
    try:
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = junk
    except (KeyError, IndexError, TypeError):
        return  # the path belongs to the other payload
    with contextlib.suppress(PayloadError):
        connector.parse(RawRequest(body=body_of(data)))


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200))
def test_random_bytes_only_ever_raise_payload_error(body: bytes) -> None:
    with contextlib.suppress(PayloadError):
        connector.parse(RawRequest(body=body))

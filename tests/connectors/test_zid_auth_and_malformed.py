"""Zid connector: authentication (the URL token) and malformed input.

Every malformed body raises PayloadError, never anything else; shared fixtures live in ``test_zid``.
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
from connectors.zid import ZidConnector, connector
from tests.connectors.test_zid import PAYLOADS, TOKEN, body_of, payload

# ---- authentication --------------------------------------------------------------------------


def test_token_in_the_query_string_is_accepted() -> None:
    body = (PAYLOADS / "zid_order_create.json").read_bytes()
    connector.verify(RawRequest(body=body, query={"token": TOKEN, "event": "order.create"}), TOKEN)


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"token": ""},
        {"token": "wrong"},
        {"token": TOKEN + "x"},
        {"token": TOKEN[:-1]},
        {"Token": TOKEN},
        {"token": "\u00e9"},
    ],
)
def test_missing_or_wrong_token_is_refused(query: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        connector.verify(RawRequest(body=b"{}", query=query), TOKEN)


def test_token_in_a_header_is_not_enough() -> None:
    with pytest.raises(SignatureError):
        connector.verify(RawRequest(body=b"{}", headers={"authorization": f"Bearer {TOKEN}"}), TOKEN)


def test_an_empty_connection_token_never_authenticates() -> None:
    with pytest.raises(SignatureError):
        connector.verify(RawRequest(body=b"{}", query={"token": ""}), "")


def test_delivery_id_is_the_body_hash() -> None:
    body = (PAYLOADS / "zid_order_create.json").read_bytes()
    assert connector.delivery_id(RawRequest(body=body)) == body_hash(body)
    assert ZidConnector.source == connector.source == "zid"


# ---- malformed input: PayloadError, never anything else --------------------------------------


def _created_with(path: tuple[Any, ...], value: Any) -> bytes:
    data = payload("zid_order_create.json")
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body_of(data)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<xml/>",
        b"\xc3\x28",  # invalid UTF-8
        b"[1, 2]",
        b"null",
        b'{"id": 1, "order_status": {"code": "new"}, "order_total": Infinity}',
        b'{"order_status": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"order_status": {"code": "new"}, "id": ' + b"1" * 5000 + b"}",
        _created_with(("id",), None),
        _created_with(("id",), 1.5),
        _created_with(("id",), -3),
        _created_with(("order_total",), "two hundred"),
        _created_with(("order_total",), True),
        _created_with(("order_total",), "1e308"),
        _created_with(("payment", "invoice"), {"code": "total"}),
        _created_with(("payment", "invoice", 0, "value"), None),
        _created_with(("payment", "invoice", 0, "code"), 5),
        _created_with(("products",), {"id": "x"}),
        _created_with(("products", 0, "quantity"), "many"),
        _created_with(("products", 0, "price"), [200]),
        _created_with(("products", 0, "name"), None),
        _created_with(("customer",), "Abdulrhman"),
        _created_with(("customer", "email"), 42),
        _created_with(("currency_code",), "ريال"),
        _created_with(("updated_at",), "05-12-2024 | 03:27 م"),
        _created_with(("updated_at",), 1733401642),
        _created_with(("shipping", "address", "meta"), json.loads("[" * 50 + "]" * 50)),
    ],
)
def test_malformed_payloads_raise_payload_error_with_a_reason(body: bytes) -> None:
    with pytest.raises(PayloadError) as caught:
        connector.parse(RawRequest(body=body, query={"token": TOKEN, "event": "order.create"}))
    assert str(caught.value)


def _json_values() -> st.SearchStrategy[Any]:
    keys = st.sampled_from(["id", "order_status", "code", "payment", "invoice", "value", "products", "updated_at"])
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(keys | st.text(max_size=5), children, max_size=5)
        ),
        max_leaves=30,
    )


EVENTS = st.sampled_from([None, "order.create", "order.status.update", "product.update", ""])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_json_values(), event=EVENTS)
def test_random_json_only_ever_raises_payload_error(value: Any, event: str | None) -> None:
    query = {"token": TOKEN} | ({"event": event} if event is not None else {})
    for candidate in (
        value,
        {"id": 1, "order_status": value},
        {"id": 1, "order_status": {"code": "new"}, "payment": value},
    ):
        with contextlib.suppress(PayloadError):
            connector.parse(RawRequest(body=body_of(candidate), query=query))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    return [prefix] + [path for key, child in children for path in _paths(child, (*prefix, key))]


CREATED_PATHS = _paths(payload("zid_order_create.json"))[1:]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, len(CREATED_PATHS) - 1), junk=_json_values())
def test_a_real_payload_with_junk_anywhere_only_raises_payload_error(index: int, junk: Any) -> None:
    data = copy.deepcopy(payload("zid_order_create.json"))
    node = data
    path = CREATED_PATHS[index]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = junk
    with contextlib.suppress(PayloadError):
        connector.parse(RawRequest(body=body_of(data), query={"token": TOKEN, "event": "order.create"}))


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200))
def test_random_bytes_only_ever_raise_payload_error(body: bytes) -> None:
    with contextlib.suppress(PayloadError):
        connector.parse(RawRequest(body=body, query={"token": TOKEN}))

"""Inputs the fuzzer found answered with 500, pinned as plain tests: each must be a 4xx in the error shape."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

Client = TestClient[Any, Any]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/orders?search=%00",
        "/api/v1/orders?external_id=a%00b",
        "/api/v1/orders/ord%00x",
        "/api/v1/products?search=%00",
        "/api/v1/contacts/c%00",
        "/api/v1/webhooks/w%00/deliveries",
        "/api/v1/inbound-events?connection_id=%00",
        "/api/v1/orders?%00=1",
    ],
)
async def test_nul_in_path_or_query_is_400(client: Client, auth: dict[str, str], path: str) -> None:
    resp = await client.get(path, headers=auth)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["code"] == 400


async def test_nul_in_a_webhook_path_is_400(client: Client) -> None:
    resp = await client.post("/hooks/generic/c%00", data=b"{}")
    assert resp.status == 400


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/products", {"name": "a\u0000b", "price": "1.00"}, "name"),
        ("/api/v1/contacts", {"name": "ok", "email": None, "phone": "\u0000"}, "phone"),
        (
            "/api/v1/orders",
            {"customer_name": "x", "products": [{"name": "a\u0000", "quantity": 1, "price": 1}]},
            "products.0.name",
        ),
        ("/api/v1/contacts", {"na\u0000me": "x"}, "na\u0000me"),
    ],
)
async def test_nul_in_a_json_body_is_422_naming_the_field(
    client: Client, auth: dict[str, str], path: str, body: dict[str, Any], field: str
) -> None:
    resp = await client.post(path, json=body, headers=auth)
    assert resp.status == 422, await resp.text()
    assert list((await resp.json())["details"]) == [field]


async def test_a_literal_backslash_u0000_is_just_text(client: Client, auth: dict[str, str]) -> None:
    resp = await client.post("/api/v1/contacts", json={"name": "\\u0000 is not NUL"}, headers=auth)
    assert resp.status == 201, await resp.text()


@pytest.mark.parametrize("name", ["contact_id", "external_id", "search"])
async def test_empty_text_filters_are_ignored(client: Client, auth: dict[str, str], name: str) -> None:
    for path in (f"/api/v1/orders?{name}=", f"/api/v1/orders/export?{name}="):
        resp = await client.get(path, headers=auth)
        assert resp.status == 200, await resp.text()

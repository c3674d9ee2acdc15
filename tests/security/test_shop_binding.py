"""Events are tied to the shop they claim to come from (issue 20.4).

Two organizations sharing one platform app secret must not replay each other's signed bodies: a
connection is bound to the shop named in its settings, else to the shop of its first verified event,
and a verified event naming another shop is 401 (counted as a reject), compared as a domain or URL is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from hub.ops.rejects import REJECTS_KEY
from hub.platforms.shops import same_shop, shop_of_request

Client = TestClient[Any, Any]
SECRET = "shared-app-secret-0123456789abcdef"


def _salla(merchant: int, order_id: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "event": "order.created",
            "merchant": merchant,
            "created_at": "2024-03-10 12:00:00",
            "data": {"id": order_id, "reference_id": order_id, "amounts": {"total": {"amount": 10, "currency": "SAR"}}},
        }
    ).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Salla-Signature": signature, "Content-Type": "application/json"}


def _shopify(domain: str) -> tuple[bytes, dict[str, str]]:
    body = b'{"id": 1, "updated_at": "2024-03-10T12:00:00Z"}'
    mac = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return body, {
        "X-Shopify-Hmac-Sha256": mac,
        "X-Shopify-Shop-Domain": domain,
        "X-Shopify-Topic": "orders/create",
        "Content-Type": "application/json",
    }


async def _connect(client: Client, auth: dict[str, str], source: str, **settings: Any) -> str:
    body = {"source": source, "name": source, "secret": SECRET, "settings": settings}
    resp = await client.post("/api/v1/connections", json=body, headers=auth)
    assert resp.status == 201, await resp.text()
    connection_id: str = (await resp.json())["data"]["id"]
    return connection_id


async def _rejects(client: Client, source: str) -> dict[bytes, bytes]:
    from hub.keys import REDIS

    found: dict[bytes, bytes] = await client.app[REDIS].hgetall(REJECTS_KEY.format(source=source))
    return found


async def test_first_event_binds_and_another_merchants_replay_is_refused(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    conn_id = await _connect(client, auth, "salla")
    own, own_headers = _salla(111, 1)
    assert (await client.post(f"/hooks/salla/{conn_id}", data=own, headers=own_headers)).status == 200
    foreign, foreign_headers = _salla(222, 2)  # validly signed with the shared secret, another store
    resp = await client.post(f"/hooks/salla/{conn_id}", data=foreign, headers=foreign_headers)
    assert resp.status == 401
    payload = await resp.json()
    assert payload["success"] is False
    assert "shop" in payload["details"]
    assert await db.fetchval("SELECT count(*) FROM inbound_events WHERE connection_id = $1", conn_id) == 1
    assert (await _rejects(client, "salla")).get(b"wrong_shop") == b"1"
    again, again_headers = _salla(111, 3)
    assert (await client.post(f"/hooks/salla/{conn_id}", data=again, headers=again_headers)).status == 200


async def test_settings_bind_before_any_event_and_compare_as_domains(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    conn_id = await _connect(client, auth, "shopify", shop_domain="Mine.myshopify.com")
    foreign, foreign_headers = _shopify("theirs.myshopify.com")
    assert (await client.post(f"/hooks/shopify/{conn_id}", data=foreign, headers=foreign_headers)).status == 401
    own, own_headers = _shopify("mine.MyShopify.com.")
    assert (await client.post(f"/hooks/shopify/{conn_id}", data=own, headers=own_headers)).status == 200


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://shop.example.com/", "http://SHOP.example.com", True),
        ("shop.example.com", "https://shop.example.com:443/", True),
        ("https://shop.example.com/store/", "https://shop.example.com/store", True),
        ("https://shop.example.com/a", "https://shop.example.com/b", False),
        ("shop.example.com", "www.shop.example.com", False),
        ("shop.example.com:8443", "shop.example.com", False),
        ("1305146709", "1305146709", True),
        ("1305146709", "193718979", False),
    ],
)
def test_same_shop(a: str, b: str, same: bool) -> None:
    assert same_shop(a, b) is same


def test_shop_of_request_reads_each_platforms_name() -> None:
    assert shop_of_request("shopify", {"x-shopify-shop-domain": "a.myshopify.com"}, b"") == "a.myshopify.com"
    assert shop_of_request("woocommerce", {"x-wc-webhook-source": "https://s.example/"}, b"") == "https://s.example/"
    assert shop_of_request("salla", {}, b'{"merchant": 42}') == "42"
    assert shop_of_request("zid", {}, b'{"store_id": 251073}') == "251073"
    assert shop_of_request("zid", {}, b"not json") is None
    assert shop_of_request("generic", {}, b'{"merchant": 42}') is None


@pytest.mark.parametrize(
    ("source", "body", "shop"),
    [
        ("zid", b'{"order": {"id": 7, "store_id": 251073}}', "251073"),  # named in the order only
        ("zid", b'{"store_id": 9, "order": {"store_id": 251073}}', "9"),  # the event's own first
        ("zid", b'{"store_id": 9, "order": [1, 2]}', "9"),  # an odd order does not hide the event's
        ("zid", b'{"order": "x"}', None),
        ("zid", b'{"order": null}', None),
        ("salla", b'[{"merchant": 42}]', None),  # not an object
        ("salla", b'{"merchant": 42} trailing', None),
        ("salla", b'{"merchant": true}', None),
        ("salla", b'{"merchant": {"id": 42}}', None),
        ("salla", b'{"merchant": 1, "merchant": 2}', "2"),  # as a full parse reads it: the last one
        # a number no 64-bit parser reads elsewhere in the body does not hide the merchant
        ("salla", b'{"data": {"n": 123456789012345678901234567890}, "merchant": 42}', "42"),
        ("salla", b'{"merchant": 123456789012345678901234567890}', "123456789012345678901234567890"),
    ],
)
def test_shop_of_request_reads_only_the_naming_fields(source: str, body: bytes, shop: str | None) -> None:
    assert shop_of_request(source, {}, body) == shop

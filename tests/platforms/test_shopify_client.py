"""The Shopify pull client against a fake shop that follows Shopify's REST docs (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from connectors import get_connector
from connectors.base import RawRequest, SignatureError
from hub.platforms.chat_client import pinned_session
from hub.platforms.chat_remote import AuthRevoked, PermanentRemoteError, TransientRemoteError
from hub.platforms.clients import shopify
from tests.fakes.receiver import Receiver
from tests.fakes.shopify_store import FakeShopify

SECRET = "whsec_connection_secret_for_shopify"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class Sleeps:
    """A real sleep that remembers what it was asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(seconds)


@pytest.fixture
async def shop() -> AsyncIterator[FakeShopify]:
    async with FakeShopify(app_secret=SECRET) as fake:
        yield fake


def settings(shop: FakeShopify, **extra: Any) -> dict[str, Any]:
    return {"shop_domain": shop.shop_domain, "access_token": shop.access_token, "api_base_url": shop.base_url, **extra}


async def all_orders(client: shopify.Client, since: datetime = EPOCH) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await client.fetch_orders(since=since, cursor=cursor)
        orders.extend(page.orders)
        if page.next_cursor is None:
            return orders
        cursor = page.next_cursor


async def test_pages_through_every_order_exactly_once(shop: FakeShopify) -> None:
    start = datetime.now(UTC) - timedelta(days=5)
    added = [shop.add_order(created_at=start + timedelta(minutes=i)) for i in range(600)]
    added[7] = shop.update_order(added[7]["id"], cancelled_at=added[7]["created_at"], cancel_reason="customer")
    added[8] = shop.update_order(added[8]["id"], closed_at=added[8]["created_at"])
    async with pinned_session(allow_loopback=True) as http:
        client = shopify.Client(settings(shop), session=http, secret=SECRET)
        orders = await all_orders(client)
    assert [o["id"] for o in orders] == [o["id"] for o in added]  # cancelled and archived ones too
    first, *rest = [r for r in shop.requests if r.path.endswith("/orders.json")]
    assert first.query["status"] == "any"
    assert first.query["limit"] == "250"
    assert "updated_at_min" in first.query
    assert len(rest) == 2
    assert all(set(r.query) == {"page_info", "limit"} for r in rest)
    assert shop.throttled_count == 0


async def test_since_keeps_only_orders_updated_at_or_after_it(shop: FakeShopify) -> None:
    old = datetime.now(UTC) - timedelta(days=3)
    orders = [shop.add_order(created_at=old) for _ in range(5)]
    cutoff = datetime.now(UTC) - timedelta(hours=1)
    changed = shop.update_order(orders[2]["id"], financial_status="refunded")
    async with pinned_session(allow_loopback=True) as http:
        client = shopify.Client(settings(shop), session=http, secret=SECRET)
        assert [o["id"] for o in await all_orders(client, cutoff)] == [changed["id"]]
        assert len(await all_orders(client, old)) == 5


async def test_waits_on_the_call_limit_header_and_never_hits_429(shop: FakeShopify) -> None:
    shop.add_order()
    sleeps = Sleeps()
    async with pinned_session(allow_loopback=True) as http:
        client = shopify.Client(settings(shop), session=http, secret=SECRET, sleep=sleeps)
        for _ in range(10):
            await client.fetch_orders(since=EPOCH, cursor=None)
        assert sleeps.waits == []  # plenty left in the bucket: full speed
        shop.use_calls(25)  # another job of the same app fills the shared bucket
        for _ in range(12):
            await client.fetch_orders(since=EPOCH, cursor=None)
    assert shop.throttled_count == 0
    assert sleeps.waits
    assert sum(sleeps.waits) < 6


async def test_an_unthrottled_shop_is_paged_without_sleeping() -> None:
    sleeps = Sleeps()
    async with FakeShopify(throttle=False) as shop, pinned_session(allow_loopback=True) as http:
        for _ in range(600):
            shop.add_order()
        client = shopify.Client(settings(shop), session=http, secret=SECRET, sleep=sleeps)
        for _ in range(25):
            assert len(await all_orders(client)) == 600
    assert sleeps.waits == []


async def test_a_429_is_waited_for_not_hammered(shop: FakeShopify) -> None:
    shop.call_limit_header = False  # only the 429 tells the client the bucket is full
    shop.use_calls(shop.bucket_size)
    shop.add_order()
    async with pinned_session(allow_loopback=True) as http:
        client = shopify.Client(settings(shop), session=http, secret=SECRET)
        done, retry_afters = 0, set()
        while done < 6:
            try:
                await client.fetch_orders(since=EPOCH, cursor=None)
                done += 1
            except TransientRemoteError as exc:  # an engine that asks again at once: the client waits itself
                retry_afters.add(exc.retry_after)
    assert retry_afters == {2.0}
    assert 1 <= shop.throttled_count <= 3
    for refused, following in zip(shop.requests, shop.requests[1:], strict=False):
        if refused.status == 429:
            assert following.at - refused.at >= 1.9


async def test_revoked_token_is_auth_revoked_with_shopifys_reason(shop: FakeShopify) -> None:
    shop.revoke()
    async with pinned_session(allow_loopback=True) as http:
        client = shopify.Client(settings(shop), session=http, secret=SECRET)
        with pytest.raises(AuthRevoked, match="Invalid API key or access token"):
            await client.fetch_orders(since=EPOCH, cursor=None)
        with pytest.raises(AuthRevoked):
            await client.list_webhooks()


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (503, b'{"errors":"Service Unavailable"}', TransientRemoteError),
        (500, b"oops", TransientRemoteError),
        (200, b"<html>maintenance</html>", PermanentRemoteError),
        (200, b'{"order": []}', PermanentRemoteError),
        (404, b'{"errors":"Not Found"}', PermanentRemoteError),
    ],
)
async def test_answers_map_to_the_error_tree(
    shop: FakeShopify, status: int, body: bytes, error: type[Exception]
) -> None:
    shop.fail(status, body=body)
    async with pinned_session(allow_loopback=True) as http:
        client = shopify.Client(settings(shop), session=http, secret=SECRET)
        with pytest.raises(error) as caught:
            await client.fetch_orders(since=EPOCH, cursor=None)
        assert not isinstance(caught.value, AuthRevoked)


async def test_network_error_is_transient(shop: FakeShopify, free_port: int) -> None:
    async with pinned_session(allow_loopback=True) as http:
        client = shopify.Client(
            settings(shop, api_base_url=f"http://127.0.0.1:{free_port}"), session=http, secret=SECRET
        )
        with pytest.raises(TransientRemoteError):
            await client.fetch_orders(since=EPOCH, cursor=None)


async def test_webhooks_list_create_round_trip(shop: FakeShopify) -> None:
    address = "http://127.0.0.1:9/hooks/shopify/con_1"
    async with pinned_session(allow_loopback=True) as http:
        client = shopify.Client(settings(shop), session=http, secret=SECRET)
        assert await client.list_webhooks() == []
        created = [await client.create_webhook(topic=t, address=address) for t in client.topics]
        assert {h.topic for h in created} == {"orders/create", "orders/updated", "orders/delete"}
        assert sorted(await client.list_webhooks(), key=lambda h: h.platform_id) == created
        again = await client.create_webhook(topic="orders/updated", address=address)  # 422 at Shopify
        assert again == created[1]
        shop.remove_webhooks()
        assert await client.list_webhooks() == []


async def test_a_delivery_verifies_with_the_connection_secret(shop: FakeShopify) -> None:
    order = shop.add_order()
    async with Receiver() as receiver, pinned_session(allow_loopback=True) as http:
        client = shopify.Client(settings(shop), session=http, secret=SECRET)
        await client.create_webhook(topic="orders/updated", address=receiver.url("/hooks/shopify/con_1"))
        assert await shop.send_webhook("orders/updated", order) == [200]
        (got,) = receiver.requests()
    raw = RawRequest(body=got.body, headers={k.lower(): v for k, v in got.headers.items()})
    connector = get_connector("shopify")
    assert connector is not None
    connector.verify(raw, SECRET)
    with pytest.raises(SignatureError):
        connector.verify(raw, "another secret")
    assert raw.headers["x-shopify-shop-domain"] == shop.shop_domain
    (event,) = connector.parse(raw)
    assert event.order is not None
    assert event.order.external_id == str(order["id"])


async def test_normalize_reads_an_api_order(shop: FakeShopify) -> None:
    order = shop.add_order(fulfillment_status="fulfilled")
    async with pinned_session(allow_loopback=True) as http:
        client = shopify.Client(settings(shop), session=http, secret=SECRET)
        (fetched,) = (await client.fetch_orders(since=EPOCH, cursor=None)).orders
    normalized = client.normalize(fetched)
    assert normalized.external_id == str(order["id"])
    assert normalized.total_amount == Decimal("130.00")
    assert normalized.status == "shipped"
    assert normalized.source_updated_at == datetime.fromisoformat(order["updated_at"])


@pytest.mark.parametrize(
    ("given", "errors"),
    [
        ({}, {}),
        ({"shop_domain": "acme.myshopify.com"}, {}),  # webhook-only, bound to its shop
        ({"shop_domain": "acme.myshopify.com", "access_token": "shpat_x"}, {}),
        ({"shop_domain": "acme.myshopify.com", "access_token": "shpat_x", "api_version": "2026-07"}, {}),
        ({"access_token": "shpat_x"}, {"shop_domain": "required with access_token"}),
        ({"shop_domain": "acme.myshopify.com", "access_token": ""}, {"access_token": "non-empty"}),
        ({"shop_domain": "https://acme.myshopify.com/admin", "access_token": "t"}, {"shop_domain": "host name"}),
        ({"shop_domain": "acme.myshopify.com", "access_token": "t", "api_version": "v2"}, {"api_version": "YYYY"}),
        ({"shop_domain": "shop.acme.example", "access_token": "t"}, {"shop_domain": "custom domain"}),
        ({"shop_domain": "shop.acme.example", "access_token": "t", "api_base_url": "http://127.0.0.1:8080"}, {}),
        ({"shop_domain": "acme.myshopify.com", "api_version": "2026-07"}, {"access_token": "required"}),
        ({"api_base_url": "http://127.0.0.1:8080"}, {}),
        ({"api_base_url": "https://proxy.example/shopify"}, {"api_base_url": "origin only"}),
        ({"api_base_url": "https://proxy.example/?x=1"}, {"api_base_url": "origin only"}),
        ({"api_base_url": "ftp://proxy.example"}, {"api_base_url": "scheme"}),
        ({"api_base_url": 42}, {"api_base_url": "http(s) origin"}),
    ],
)
def test_settings_errors_name_each_bad_field(given: dict[str, Any], errors: dict[str, str]) -> None:
    found = shopify.settings_errors(given)
    assert set(found) == set(errors)
    for name, part in errors.items():
        assert part in found[name]


def test_credentials_and_origin() -> None:
    complete = {"shop_domain": "Acme.myshopify.com", "access_token": "shpat_x"}
    assert shopify.has_credentials(complete)
    assert not shopify.has_credentials({"shop_domain": "acme.myshopify.com"})
    assert not shopify.has_credentials({"access_token": "shpat_x"})
    assert shopify.api_origin(complete) == "https://acme.myshopify.com"
    assert shopify.api_origin({**complete, "api_base_url": "http://127.0.0.1:8081/"}) == "http://127.0.0.1:8081"


def test_next_page_info_reads_the_link_header() -> None:
    link = (
        '<https://acme.myshopify.com/admin/api/2026-10/orders.json?page_info=abc&limit=250>; rel="previous", '
        '<https://acme.myshopify.com/admin/api/2026-10/orders.json?page_info=xyz&limit=250>; rel="next"'
    )
    assert shopify.next_page_info(link) == "xyz"
    assert shopify.next_page_info(link.split(", ")[0]) is None
    assert shopify.next_page_info(None) is None


async def test_the_fake_deletes_webhooks_and_orders(shop: FakeShopify) -> None:
    kept, gone = shop.add_order(), shop.add_order()
    shop.delete_order(gone["id"])
    async with pinned_session(allow_loopback=True) as http:
        client = shopify.Client(settings(shop), session=http, secret=SECRET)
        assert [o["id"] for o in await all_orders(client)] == [kept["id"]]
        hook = await client.create_webhook(topic="orders/delete", address="http://127.0.0.1:9/h")
        url = f"{shop.base_url}/admin/api/{shop.api_version}/webhooks/{hook.platform_id}.json"
        async with http.delete(url, headers={"X-Shopify-Access-Token": shop.access_token}) as resp:
            assert resp.status == 200
        assert await client.list_webhooks() == []

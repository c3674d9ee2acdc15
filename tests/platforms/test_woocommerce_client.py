"""The WooCommerce pull client against a fake store that follows the REST v3 docs (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from connectors import get_connector
from connectors.base import RawRequest, SignatureError
from hub.platforms.chat_client import pinned_session
from hub.platforms.chat_remote import AuthRevoked, PermanentRemoteError, TransientRemoteError
from hub.platforms.clients import woocommerce
from tests.fakes.receiver import Receiver
from tests.fakes.woocommerce_store import FakeWooCommerce

SECRET = "whsec_connection_secret_for_woo"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def store() -> AsyncIterator[FakeWooCommerce]:
    async with FakeWooCommerce() as fake:
        yield fake


def settings(store: FakeWooCommerce, **extra: Any) -> dict[str, Any]:
    return {
        "store_url": store.base_url,
        "consumer_key": store.consumer_key,
        "consumer_secret": store.consumer_secret,
        **extra,
    }


async def all_orders(client: woocommerce.Client, since: datetime = EPOCH) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await client.fetch_orders(since=since, cursor=cursor)
        orders.extend(page.orders)
        if page.next_cursor is None:
            return orders
        cursor = page.next_cursor


async def test_pages_through_every_order_exactly_once(store: FakeWooCommerce) -> None:
    start = datetime.now(UTC) - timedelta(days=5)
    added = [store.add_order(created_at=start + timedelta(minutes=i)) for i in range(250)]
    store.update_order(added[3]["id"], status="cancelled")
    store.update_order(added[4]["id"], status="trash")  # trashed: not in the list, order.deleted tells
    async with pinned_session(allow_loopback=True) as http:
        client = woocommerce.Client(settings(store), session=http, secret=SECRET)
        first = await client.fetch_orders(since=EPOCH, cursor=None)
        orders = first.orders + await all_orders_after(client, first.next_cursor)
    assert first.total == 249
    assert [o["id"] for o in orders] == [o["id"] for o in added if o["status"] != "trash"]
    listed = [r for r in store.requests if r.path == "/wp-json/wc/v3/orders"]
    assert [r.query["page"] for r in listed] == ["1", "2", "3"]
    assert all(r.query["per_page"] == "100" for r in listed)
    assert listed[0].query["dates_are_gmt"] == "true"


async def all_orders_after(client: woocommerce.Client, cursor: str | None) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = []
    while cursor is not None:
        page = await client.fetch_orders(since=EPOCH, cursor=cursor)
        orders.extend(page.orders)
        cursor = page.next_cursor
    return orders


async def test_since_is_compared_with_the_gmt_modification_time(store: FakeWooCommerce) -> None:
    old = datetime.now(UTC) - timedelta(days=3)
    orders = [store.add_order(created_at=old) for _ in range(5)]
    # The site is UTC+3: a cutoff read as local time would let 3 hours of changes slip through.
    cutoff = datetime.now(UTC) - timedelta(hours=1)
    changed = store.update_order(orders[1]["id"], status="completed")
    async with pinned_session(allow_loopback=True) as http:
        client = woocommerce.Client(settings(store), session=http, secret=SECRET)
        assert [o["id"] for o in await all_orders(client, cutoff)] == [changed["id"]]
        assert len(await all_orders(client, old)) == 5  # at or after: the boundary is included


async def test_a_throttling_host_is_waited_for_not_hammered(store: FakeWooCommerce) -> None:
    store.add_order()
    store.throttle(3, per_seconds=1.0)
    async with pinned_session(allow_loopback=True) as http:
        client = woocommerce.Client(settings(store), session=http, secret=SECRET)
        done, retry_afters = 0, set()
        while done < 8:
            try:
                await client.fetch_orders(since=EPOCH, cursor=None)
                done += 1
            except TransientRemoteError as exc:  # an engine that asks again at once: the client waits itself
                retry_afters.add(exc.retry_after)
    assert retry_afters == {1.0}
    assert 1 <= store.throttled_count <= 3
    for refused, following in zip(store.requests, store.requests[1:], strict=False):
        if refused.status == 429:
            assert following.at - refused.at >= 0.9


async def test_revoked_key_is_auth_revoked_with_woocommerces_reason(store: FakeWooCommerce) -> None:
    store.revoke()
    async with pinned_session(allow_loopback=True) as http:
        client = woocommerce.Client(settings(store), session=http, secret=SECRET)
        with pytest.raises(AuthRevoked, match="Consumer key is invalid"):
            await client.fetch_orders(since=EPOCH, cursor=None)
        with pytest.raises(AuthRevoked):
            await client.create_webhook(topic="order.created", address="http://127.0.0.1:9/h")


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (503, None, TransientRemoteError),
        (502, b"<html>Bad gateway</html>", TransientRemoteError),
        (200, b"<html>maintenance</html>", PermanentRemoteError),
        (200, b'{"orders": []}', PermanentRemoteError),
        (404, b'{"code":"rest_no_route","message":"No route was found","data":{"status":404}}', PermanentRemoteError),
    ],
)
async def test_answers_map_to_the_error_tree(
    store: FakeWooCommerce, status: int, body: bytes | None, error: type[Exception]
) -> None:
    store.fail(status, body=body)
    async with pinned_session(allow_loopback=True) as http:
        client = woocommerce.Client(settings(store), session=http, secret=SECRET)
        with pytest.raises(error) as caught:
            await client.fetch_orders(since=EPOCH, cursor=None)
        assert not isinstance(caught.value, AuthRevoked)


async def test_network_error_is_transient(store: FakeWooCommerce, free_port: int) -> None:
    async with pinned_session(allow_loopback=True) as http:
        client = woocommerce.Client(
            settings(store, api_base_url=f"http://127.0.0.1:{free_port}"), session=http, secret=SECRET
        )
        with pytest.raises(TransientRemoteError):
            await client.fetch_orders(since=EPOCH, cursor=None)


async def test_webhooks_list_create_round_trip(store: FakeWooCommerce) -> None:
    address = "http://127.0.0.1:9/hooks/woocommerce/con_1"
    async with pinned_session(allow_loopback=True) as http:
        client = woocommerce.Client(settings(store), session=http, secret=SECRET)
        assert await client.list_webhooks() == []
        created = [await client.create_webhook(topic=t, address=address) for t in client.topics]
        assert {h.topic for h in created} == {"order.created", "order.updated", "order.deleted"}
        assert await client.list_webhooks() == created
        assert {store.webhook_secrets[int(h.platform_id)] for h in created} == {SECRET}
        store.webhooks[int(created[0].platform_id)]["status"] = "disabled"  # Woo gave up after failures
        assert await client.list_webhooks() == created[1:]
        store.remove_webhooks()
        assert await client.list_webhooks() == []


async def test_a_delivery_verifies_with_the_connection_secret(store: FakeWooCommerce) -> None:
    order = store.add_order()
    async with Receiver() as receiver, pinned_session(allow_loopback=True) as http:
        client = woocommerce.Client(settings(store), session=http, secret=SECRET)
        await client.create_webhook(topic="order.updated", address=receiver.url("/hooks/woocommerce/con_1"))
        assert await store.send_webhook("order.updated", order) == [200]
        ping, got = receiver.requests()
    connector = get_connector("woocommerce")
    assert connector is not None
    # Woo activates a webhook with an unsigned ping first: the hub lets it through and ignores it.
    ping_request = RawRequest(body=ping.body, headers={k.lower(): v for k, v in ping.headers.items()})
    connector.verify(ping_request, SECRET)
    assert [e.topic for e in connector.parse(ping_request)] == ["webhook.ping"]
    assert store.pings == [(int(ping.body.split(b"=")[1]), 200)]
    raw = RawRequest(body=got.body, headers={k.lower(): v for k, v in got.headers.items()})
    connector.verify(raw, SECRET)
    with pytest.raises(SignatureError):
        connector.verify(raw, "another secret")
    assert raw.headers["x-wc-webhook-source"] == f"{store.base_url}/"
    (event,) = connector.parse(raw)
    assert event.order is not None
    assert event.order.external_id == str(order["id"])


async def test_normalize_reads_an_api_order(store: FakeWooCommerce) -> None:
    order = store.add_order()
    async with pinned_session(allow_loopback=True) as http:
        client = woocommerce.Client(settings(store), session=http, secret=SECRET)
        (fetched,) = (await client.fetch_orders(since=EPOCH, cursor=None)).orders
    normalized = client.normalize(fetched)
    assert normalized.external_id == str(order["id"])
    assert normalized.total_amount == Decimal("39.00")
    assert normalized.status == "confirmed"
    assert normalized.source_updated_at == datetime.fromisoformat(order["date_modified_gmt"]).replace(tzinfo=UTC)


KEY, SECRET_KEY = {"consumer_key": "ck_x"}, {"consumer_secret": "cs_y"}


@pytest.mark.parametrize(
    ("given", "errors"),
    [
        ({}, {}),
        ({"store_url": "https://shop.example"}, {}),  # webhook-only
        ({"store_url": "https://shop.example", **KEY, **SECRET_KEY}, {}),
        ({"store_url": "http://127.0.0.1:8080", **KEY, **SECRET_KEY}, {}),  # a loopback test store
        ({"store_url": "https://shop.example", **KEY}, {"consumer_secret": "required with consumer_key"}),
        ({"store_url": "https://shop.example", **SECRET_KEY}, {"consumer_key": "required with consumer_secret"}),
        ({**KEY, **SECRET_KEY}, {"store_url": "required"}),
        ({"store_url": "https://shop.example", **KEY, "consumer_secret": " "}, {"consumer_secret": "non-empty"}),
        ({"store_url": "http://shop.example", **KEY, **SECRET_KEY}, {"store_url": "https"}),
        ({"store_url": "ftp://shop.example"}, {"store_url": "scheme"}),
        (
            {"store_url": "https://shop.example", "api_base_url": "http://10.0.0.5", **KEY, **SECRET_KEY},
            {"api_base_url": "https"},
        ),
        ({"api_base_url": "https://proxy.example/wp-json"}, {"api_base_url": "origin only"}),
    ],
)
def test_settings_errors_name_each_bad_field(given: dict[str, Any], errors: dict[str, str]) -> None:
    found = woocommerce.settings_errors(given)
    assert set(found) == set(errors)
    for name, part in errors.items():
        assert part in found[name]


def test_credentials_and_origin() -> None:
    complete = {"store_url": "https://Shop.example/store/", **KEY, **SECRET_KEY}
    assert woocommerce.has_credentials(complete)
    assert not woocommerce.has_credentials({"store_url": "https://shop.example"})
    assert woocommerce.api_origin(complete) == "https://shop.example"
    assert woocommerce.api_origin({**complete, "api_base_url": "http://127.0.0.1:8081"}) == "http://127.0.0.1:8081"


async def test_the_fake_deletes_webhooks_only_with_force(store: FakeWooCommerce) -> None:
    async with pinned_session(allow_loopback=True) as http:
        client = woocommerce.Client(settings(store), session=http, secret=SECRET)
        hook = await client.create_webhook(topic="order.created", address="http://127.0.0.1:9/h")
        url = f"{store.base_url}/wp-json/wc/v3/webhooks/{hook.platform_id}"
        pair = f"{store.consumer_key}:{store.consumer_secret}".encode()
        auth = {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        async with http.delete(url, headers=auth) as resp:
            assert resp.status == 501
        async with http.delete(url, params={"force": "true"}, headers=auth) as resp:
            assert resp.status == 200
        assert await client.list_webhooks() == []

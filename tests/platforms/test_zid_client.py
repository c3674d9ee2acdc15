"""The Zid pull client against a fake Zid store (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connectors import get_connector
from connectors.base import RawRequest
from hub.platforms.chat_client import pinned_session
from hub.platforms.chat_remote import AuthRevoked, PermanentRemoteError, TransientRemoteError
from hub.platforms.clients import zid
from hub.platforms.pull import OrdersPage
from tests.fakes.zid_store import FakeZid

TOKEN = "zid-connection-token-8fJ2"
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with pinned_session(allow_loopback=True) as s:
        yield s


def client_for(store: FakeZid, session: aiohttp.ClientSession) -> zid.Client:
    settings = {
        "authorization": store.authorization,
        "manager_token": store.manager_token,
        "api_base_url": store.origin,
    }
    return zid.Client(settings, session=session, secret=TOKEN)


async def pull_all(client: zid.Client, since: datetime = LONG_AGO) -> list[dict[str, Any]]:
    """Every page, waiting out transient answers the way the engine does."""
    orders: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await retrying(client, since, cursor)
        orders.extend(page.orders)
        if page.next_cursor is None:
            return orders
        cursor = page.next_cursor


async def retrying(client: zid.Client, since: datetime, cursor: str | None) -> OrdersPage:
    for _ in range(20):
        try:
            return await client.fetch_orders(since=since, cursor=cursor)
        except TransientRemoteError as exc:
            await asyncio.sleep(exc.retry_after if exc.retry_after is not None else 0.1)
    raise AssertionError("still throttled after 20 tries")


async def test_pages_through_every_order_exactly_once_oldest_first(session: aiohttp.ClientSession) -> None:
    async with FakeZid() as store:
        start = datetime.now(UTC) - timedelta(days=3)
        ids = [store.add_order(at=start + timedelta(minutes=i))["id"] for i in range(250)]
        orders = await pull_all(client_for(store, session))
        assert [o["id"] for o in orders] == ids
        lists = [r for r in store.requests if r.path == "/v1/managers/store/orders"]
        assert [r.query["page"] for r in lists] == ["1", "2", "3"]
        assert {(r.query["per_page"], r.query["payload_type"], r.query["date_attribute"]) for r in lists} == {
            ("100", "default", "updated_at")
        }
        assert all(r.authorization == f"Bearer {store.authorization}" for r in store.requests)
        assert all(o["products"] for o in orders)


async def test_since_is_an_updated_since_filter(session: aiohttp.ClientSession) -> None:
    async with FakeZid() as store:
        old = datetime.now(UTC) - timedelta(days=10)
        stale = [store.add_order(at=old)["id"] for _ in range(5)]
        fresh = store.add_order()["id"]
        store.update_order(stale[2], status="preparing")
        orders = await pull_all(client_for(store, session), since=datetime.now(UTC) - timedelta(days=1))
        assert [o["id"] for o in orders] == [stale[2], fresh]


async def test_throttled_store_is_waited_for_not_hammered(session: aiohttp.ClientSession) -> None:
    async with FakeZid() as store:
        for i in range(30):
            store.add_order(at=datetime.now(UTC) - timedelta(minutes=i))
        store.throttle(limit=2, window=1.0)
        client = client_for(store, session)
        pages = 0
        for _ in range(6):  # six syncs back to back: three windows' worth
            await retrying(client, LONG_AGO, None)
            pages += 1
        assert pages == 6
        assert store.too_many <= 3  # one 429 per exhausted window, then Retry-After is honoured


async def test_429_states_retry_after(session: aiohttp.ClientSession) -> None:
    async with FakeZid() as store:
        store.fail(429, retry_after="12")
        with pytest.raises(TransientRemoteError) as caught:
            await client_for(store, session).fetch_orders(since=LONG_AGO, cursor=None)
        assert caught.value.retry_after == 12


async def test_revoked_tokens_are_auth_revoked_with_zid_reason(session: aiohttp.ClientSession) -> None:
    async with FakeZid() as store:
        store.revoke()
        with pytest.raises(AuthRevoked, match="revoked"):
            await client_for(store, session).fetch_orders(since=LONG_AGO, cursor=None)


async def test_server_error_is_transient_and_bad_json_permanent(session: aiohttp.ClientSession) -> None:
    async with FakeZid() as store:
        client = client_for(store, session)
        store.fail(502)
        with pytest.raises(TransientRemoteError):
            await client.fetch_orders(since=LONG_AGO, cursor=None)
        store.fail_json()
        with pytest.raises(PermanentRemoteError, match="not JSON"):
            await client.fetch_orders(since=LONG_AGO, cursor=None)


async def test_webhook_round_trip_and_a_webhook_that_verifies(session: aiohttp.ClientSession) -> None:
    received: list[RawRequest] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(RawRequest(body=await request.read(), query=dict(request.query)))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hooks/zid/conn_1", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    address = f"http://{host}:{port}/hooks/zid/conn_1?token={TOKEN}"
    try:
        async with FakeZid() as store:
            client = client_for(store, session)
            created = [await client.create_webhook(topic=topic, address=address) for topic in client.topics]
            listed = await client.list_webhooks()
            assert {(w.topic, w.address) for w in listed} == {(t, address) for t in client.topics}
            assert {w.platform_id for w in listed} == {w.platform_id for w in created}
            order = store.add_order()
            assert await store.send_webhook("order.create", order) == 200
            connector = get_connector("zid")
            assert connector is not None
            connector.verify(received[0], TOKEN)
            [event] = connector.parse(received[0])
            assert event.order is not None
            assert event.order.external_id == str(order["id"])
            await client.delete_webhook(created[0].platform_id)
            assert len(await client.list_webhooks()) == len(client.topics) - 1
            store.remove_webhooks()
            assert await client.list_webhooks() == []
    finally:
        await runner.cleanup()


async def test_normalize_reads_an_api_order(session: aiohttp.ClientSession) -> None:
    async with FakeZid() as store:
        store.add_order(status="ready")
        client = client_for(store, session)
        [order] = (await client.fetch_orders(since=LONG_AGO, cursor=None)).orders
        normalized = client.normalize(order)
        assert normalized.external_id == str(order["id"])
        assert (normalized.status, normalized.payment_status) == ("ready", "paid")
        assert (normalized.total_amount, normalized.tax, normalized.delivery_fee) == (
            Decimal("126.50"),
            Decimal("11.50"),
            Decimal(15),
        )
        assert [(line.sku, line.quantity) for line in normalized.products] == [("ACS-001", 2)]


@pytest.mark.parametrize(
    ("settings", "errors"),
    [
        ({}, {}),
        ({"authorization": "a", "manager_token": "m"}, {}),
        ({"authorization": "a"}, {"manager_token": "required with authorization"}),
        ({"manager_token": "m"}, {"authorization": "required with manager_token"}),
        ({"authorization": " ", "manager_token": "m"}, {"authorization": "must be a non-empty string"}),
        ({"authorization": "a", "manager_token": "m", "api_base_url": "http://127.0.0.1:8080"}, {}),
        ({"authorization": "a", "manager_token": "m", "api_base_url": "https://api.zid.sa/v1"}, {"api_base_url": ...}),
        ({"api_base_url": "not a url"}, {"api_base_url": ...}),
    ],
)
def test_settings_errors(settings: dict[str, Any], errors: dict[str, Any]) -> None:
    found = zid.settings_errors(settings)
    assert set(found) == set(errors)
    assert all(expected is ... or found[name] == expected for name, expected in errors.items())


def test_origin_credentials_and_headers() -> None:
    assert zid.api_origin({}) == "https://api.zid.sa"
    assert zid.has_credentials({"authorization": "a", "manager_token": "m"})
    assert not zid.has_credentials({"authorization": "a"})
    assert zid.zid_time(datetime(2024, 5, 1, 12, 0, tzinfo=UTC)) == "2024-05-01T12:00:00.000+0000"

"""The Salla pull client against a fake Salla store (real HTTP on 127.0.0.1)."""

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
from hub.platforms.clients import salla
from hub.platforms.pull import OrdersPage
from tests.fakes.salla_store import FakeSalla

SECRET = "whsec_salla_connection_secret"
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with pinned_session(allow_loopback=True) as s:
        yield s


def client_for(store: FakeSalla, session: aiohttp.ClientSession, **settings: Any) -> salla.Client:
    return salla.Client(
        {"access_token": store.token, "api_base_url": store.origin, **settings}, session=session, secret=SECRET
    )


async def pull_all(client: salla.Client, since: datetime = LONG_AGO) -> list[dict[str, Any]]:
    """Every page, waiting out transient answers the way the engine does."""
    orders: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await retrying(client, since, cursor)
        orders.extend(page.orders)
        if page.next_cursor is None:
            return orders
        cursor = page.next_cursor


async def retrying(client: salla.Client, since: datetime, cursor: str | None) -> OrdersPage:
    for _ in range(20):
        try:
            return await client.fetch_orders(since=since, cursor=cursor)
        except TransientRemoteError as exc:
            await asyncio.sleep(exc.retry_after if exc.retry_after is not None else 0.1)
    raise AssertionError("still throttled after 20 tries")


async def test_pages_through_every_order_exactly_once(session: aiohttp.ClientSession) -> None:
    async with FakeSalla() as store:
        ids = [store.add_order()["id"] for _ in range(250)]
        orders = await pull_all(client_for(store, session))
        assert [o["id"] for o in orders] == sorted(ids, reverse=True)  # Salla lists newest first
        lists = [r for r in store.requests if r.path == "/admin/v2/orders"]
        assert len(lists) == 5  # 250 orders / 60 per page
        assert {r.query["per_page"] for r in lists} == {"60"}
        assert all(o["amounts"]["total"]["amount"] == 115 for o in orders)  # details, not summaries
        assert all(r.authorization == f"Bearer {store.token}" for r in store.requests)


async def test_since_skips_orders_not_updated_since(session: aiohttp.ClientSession) -> None:
    async with FakeSalla() as store:
        old = datetime.now(UTC) - timedelta(days=10)
        stale = [store.add_order(at=old)["id"] for _ in range(5)]
        fresh = store.add_order()["id"]
        store.update_order(stale[0], status="completed")
        orders = await pull_all(client_for(store, session), since=datetime.now(UTC) - timedelta(days=1))
        assert sorted(o["id"] for o in orders) == sorted([fresh, stale[0]])


async def test_a_page_with_nothing_changed_is_read_through_not_answered_empty(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeSalla() as store:
        old = datetime.now(UTC) - timedelta(days=10)
        ids = [store.add_order(at=old)["id"] for _ in range(150)]
        store.update_order(ids[0], status="completed")  # the oldest order, on the last page
        page = await client_for(store, session).fetch_orders(since=datetime.now(UTC) - timedelta(days=1), cursor=None)
        assert [o["id"] for o in page.orders] == [ids[0]]
        assert page.next_cursor is None


async def test_budget_headers_slow_the_client_before_any_429(session: aiohttp.ClientSession) -> None:
    async with FakeSalla() as store:
        for _ in range(8):
            store.add_order()
        store.throttle(limit=4, window=1.0)
        orders = await pull_all(client_for(store, session))
        assert len(orders) == 8
        assert store.too_many == 0


async def test_429_carries_retry_after_and_the_client_is_not_a_storm(session: aiohttp.ClientSession) -> None:
    async with FakeSalla() as store:
        for _ in range(8):
            store.add_order()
        store.throttle(limit=4, window=1.0, budget_headers=False)
        client = client_for(store, session)
        for _ in range(4):
            await client.list_webhooks()
        with pytest.raises(TransientRemoteError) as caught:  # the list request itself: the engine waits
            await client.fetch_orders(since=LONG_AGO, cursor=None)
        assert caught.value.retry_after is not None
        assert caught.value.retry_after >= 1
        orders = await pull_all(client)  # 9 requests in windows of 4: details wait out their 429s
        assert len(orders) == 8
        assert store.too_many <= 4


async def test_revoked_token_is_auth_revoked_with_salla_reason(session: aiohttp.ClientSession) -> None:
    async with FakeSalla() as store:
        store.add_order()
        store.revoke()
        with pytest.raises(AuthRevoked, match="revoked"):
            await client_for(store, session).fetch_orders(since=LONG_AGO, cursor=None)


async def test_server_error_is_transient_and_bad_json_permanent(session: aiohttp.ClientSession) -> None:
    async with FakeSalla() as store:
        store.add_order()
        client = client_for(store, session)
        store.fail(503, retry_after="7")
        with pytest.raises(TransientRemoteError) as caught:
            await client.fetch_orders(since=LONG_AGO, cursor=None)
        assert caught.value.retry_after == 7
        store.fail_json()
        with pytest.raises(PermanentRemoteError, match="not JSON"):
            await client.fetch_orders(since=LONG_AGO, cursor=None)
        store.fail(404)
        with pytest.raises(PermanentRemoteError):
            await client.list_webhooks()


async def test_webhook_round_trip_and_a_webhook_that_verifies(session: aiohttp.ClientSession) -> None:
    received: list[RawRequest] = []

    async def hook(request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        received.append(RawRequest(body=await request.read(), headers=headers, query=dict(request.query)))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hooks/salla/conn_1", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    address = f"http://{host}:{port}/hooks/salla/conn_1"
    try:
        async with FakeSalla() as store:
            client = client_for(store, session)
            created = [await client.create_webhook(topic=topic, address=address) for topic in client.topics]
            listed = await client.list_webhooks()
            assert {(w.topic, w.address) for w in listed} == {(t, address) for t in client.topics}
            assert {w.platform_id for w in listed} == {w.platform_id for w in created}
            order = store.add_order()
            assert await store.send_webhook("order.status.updated", order) == 200
            connector = get_connector("salla")
            assert connector is not None
            connector.verify(received[0], SECRET)
            [event] = connector.parse(received[0])
            assert event.order is not None
            assert event.order.total_amount == Decimal(115)
            await client.delete_webhook(created[0].platform_id)
            store.remove_webhooks()
            assert await client.list_webhooks() == []
    finally:
        await runner.cleanup()


async def test_normalize_reads_an_api_order(session: aiohttp.ClientSession) -> None:
    async with FakeSalla() as store:
        store.add_order(slug="in_progress")
        client = client_for(store, session)
        [order] = (await client.fetch_orders(since=LONG_AGO, cursor=None)).orders
        normalized = client.normalize(order)
        assert normalized.external_id == str(order["id"])
        assert (normalized.status, normalized.payment_status) == ("preparing", "paid")
        assert normalized.total_amount == Decimal(115)
        assert normalized.delivery_fee == Decimal(15)
        assert [(line.quantity, line.price) for line in normalized.products] == [(2, Decimal(50))]
        assert normalized.customer_phone == "+966501234567"


async def test_an_order_without_updated_at_is_dated_by_its_reading(session: aiohttp.ClientSession) -> None:
    async with FakeSalla() as store:
        order_id = store.add_order()["id"]
        del store.orders[order_id]["updated_at"]  # Salla's documented order object has none
        before = datetime.now(UTC)
        [order] = await pull_all(client_for(store, session), since=datetime.now(UTC) - timedelta(days=1))
        normalized = salla.Client({}, session=session, secret=SECRET).normalize(order)  # any client instance
        assert before <= normalized.source_updated_at <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("settings", "errors"),
    [
        ({}, {}),
        ({"access_token": "tok"}, {}),
        ({"access_token": "tok", "api_base_url": "https://proxy.example:8443"}, {}),
        ({"access_token": ""}, {"access_token": "must be a non-empty string"}),
        ({"access_token": 7}, {"access_token": "must be a non-empty string"}),
        ({"access_token": "tok", "api_base_url": "https://proxy.example/admin"}, {"api_base_url": ...}),
        ({"access_token": "tok", "api_base_url": "ftp://proxy.example"}, {"api_base_url": ...}),
        ({"access_token": "tok", "api_base_url": "https://proxy.example?x=1"}, {"api_base_url": ...}),
    ],
)
def test_settings_errors(settings: dict[str, Any], errors: dict[str, Any]) -> None:
    found = salla.settings_errors(settings)
    assert set(found) == set(errors)
    assert all(expected is ... or found[name] == expected for name, expected in errors.items())


def test_origin_and_credentials() -> None:
    assert salla.api_origin({"access_token": "t"}) == "https://api.salla.dev"
    assert salla.api_origin({"api_base_url": "http://127.0.0.1:9000/"}) == "http://127.0.0.1:9000"
    assert salla.has_credentials({"access_token": "t"})
    assert not salla.has_credentials({})

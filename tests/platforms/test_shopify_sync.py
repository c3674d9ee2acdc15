"""Shopify end to end: the hub subscribes, backfills, takes webhooks, reconciles what they missed.

A real hub (API on a real port, HUB_PUBLIC_URL pointing at it, a live worker with a 1 s reconcile)
against the fake shop of ``tests/fakes/shopify_store.py``, which pages, throttles and signs as
Shopify documents. The outage scenario: some changes arrive by webhook, others never do; in the end the
hub holds every order exactly once in its newest state, and counts only what webhooks missed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub import db as hub_db
from hub.app import create_app
from hub.keys import SETTINGS
from hub.platforms import sync
from hub.platforms.chat_client import pinned_session
from hub.platforms.chat_remote import AuthRevoked
from hub.settings import Settings
from tests.conftest import eventually, running_worker
from tests.fakes.shopify_store import ACCESS_TOKEN, FakeShopify

SECRET = "shpss_connection_app_secret_0001"


@pytest.fixture
async def hub(settings: Settings, db: asyncpg.Connection, free_port: int) -> AsyncIterator[TestClient[Any, Any]]:
    """The app on a known port, with HUB_PUBLIC_URL naming it (so the shop can post to it)."""
    configured = settings.model_copy(
        update={
            "public_url": f"http://127.0.0.1:{free_port}",
            "reconcile_interval_seconds": 1.0,
            "reconcile_overlap_seconds": 30.0,
            "sweep_interval_seconds": 1,
        }
    )
    async with TestClient(TestServer(create_app(configured), host="127.0.0.1", port=free_port)) as client:
        yield client


def _connection(shop: FakeShopify, name: str = "shop") -> dict[str, Any]:
    """``POST /api/v1/connections`` for the fake shop, with its credentials (the hub pulls it)."""
    return {
        "source": "shopify",
        "name": name,
        "secret": SECRET,
        "settings": {
            "shop_domain": shop.shop_domain,
            "access_token": ACCESS_TOKEN,
            "api_version": shop.api_version,
            "api_base_url": shop.base_url,
        },
    }


async def _connect(hub: TestClient[Any, Any], auth: dict[str, str], shop: FakeShopify) -> str:
    resp = await hub.post("/api/v1/connections", json=_connection(shop), headers=auth)
    assert resp.status == 201, await resp.text()
    connection_id: str = (await resp.json())["data"]["id"]
    return connection_id


Pull = Callable[[str], Awaitable[sync.SyncRun]]


@contextlib.asynccontextmanager
async def _puller(settings: Settings, *, public_url: str | None = None) -> AsyncIterator[Pull]:
    """Runs of the engine itself (no worker), on loopback, one pool and session for the test."""
    assert settings.database_url is not None
    options = sync.SyncOptions(public_url=public_url, interval_seconds=600, overlap_seconds=60, allow_loopback=True)
    pool = await hub_db.create_pool(settings.database_url, max_size=2)
    try:
        async with pinned_session(allow_loopback=True) as http:

            async def pull(connection_id: str) -> sync.SyncRun:
                run, _ = await sync.run_sync(pool, connection_id=connection_id, session=http, options=options)
                return run

            yield pull
    finally:
        await pool.close()


async def _orders(db: asyncpg.Connection) -> dict[str, dict[str, Any]]:
    rows = await db.fetch("SELECT external_id, status, total_amount FROM orders WHERE source = 'shopify'")
    return {r["external_id"]: dict(r) for r in rows}


async def _sync(db: asyncpg.Connection, conn_id: str) -> dict[str, Any]:
    value: dict[str, Any] = await db.fetchval("SELECT sync FROM connections WHERE id = $1", conn_id)
    return value


async def test_outage_scenario_ends_with_the_shops_exact_state(
    hub: TestClient[Any, Any], auth: dict[str, str], db: asyncpg.Connection
) -> None:
    settings = hub.app[SETTINGS]
    async with FakeShopify(app_secret=SECRET) as shop:
        history = [shop.add_order() for _ in range(120)]
        resp = await hub.post("/api/v1/connections", json=_connection(shop, "My shop"), headers=auth)
        assert resp.status == 201, await resp.text()
        created = (await resp.json())["data"]
        conn_id = created["id"]
        assert created["settings"]["access_token"] != ACCESS_TOKEN

        async with running_worker(settings):
            # backfill: the store's history, not counted as missed; the subscriptions exist
            await eventually(lambda: _has(db, 120), timeout=30)
            await eventually(lambda: _idle(db, conn_id), timeout=30)
            assert {h["topic"] for h in shop.webhooks.values()} >= {"orders/create", "orders/updated"}
            assert (await _sync(db, conn_id))["orders_missed_by_webhooks"] == 0

            # webhooks that arrive: a new order, an update
            fresh = shop.add_order()
            assert await shop.send_webhook("orders/create", fresh) == [200]
            shop.update_order(history[0]["id"], financial_status="refunded")
            assert await shop.send_webhook("orders/updated", shop.orders[history[0]["id"]]) == [200]
            await eventually(lambda: _has(db, 121), timeout=15)

            # the outage: changes the hub is never told about
            lost = shop.add_order()
            shop.update_order(
                history[1]["id"], cancelled_at=shop.orders[history[1]["id"]]["updated_at"], cancel_reason="customer"
            )
            old_version = dict(shop.orders[history[2]["id"]])
            shop.update_order(history[2]["id"], fulfillment_status="fulfilled")

            async def caught_up() -> bool:
                orders = await _orders(db)
                return str(lost["id"]) in orders and orders[str(history[1]["id"])]["status"] == "cancelled"

            await eventually(caught_up, timeout=20)
            await eventually(lambda: _missed_at_least(db, conn_id, 3), timeout=20)

            # a late webhook carrying an older version does not regress the pulled state
            assert await shop.send_webhook("orders/updated", old_version) == [200]

            # Shopify deleted the subscriptions: the next reconcile makes them again
            shop.remove_webhooks()
            await eventually(lambda: _resubscribed(shop), timeout=20)

    orders = await _orders(db)
    assert len(orders) == 122  # every order exactly once
    row = await db.fetchrow(
        "SELECT fulfillment_status FROM orders WHERE source = 'shopify' AND external_id = $1", str(history[2]["id"])
    )
    assert row is not None
    assert row["fulfillment_status"] == "fulfilled"
    sync = await _sync(db, conn_id)
    assert sync["orders_missed_by_webhooks"] == 3
    subs = await db.fetchval("SELECT subscriptions FROM connections WHERE id = $1", conn_id)
    assert {s["status"] for s in subs} <= {"active", "recreated"}
    resp = await hub.get(f"/api/v1/connections/{conn_id}", headers=auth)
    data = (await resp.json())["data"]
    assert data["sync"]["orders_missed_by_webhooks"] == 3
    assert {s["topic"] for s in data["subscriptions"]} >= {"orders/create", "orders/updated"}


async def _has(db: asyncpg.Connection, n: int) -> bool:
    return len(await _orders(db)) >= n


async def _idle(db: asyncpg.Connection, conn_id: str) -> bool:
    sync = await _sync(db, conn_id)
    return bool(sync.get("state") == "idle" and sync.get("backfilled"))


async def _missed_at_least(db: asyncpg.Connection, conn_id: str, n: int) -> bool:
    return int((await _sync(db, conn_id)).get("orders_missed_by_webhooks", 0)) >= n


async def _resubscribed(shop: FakeShopify) -> bool:
    return {h["topic"] for h in shop.webhooks.values()} >= {"orders/create", "orders/updated"}


async def test_throttled_shop_is_waited_for_and_a_revoked_token_needs_attention(
    hub: TestClient[Any, Any], auth: dict[str, str], db: asyncpg.Connection, settings: Settings
) -> None:

    async with FakeShopify(app_secret=SECRET) as shop:
        for _ in range(600):  # three pages of 250
            shop.add_order()
        conn_id = await _connect(hub, auth, shop)
        shop.use_calls(39)  # another app of the shop just used the bucket
        async with _puller(settings) as pull:
            run = await pull(conn_id)
            assert run.orders_seen == 600
            assert shop.throttled_count <= 1  # waited for the bucket, no 429 storm
            shop.revoke()
            with pytest.raises(AuthRevoked):
                await pull(conn_id)
    data = (await (await hub.get(f"/api/v1/connections/{conn_id}", headers=auth)).json())["data"]
    assert data["sync"]["state"] == "needs_attention"
    assert "Invalid API key" in data["sync"]["last_error"]
    assert data["sync"]["subscription_error"]  # no HUB_PUBLIC_URL in this run's options: said, not guessed


async def test_partial_or_unsafe_credentials_are_refused_at_creation(
    hub: TestClient[Any, Any], auth: dict[str, str]
) -> None:
    partial = {"source": "shopify", "name": "x", "secret": SECRET, "settings": {"access_token": ACCESS_TOKEN}}
    resp = await hub.post("/api/v1/connections", json=partial, headers=auth)
    assert resp.status == 422
    assert "shop_domain" in str((await resp.json())["details"])
    unsafe = {
        "source": "shopify",
        "name": "x",
        "secret": SECRET,
        "settings": {
            "shop_domain": "a.myshopify.com",
            "access_token": ACCESS_TOKEN,
            "api_base_url": "http://169.254.169.254",
        },
    }
    resp = await hub.post("/api/v1/connections", json=unsafe, headers=auth)
    assert resp.status == 422
    assert "api_base_url" in str((await resp.json())["details"])


async def test_a_refused_subscription_never_stops_the_backfill(
    hub: TestClient[Any, Any], auth: dict[str, str], db: asyncpg.Connection, settings: Settings
) -> None:

    async with FakeShopify(app_secret=SECRET) as shop:
        for _ in range(30):
            shop.add_order()
        conn_id = await _connect(hub, auth, shop)
        shop.fail(404, body=b'{"errors":"Not Found"}')  # the webhooks list answers 404 once
        async with _puller(settings, public_url="http://127.0.0.1:9") as pull:
            run = await pull(conn_id)
    assert run.created == 30
    sync_row = await db.fetchval("SELECT sync FROM connections WHERE id = $1", conn_id)
    assert sync_row["state"] == "idle"
    assert "404" in sync_row["subscription_error"]


async def test_an_unreadable_pulled_order_is_kept_as_a_webhook_that_a_retry_parses_again(
    hub: TestClient[Any, Any], auth: dict[str, str], db: asyncpg.Connection, settings: Settings
) -> None:

    async with FakeShopify(app_secret=SECRET) as shop:
        shop.add_order()
        broken = shop.add_order()
        broken["line_items"] = "not a list"  # an answer the docs do not describe
        conn_id = await _connect(hub, auth, shop)
        async with _puller(settings) as pull:
            run = await pull(conn_id)
    assert (run.created, run.failed) == (1, 1)
    event = await db.fetchrow("SELECT id, topic, error, headers FROM inbound_events WHERE status = 'failed'")
    assert event is not None
    assert event["topic"] == "orders/updated"
    assert event["headers"]["x-shopify-topic"] == "orders/updated"
    assert "line_items" in event["error"]
    resp = await hub.post(f"/api/v1/inbound-events/{event['id']}/retry", headers=auth)
    assert resp.status == 202
    async with running_worker(settings):

        async def failed_again() -> bool:
            row = await db.fetchrow("SELECT status, attempts, error FROM inbound_events WHERE id = $1", event["id"])
            return row is not None and row["status"] == "failed" and row["attempts"] >= 2

        await eventually(failed_again, timeout=15)
    error = await db.fetchval("SELECT error FROM inbound_events WHERE id = $1", event["id"])
    assert "line_items" in error  # parsed as a Shopify webhook again: the same reason, not "no topic"

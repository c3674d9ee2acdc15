"""WooCommerce end to end: the webhook the hub registers carries the connection's secret, so the
store's deliveries verify; a throttling host in front of the store is waited for; pulls fill the gaps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub import db as hub_db
from hub.app import create_app
from hub.platforms import sync
from hub.platforms.chat_client import pinned_session
from hub.settings import Settings
from tests.fakes.woocommerce_store import CONSUMER_KEY, CONSUMER_SECRET, FakeWooCommerce

SECRET = "woo_connection_secret_00000001"


@pytest.fixture
async def hub(settings: Settings, db: asyncpg.Connection, free_port: int) -> AsyncIterator[TestClient[Any, Any]]:
    configured = settings.model_copy(update={"public_url": f"http://127.0.0.1:{free_port}"})
    async with TestClient(TestServer(create_app(configured), host="127.0.0.1", port=free_port)) as client:
        yield client


async def test_subscribed_store_deliveries_verify_and_pulls_fill_the_gaps(
    hub: TestClient[Any, Any], auth: dict[str, str], db: asyncpg.Connection, settings: Settings, free_port: int
) -> None:
    async with FakeWooCommerce() as store:
        first = [store.add_order() for _ in range(150)]
        body = {
            "source": "woocommerce",
            "name": "My Woo store",
            "secret": SECRET,
            "settings": {"store_url": store.base_url, "consumer_key": CONSUMER_KEY, "consumer_secret": CONSUMER_SECRET},
        }
        resp = await hub.post("/api/v1/connections", json=body, headers=auth)
        assert resp.status == 201, await resp.text()
        conn_id = (await resp.json())["data"]["id"]
        assert settings.database_url is not None
        pool = await hub_db.create_pool(settings.database_url, max_size=2)
        options = sync.SyncOptions(public_url=f"http://127.0.0.1:{free_port}", interval_seconds=600, overlap_seconds=60)
        try:
            async with pinned_session(allow_loopback=True) as http:
                store.throttle(4, per_seconds=0.5)
                run, _ = await sync.run_sync(pool, connection_id=conn_id, session=http, options=options)
                assert (run.mode, run.orders_seen, run.created) == ("backfill", 150, 150)
                assert set(store.webhook_secrets.values()) == {SECRET}
                # the store's own delivery, signed with the secret the hub registered, verifies
                store.update_order(first[0]["id"], status="completed")
                statuses = await store.send_webhook("order.updated", store.orders[first[0]["id"]])
                assert statuses
                assert all(s in (200, 202) for s in statuses)
                # a change without a webhook arrives by the next pass
                store.update_order(first[1]["id"], status="cancelled")
                again, _ = await sync.run_sync(pool, connection_id=conn_id, session=http, options=options)
                assert again.missed >= 1
        finally:
            await pool.close()
    status = await db.fetchval(
        "SELECT status FROM orders WHERE source = 'woocommerce' AND external_id = $1", str(first[1]["id"])
    )
    assert status == "cancelled"
    assert await db.fetchval("SELECT count(*) FROM orders WHERE source = 'woocommerce'") == 150

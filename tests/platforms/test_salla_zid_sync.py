"""Salla and Zid through the engine: subscribe with the hub's URL, backfill, a webhook that verifies,
a change without a webhook found by the next pass, and a revoked token that needs attention."""

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
from hub.platforms.chat_remote import AuthRevoked
from hub.settings import Settings
from tests.fakes import salla_store, zid_store

SECRET = "platform_connection_secret_01"


@pytest.fixture
async def hub(settings: Settings, db: asyncpg.Connection, free_port: int) -> AsyncIterator[TestClient[Any, Any]]:
    configured = settings.model_copy(update={"public_url": f"http://127.0.0.1:{free_port}"})
    async with TestClient(TestServer(create_app(configured), host="127.0.0.1", port=free_port)) as client:
        yield client


async def _create(hub: TestClient[Any, Any], auth: dict[str, str], source: str, settings: dict[str, str]) -> str:
    body = {"source": source, "name": f"{source} store", "secret": SECRET, "settings": settings}
    resp = await hub.post("/api/v1/connections", json=body, headers=auth)
    assert resp.status == 201, await resp.text()
    connection_id: str = (await resp.json())["data"]["id"]
    return connection_id


@pytest.mark.parametrize("source", ["salla", "zid"])
async def test_platform_through_the_engine(
    source: str,
    hub: TestClient[Any, Any],
    auth: dict[str, str],
    db: asyncpg.Connection,
    settings: Settings,
    free_port: int,
) -> None:
    fake: Any = salla_store.FakeSalla() if source == "salla" else zid_store.FakeZid()
    async with fake as store:
        orders = [store.add_order() for _ in range(70)]
        if source == "salla":
            creds = {"access_token": salla_store.TOKEN, "api_base_url": store.origin}
        else:
            creds = {
                "authorization": zid_store.AUTHORIZATION,
                "manager_token": zid_store.MANAGER_TOKEN,
                "api_base_url": store.origin,
            }
        conn_id = await _create(hub, auth, source, creds)
        assert settings.database_url is not None
        pool = await hub_db.create_pool(settings.database_url, max_size=2)
        options = sync.SyncOptions(public_url=f"http://127.0.0.1:{free_port}", interval_seconds=600, overlap_seconds=60)
        try:
            async with pinned_session(allow_loopback=True) as http:
                run, _ = await sync.run_sync(pool, connection_id=conn_id, session=http, options=options)
                assert (run.mode, run.created) == ("backfill", 70)
                subs = await db.fetchval("SELECT subscriptions FROM connections WHERE id = $1", conn_id)
                assert subs
                assert all(s["status"] == "created" for s in subs)
                status = await store.send_webhook(next(iter(_topics(source))), orders[0])
                assert status in (200, 202)
                store.update_order(orders[1]["id"], status=_cancelled(source))
                again, _ = await sync.run_sync(pool, connection_id=conn_id, session=http, options=options)
                assert again.missed >= 1
                store.revoke()
                with pytest.raises(AuthRevoked):
                    await sync.run_sync(pool, connection_id=conn_id, session=http, options=options)
        finally:
            await pool.close()
    assert await db.fetchval("SELECT count(*) FROM orders WHERE source = $1", source) == 70
    status = await db.fetchval(
        "SELECT status FROM orders WHERE source = $1 AND external_id = $2", source, str(orders[1]["id"])
    )
    assert status == "cancelled"
    state = await db.fetchval("SELECT sync->>'state' FROM connections WHERE id = $1", conn_id)
    assert state == "needs_attention"


def _topics(source: str) -> list[str]:
    return ["order.updated"] if source == "salla" else ["order.status.update"]


def _cancelled(source: str) -> str:
    return "canceled" if source == "salla" else "cancelled"

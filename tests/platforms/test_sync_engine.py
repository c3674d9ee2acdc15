"""The pull-sync engine end to end on real Postgres, against a fake remote on a real port.

The chat agent's remote is the engine's simplest client (no webhook registration); the platform
fakes (Shopify, WooCommerce, Salla, Zid) drive the same engine in their own test modules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from hub import db as hub_db
from hub.platforms import sync
from hub.platforms.chat_client import pinned_session
from hub.platforms.chat_remote import AuthRevoked, SyncNotPossible
from hub.settings import Settings
from tests.fakes.chat_agent_server import API_KEY, FakeChatAgent, make_order


@pytest.fixture
async def pool(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[asyncpg.Pool]:
    assert settings.database_url is not None
    created = await hub_db.create_pool(settings.database_url, max_size=4)
    yield created
    await created.close()


async def _no_wait(_seconds: float) -> None:
    return None


OPTIONS = sync.SyncOptions(
    public_url="http://hub.test", interval_seconds=600, overlap_seconds=60, sleep=_no_wait, allow_loopback=True
)


async def _create(client: TestClient[Any, Any], auth: dict[str, str], base_url: str) -> dict[str, Any]:
    resp = await client.post(
        "/api/v1/connections",
        json={"source": "chat_agent", "name": "agent", "settings": {"base_url": base_url, "api_key": API_KEY}},
        headers=auth,
    )
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = (await resp.json())["data"]
    return data


async def _run(pool: asyncpg.Pool, connection_id: str, **kw: Any) -> sync.SyncRun:
    async with pinned_session(allow_loopback=True) as http:
        run, _ = await sync.run_sync(pool, connection_id=connection_id, session=http, options=OPTIONS, **kw)
    return run


async def _get(client: TestClient[Any, Any], auth: dict[str, str], connection_id: str) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/connections/{connection_id}", headers=auth)
    assert resp.status == 200
    data: dict[str, Any] = (await resp.json())["data"]
    return data


async def test_backfill_then_reconcile_counts_only_what_webhooks_missed(
    client: TestClient[Any, Any], auth: dict[str, str], pool: asyncpg.Pool
) -> None:
    async with FakeChatAgent(orders=[make_order(n) for n in range(1, 251)]) as fake:
        conn = await _create(client, auth, fake.base_url)
        assert conn["sync"]["pull"] is True
        assert conn["sync"]["state"] == "idle"
        assert conn["settings"]["api_key"] != API_KEY  # masked

        first = await _run(pool, conn["id"])
        assert (first.mode, first.orders_seen, first.created, first.missed) == ("backfill", 250, 250, 0)

        # two changes on the remote that no webhook told the hub about
        later = (datetime.now(UTC) + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        fake.orders[0]["status"], fake.orders[0]["updated_at"] = "confirmed", later
        fake.orders.append(make_order(999, created=datetime.now(UTC)))
        second = await _run(pool, conn["id"])
        assert second.mode == "reconcile"
        assert (second.created, second.changed, second.missed) == (1, 1, 2)

        third = await _run(pool, conn["id"])  # nothing new: nothing missed
        assert third.missed == 0

    data = await _get(client, auth, conn["id"])
    assert data["sync"]["state"] == "idle"
    assert data["sync"]["orders_missed_by_webhooks"] == 2
    assert data["sync"]["orders_seen"] > 251  # the reconciles re-read what changed since their cursor
    assert data["sync"]["cursor"].endswith("Z")
    assert data["sync"]["last_synced_at"].endswith("Z")
    assert data["subscriptions"] == []
    resp = await client.get("/api/v1/orders?source=chat_agent&external_id=999", headers=auth)
    assert (await resp.json())["meta"]["total"] == 1

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(await (await client.get("/metrics")).text())
        for s in family.samples
    }
    assert samples[("hub_reconcile_missed_total", (("source", "chat_agent"),))] == 2
    assert samples[("hub_reconcile_missed_total", (("source", "shopify"),))] == 0
    assert samples[("hub_connections", (("source", "chat_agent"), ("state", "idle")))] == 1


async def test_revoked_key_needs_attention_and_tells_subscribers(
    client: TestClient[Any, Any], auth: dict[str, str], pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    resp = await client.post(
        "/api/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "event_types": ["connection.*"]},
        headers=auth,
    )
    assert resp.status == 201, await resp.text()
    async with FakeChatAgent(orders=[make_order(1)]) as fake:
        conn = await _create(client, auth, fake.base_url)
        fake.api_key = "revoked"
        with pytest.raises(AuthRevoked):
            await _run(pool, conn["id"])
        with pytest.raises(AuthRevoked):  # again: still one event
            await _run(pool, conn["id"])
    data = await _get(client, auth, conn["id"])
    assert data["sync"]["state"] == "needs_attention"
    assert "401" in data["sync"]["last_error"]
    events = await db.fetch("SELECT type, payload FROM order_events WHERE type = 'connection.needs_attention'")
    assert len(events) == 1
    assert events[0]["payload"]["data"]["connection"]["id"] == conn["id"]
    assert await db.fetchval("SELECT count(*) FROM deliveries WHERE event_type = 'connection.needs_attention'") == 1
    due = await db.fetchval("SELECT sync_next_at FROM connections WHERE id = $1", conn["id"])
    assert due is None  # not retried until asked

    resp = await client.post(f"/api/v1/connections/{conn['id']}/sync", headers=auth)
    assert resp.status == 202
    assert (await resp.json())["data"]["sync"]["state"] == "idle"


async def test_one_sync_per_connection(client: TestClient[Any, Any], auth: dict[str, str], pool: asyncpg.Pool) -> None:
    async with FakeChatAgent(orders=[make_order(1)]) as fake:
        conn = await _create(client, auth, fake.base_url)
        async with pool.acquire() as holder:
            await holder.execute("SELECT pg_advisory_lock($1)", sync.lock_key(conn["id"]))
            with pytest.raises(SyncNotPossible, match="already running"):
                await _run(pool, conn["id"])
            await holder.execute("SELECT pg_advisory_unlock($1)", sync.lock_key(conn["id"]))


async def test_credentials_and_sync_route_errors(client: TestClient[Any, Any], auth: dict[str, str]) -> None:
    resp = await client.post(
        "/api/v1/connections",
        json={"source": "chat_agent", "name": "agent", "settings": {"api_key": "k"}},
        headers=auth,
    )
    assert resp.status == 422
    assert "base_url" in str((await resp.json())["details"])
    resp = await client.post(
        "/api/v1/connections",
        json={"source": "salla", "name": "hooks only", "secret": "s" * 20},
        headers=auth,
    )
    assert resp.status == 201
    conn_id = (await resp.json())["data"]["id"]
    resp = await client.post(f"/api/v1/connections/{conn_id}/sync", headers=auth)
    assert resp.status == 422  # webhook-only
    resp = await client.post(f"/api/v1/connections/{conn_id}/sync", headers=auth, data=b"{not json")
    assert resp.status in (400, 422)
    resp = await client.post("/api/v1/connections/conn_nope/sync", headers=auth)
    assert resp.status == 404


async def test_ops_summary_and_hub_status_show_each_pulled_connection(
    client: TestClient[Any, Any], auth: dict[str, str], pool: asyncpg.Pool, settings: Settings
) -> None:
    from hub import queue
    from hub.cli.status import connection_lines
    from hub.ops.actions import summary

    async with FakeChatAgent(orders=[make_order(1)]) as fake:
        conn = await _create(client, auth, fake.base_url)
        fake.api_key = "revoked"
        with pytest.raises(AuthRevoked):
            await _run(pool, conn["id"])
    assert settings.redis_url is not None
    redis = await queue.connect(settings.redis_url)
    try:
        found = await summary(pool, redis, max_age=0)
    finally:
        await redis.aclose()
    [line] = [c for c in found.connections if c.id == conn["id"]]
    assert line.state == "needs_attention"
    assert "401" in (line.last_error or "")
    text = "\n".join(str(t) for t in connection_lines(found))
    assert conn["id"] in text
    assert "needs_attention" in text


def test_start_point_prefers_since_then_cursor_then_the_last_sync_then_30_days() -> None:
    from hub.platforms.targets import Target

    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    base = Target(
        id="conn_x",
        organization_id="org_x",
        source="chat_agent",
        name="a",
        secret="s",
        settings={},
        sync={},
        subscriptions=[],
        default_currency="SAR",
    )
    assert sync.start_point(base, now=now, since=None, overlap=60) == now - timedelta(days=30)
    synced_before = replace(base, last_synced_at=now - timedelta(days=90))
    assert sync.start_point(synced_before, now=now, since=None, overlap=60) == now - timedelta(days=90, seconds=60)
    with_cursor = replace(synced_before, sync={"cursor": "2026-12-06T11:00:00Z"})
    assert sync.start_point(with_cursor, now=now, since=None, overlap=60) == now - timedelta(hours=1, seconds=60)
    asked = now - timedelta(days=400)
    assert sync.start_point(with_cursor, now=now, since=asked, overlap=60) == asked

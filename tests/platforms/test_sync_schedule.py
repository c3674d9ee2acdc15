"""The pull sync as the worker runs it: the creation's job backfills, the sweeper schedules reconciles.

A live worker (the production one, in the test's loop) with a 1 s reconcile interval and a 1 s sweep:
a change made on the remote without any webhook reaches the hub by the next reconcile, by itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from hub.settings import Settings
from tests.conftest import eventually, running_worker
from tests.fakes.chat_agent_server import API_KEY, FakeChatAgent, make_order


async def test_created_connection_backfills_and_reconciles_by_itself(
    client: TestClient[Any, Any], auth: dict[str, str], settings: Settings, db: asyncpg.Connection
) -> None:
    fast = settings.model_copy(update={"reconcile_interval_seconds": 1.0, "sweep_interval_seconds": 1})
    async with FakeChatAgent(orders=[make_order(n) for n in range(1, 31)]) as fake:
        resp = await client.post(
            "/api/v1/connections",
            json={"source": "chat_agent", "name": "agent", "settings": {"base_url": fake.base_url, "api_key": API_KEY}},
            headers=auth,
        )
        assert resp.status == 201
        conn_id = (await resp.json())["data"]["id"]

        async def count() -> int:
            n: int = await db.fetchval("SELECT count(*) FROM orders WHERE source = 'chat_agent'")
            return n

        async with running_worker(fast):
            await eventually(lambda: _equals(count, 30), timeout=20)
            later = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
            fake.orders[0]["status"], fake.orders[0]["updated_at"] = "confirmed", later

            async def missed() -> bool:
                sync = await db.fetchval("SELECT sync FROM connections WHERE id = $1", conn_id)
                return bool(sync.get("orders_missed_by_webhooks", 0) >= 1 and sync.get("state") == "idle")

            await eventually(missed, timeout=20)
        status = await db.fetchval(
            "SELECT status FROM orders WHERE source = 'chat_agent' AND external_id = $1", str(fake.orders[0]["id"])
        )
        assert status == "confirmed"


async def _equals(check: Any, expected: int) -> bool:
    return bool(await check() == expected)

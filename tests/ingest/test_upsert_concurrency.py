"""Two batches upserting the same new order at once: the second waits for the first's lock, then sees its row."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from connectors.base import NormalizedOrder
from hub import db as hub_db
from hub.orders.upsert import upsert_orders
from hub.settings import Settings
from tests.conftest import eventually


def _order(minute: int, status: str) -> NormalizedOrder:
    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC) + timedelta(minutes=minute)
    return NormalizedOrder(source="salla", external_id="race-1", source_updated_at=at, status=status)


async def test_a_batch_waiting_on_an_order_lock_updates_the_order_the_other_batch_inserted(
    settings: Settings, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    org = await db.fetchval("SELECT id FROM organizations WHERE name = 'acme' AND NOT is_test")
    assert settings.database_url is not None
    pool = await hub_db.create_pool(settings.database_url, max_size=2)
    try:
        async with pool.acquire() as first, pool.acquire() as second:
            tx = first.transaction()
            await tx.start()
            created = await upsert_orders(first, organization_id=org, orders=[_order(0, "pending")])
            assert created.created == 1

            async def later_batch() -> int:
                async with second.transaction():
                    result = await upsert_orders(second, organization_id=org, orders=[_order(5, "confirmed")])
                    return result.updated

            waiting = asyncio.create_task(later_batch())
            pid = second.get_server_pid()

            async def blocked() -> bool:  # Postgres says the second batch waits on a lock
                kind: str | None = await db.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
                return kind == "Lock"

            await eventually(blocked, interval=0.01)
            assert not waiting.done()  # blocked on the order's advisory lock
            await tx.commit()
            assert await asyncio.wait_for(waiting, 10) == 1  # an update of the committed row, not a second insert
    finally:
        await pool.close()
    rows = await db.fetch("SELECT status FROM orders WHERE external_id = 'race-1'")
    assert [r["status"] for r in rows] == ["confirmed"]

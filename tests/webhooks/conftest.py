"""Fixtures and helpers for the outbound-webhook tests: a fake receiver, events through the outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from arq.connections import ArqRedis
from standardwebhooks import Webhook

from hub import db as hub_db
from hub import queue
from hub.delivery.outbox import NewEvent, record_events
from hub.queue import wake_deliveries
from hub.settings import Settings
from tests.fakes.receiver import Received, Receiver
from tests.helpers.worker import running_worker

__all__ = ["running_worker"]

Client = TestClient[Any, Any]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A fake merchant receiver on 127.0.0.1."""
    async with Receiver() as instance:
        yield instance


@pytest.fixture
async def pool(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool with the app's JSON codecs (as the API and workers use)."""
    assert settings.database_url is not None
    instance = await hub_db.create_pool(settings.database_url, max_size=5)
    yield instance
    await instance.close()


@pytest.fixture
async def arq_redis(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[ArqRedis]:
    """The queue's Redis, as the API holds it."""
    assert settings.redis_url is not None
    instance = await queue.connect(settings.redis_url)
    yield instance
    await instance.aclose()


async def create_webhook(client: Client, auth: dict[str, str], url: str, **fields: Any) -> dict[str, Any]:
    """Register an endpoint through the API; return ``data`` of the 201 answer."""
    body = {"url": url, "event_types": ["order.*"], **fields}
    response = await client.post("/api/v1/webhooks", json=body, headers=auth)
    assert response.status == 201, await response.text()
    data: dict[str, Any] = (await response.json())["data"]
    return data


async def org_of(pool: asyncpg.Pool, webhook_id: str) -> str:
    """The organization owning an endpoint."""
    org: str = await pool.fetchval("SELECT organization_id FROM webhook_endpoints WHERE id = $1", webhook_id)
    return org


def sample_order(order_id: str, org: str, *, source: str = "api", status: str = "pending") -> dict[str, Any]:
    """A small order public view (what the outbox stores as ``data.order``)."""
    return {
        "id": order_id,
        "organization_id": org,
        "source": source,
        "status": status,
        "total_amount": 115.5,
        "currency": "SAR",
        "customer_name": "Nora Al-Saud",
        "products": [{"sku": "A-1", "name": "Dates box", "quantity": 1, "price": 115.5, "total": 115.5}],
    }


async def emit(
    pool: asyncpg.Pool,
    redis: ArqRedis | None,
    org: str,
    *types: str,
    source: str = "api",
    order_id: str = "ord_test_1",
) -> list[str]:
    """Record events in one transaction as the services do, then wake the worker (if ``redis``)."""
    events = [NewEvent(org, order_id, source, t, sample_order(order_id, org, source=source)) for t in types]
    async with pool.acquire() as conn, conn.transaction():
        ids = await record_events(conn, events)
    if redis is not None:
        await wake_deliveries(redis, ids)
    return ids


def verify(secret: str, request: Received) -> Any:
    """Verify a received webhook with the Standard Webhooks reference library; return the payload."""
    return Webhook(secret).verify(request.body, request.headers)


async def statuses(pool: asyncpg.Pool, endpoint_id: str) -> list[str]:
    """The endpoint's delivery statuses, oldest first."""
    rows = await pool.fetch("SELECT status FROM deliveries WHERE endpoint_id = $1 ORDER BY created, id", endpoint_id)
    return [row["status"] for row in rows]


async def attempts(pool: asyncpg.Pool, delivery_id: str) -> list[asyncpg.Record]:
    """A delivery's attempts, in order."""
    return list(
        await pool.fetch("SELECT * FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt_no, id", delivery_id)
    )

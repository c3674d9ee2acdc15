"""Ingested and API orders are written alike: Z timestamps, versions, capped clocks, the API's safety rules."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from hub.settings import Settings
from tests.api.order_helpers import call
from tests.conftest import data_path, eventually, running_worker

Client = TestClient[Any, Any]
SECRET = "salla-webhook-secret-for-tests"
_CREATED: dict[str, Any] = json.loads(data_path("connectors", "payloads", "salla_order_created.json").read_bytes())


@pytest.fixture
async def skew_worker(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[Any]:
    """A worker as the checks run it: source clocks may be at most 1 s ahead of receipt."""
    async with running_worker(settings.model_copy(update={"source_clock_skew_seconds": 1})) as instance:
        yield instance


async def _connection(db: asyncpg.Connection) -> str:
    org = await db.fetchval("SELECT id FROM organizations WHERE name = 'acme' AND NOT is_test")
    await db.execute(
        "INSERT INTO connections (id, organization_id, source, name, secret, settings, created) "
        "VALUES ('conn_test_salla', $1, 'salla', 'test', $2, '{}'::jsonb, now())",
        org,
        SECRET,
    )
    return "conn_test_salla"


def _event(updated_at: str | None = None, **data: Any) -> dict[str, Any]:
    event = copy.deepcopy(_CREATED)
    event["data"].update(data)
    if updated_at is not None:
        event["data"]["updated_at"] = {"date": updated_at, "timezone_type": 3, "timezone": "UTC"}
    return event


async def _send(client: Client, db: asyncpg.Connection, conn_id: str, event: dict[str, Any]) -> asyncpg.Record:
    body = json.dumps(event).encode()
    headers = {
        "X-Salla-Signature": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
        "X-Salla-Security-Strategy": "Signature",
        "Content-Type": "application/json",
    }
    resp = await client.post(f"/hooks/salla/{conn_id}", data=body, headers=headers)
    assert resp.status in (200, 202), await resp.text()
    event_id = (await resp.json())["data"]["id"]

    async def done() -> Any:
        return await db.fetchrow("SELECT * FROM inbound_events WHERE id = $1 AND status <> 'received'", event_id)

    stored: asyncpg.Record = await eventually(done)
    return stored


async def _the_order(db: asyncpg.Connection) -> asyncpg.Record:
    order = await db.fetchrow("SELECT * FROM orders")
    assert order is not None
    return order


def _now(offset: str = "") -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") + offset


async def test_ingested_and_api_orders_share_the_timestamp_format_in_answers_and_payloads(
    client: Client, db: asyncpg.Connection, auth: dict[str, str], skew_worker: Any
) -> None:
    conn_id = await _connection(db)
    assert (await _send(client, db, conn_id, _event()))["status"] == "processed"
    made = await call(client, "POST", "/api/v1/orders", auth, 201, json={"customer_name": "A", "products": [_line()]})
    ingested_id = await db.fetchval("SELECT id FROM orders WHERE source = 'salla'")
    ingested = (await call(client, "GET", f"/api/v1/orders/{ingested_id}", auth, 200))["data"]
    for order in (ingested, made["data"]):
        assert order["status_history"], order
        assert all(entry["at"].endswith("Z") for entry in order["status_history"]), order["status_history"]
        assert order["created"].endswith("Z")
        assert order["updated"].endswith("Z")
        assert order["version"] == 1
    stored = await db.fetchval("SELECT status_history FROM orders WHERE id = $1", ingested_id)
    assert all(entry["at"].endswith("Z") for entry in stored)  # stored as shown, not only rendered
    for payload in [r["payload"] for r in await db.fetch("SELECT payload FROM order_events")]:
        order = payload["data"]["order"]
        assert all(entry["at"].endswith("Z") for entry in order["status_history"]), order
        assert order["version"] == 1


def _line() -> dict[str, Any]:
    return {"name": "Tea", "price": "10.00", "quantity": 1}


async def test_every_stored_change_of_an_ingested_order_adds_one_to_its_version(
    client: Client, db: asyncpg.Connection, auth: dict[str, str], skew_worker: Any
) -> None:
    conn_id = await _connection(db)
    await _send(client, db, conn_id, _event(updated_at="2024-03-10 11:00:00"))
    shipped = _event(updated_at="2024-03-10 12:00:00", status={"slug": "shipped", "name": "shipped"})
    await _send(client, db, conn_id, shipped)
    stale = await _send(client, db, conn_id, _event(updated_at="2024-03-10 11:30:00"))
    order = await _the_order(db)
    assert order["version"] == 2  # created, shipped; the older restatement changed nothing
    assert stale["status"] == "processed"
    assert stale["error"] == ("skipped: stale (event clock 2024-03-10T11:30:00Z, order clock 2024-03-10T12:00:00Z)")
    payloads = [r["payload"] for r in await db.fetch("SELECT payload FROM order_events ORDER BY created, id")]
    assert [p["data"]["order"]["version"] for p in payloads] == [1] + [2] * (len(payloads) - 1)
    api = await call(client, "PUT", f"/api/v1/orders/{order['id']}", auth, 200, json={"notes": "merchant note"})
    assert api["data"]["version"] == 3
    again = await call(client, "PUT", f"/api/v1/orders/{order['id']}", auth, 200, json={"notes": "merchant note"})
    assert again["data"]["version"] == 3  # nothing stored, nothing counted


async def test_a_source_clock_from_the_future_cannot_freeze_the_order(
    client: Client, db: asyncpg.Connection, auth: dict[str, str], skew_worker: Any
) -> None:
    conn_id = await _connection(db)
    first = await _send(client, db, conn_id, _event(updated_at="9999-12-30 00:00:00"))
    assert first["status"] == "processed"
    order = await _the_order(db)
    assert order["source_updated_at"] < datetime(9999, 1, 1, tzinfo=UTC)
    assert [a["code"] for a in order["anomalies"]] == ["source_clock_capped"]
    cancel = _event(updated_at=_now(), status={"slug": "canceled", "name": "canceled"})
    for _ in range(40):  # a later receipt is past the capped clock once the 1 s skew has passed
        done = await _send(client, db, conn_id, cancel)
        if await db.fetchval("SELECT status FROM orders") == "cancelled":
            break
        assert done["error"].startswith("skipped: stale"), done["error"]
        await asyncio.sleep(0.1)
        cancel = _event(updated_at=_now(), status={"slug": "canceled", "name": "canceled"})
    assert await db.fetchval("SELECT status FROM orders") == "cancelled"
    shown = (await call(client, "GET", f"/api/v1/orders/{order['id']}", auth, 200))["data"]
    assert shown["anomalies"][0]["code"] == "source_clock_capped"


async def test_ingest_refuses_what_the_api_refuses_and_flags_negative_totals(
    client: Client, db: asyncpg.Connection, auth: dict[str, str], skew_worker: Any
) -> None:
    conn_id = await _connection(db)
    item = _CREATED["data"]["items"][0]
    too_many = _event(items=[dict(item, id=i) for i in range(501)])
    failed = await _send(client, db, conn_id, too_many)
    assert failed["status"] == "failed"
    assert "at most 500" in failed["error"]
    long_name = _event(id=1, items=[dict(item, name="x" * 201)])
    failed = await _send(client, db, conn_id, long_name)
    assert failed["status"] == "failed"
    assert "longer than 200" in failed["error"]
    bad_currency = _event(id=2, currency="ABC")
    failed = await _send(client, db, conn_id, bad_currency)
    assert failed["status"] == "failed"
    assert "ISO 4217" in failed["error"]
    assert await db.fetchval("SELECT count(*) FROM orders") == 0  # never a partial order

    negative = _event(id=3)
    negative["data"]["amounts"]["total"] = {"amount": -5, "currency": "SAR"}
    assert (await _send(client, db, conn_id, negative))["status"] == "processed"
    order = (await call(client, "GET", "/api/v1/orders", auth, 200))["data"][0]
    assert order["total_amount"] == -5  # kept as the platform stated it
    assert [a["code"] for a in order["anomalies"]] == ["negative_amount"]

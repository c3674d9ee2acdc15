"""Platform webhook → durable raw event → arq worker → upserted order + outbox, end to end."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from hub.keys import SETTINGS
from hub.settings import Settings
from tests.factories import make_connection, signed_headers
from tests.helpers.files import data_path
from tests.helpers.polling import eventually

Client = TestClient[Any, Any]
SECRET = "salla-webhook-secret"


async def _connection(settings: Settings, db: asyncpg.Connection, source: str = "salla", secret: str = SECRET) -> str:
    org = await db.fetchval("SELECT id FROM organizations WHERE name = 'acme' AND NOT is_test")
    return (await make_connection(settings, organization_id=org, source=source, secret=secret)).id


def _salla(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return signed_headers("salla", body, secret)


def _payload(name: str) -> bytes:
    return data_path("connectors", "payloads", name).read_bytes()


async def test_signed_salla_webhook_becomes_one_order(
    client: Client, settings: Settings, db: asyncpg.Connection, auth: dict[str, str], worker: Any
) -> None:
    conn_id = await _connection(settings, db)
    body = _payload("salla_order_created.json")
    resp = await client.post(f"/hooks/salla/{conn_id}", data=body, headers=_salla(body))
    assert resp.status == 200, await resp.text()
    accepted = (await resp.json())["data"]
    assert accepted["duplicate"] is False

    async def processed() -> Any:
        return await db.fetchval(
            "SELECT status FROM inbound_events WHERE id = $1 AND status <> 'received'", accepted["id"]
        )

    assert await eventually(processed) == "processed"
    external_id = str(json.loads(body)["data"]["id"])
    orders = await db.fetch("SELECT * FROM orders WHERE source = 'salla' AND external_id = $1", external_id)
    assert len(orders) == 1
    events = await db.fetch("SELECT type FROM order_events WHERE order_id = $1", orders[0]["id"])
    assert [e["type"] for e in events] == ["order.created"]

    # the platform retries the same delivery: stored once, still one order
    again = await client.post(f"/hooks/salla/{conn_id}", data=body, headers=_salla(body))
    assert again.status == 200
    assert (await again.json())["data"] == {"id": accepted["id"], "duplicate": True}
    assert await db.fetchval("SELECT count(*) FROM inbound_events") == 1
    assert await db.fetchval("SELECT count(*) FROM orders") == 1


async def test_status_update_after_create_moves_the_status(
    client: Client, settings: Settings, db: asyncpg.Connection, auth: dict[str, str], worker: Any
) -> None:
    conn_id = await _connection(settings, db)
    created = _payload("salla_order_created.json")
    event = json.loads(_payload("salla_order_status_updated.json"))
    # Salla's status event carries the whole order (issue 19): the same order, its status moved on.
    event["data"]["order"] = {**json.loads(created)["data"], "status": event["data"]["order"]["status"]}
    event["merchant"] = json.loads(created)["merchant"]  # the same store (a connection is bound to one)
    event["created_at"] = "Sun Mar 10 2024 15:00:00 GMT+0300"  # after the order's updated_at
    event["data"]["created_at"] = {"date": "2024-03-10 15:00:00.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"}
    status = json.dumps(event).encode()
    for body in (created, status):
        resp = await client.post(f"/hooks/salla/{conn_id}", data=body, headers=_salla(body))
        assert resp.status == 200

    async def all_done() -> bool:
        return bool(await db.fetchval("SELECT count(*) FROM inbound_events WHERE status = 'processed'") == 2)

    await eventually(all_done)
    assert await db.fetchval("SELECT count(*) FROM orders") == 1
    types = [r["type"] for r in await db.fetch("SELECT type FROM order_events ORDER BY created, id")]
    # order.updated: the fulfilment moved to fulfilled with the status (the event carries the whole order)
    assert types == ["order.created", "order.updated", "order.status_changed"]
    order = await db.fetchrow("SELECT * FROM orders")
    assert order is not None
    assert order["status"] == "shipped"
    assert order["fulfillment_status"] == "fulfilled"
    assert order["customer_name"]  # the status event kept the rest of the order
    assert [h["status"] for h in order["status_history"]] == ["pending", "shipped"]

    # an older event arriving late never overwrites newer data
    stale = json.loads(created)
    stale["data"]["status"] = {"slug": "canceled", "name": "ملغي"}
    stale["event"] = "order.updated"
    body = json.dumps(stale).encode()
    resp = await client.post(f"/hooks/salla/{conn_id}", data=body, headers=_salla(body))
    assert resp.status == 200

    async def three_done() -> bool:
        return bool(await db.fetchval("SELECT count(*) FROM inbound_events WHERE status = 'processed'") == 3)

    await eventually(three_done)
    assert await db.fetchval("SELECT status FROM orders") == "shipped"


async def test_forged_signature_is_401_and_nothing_stored(
    client: Client, settings: Settings, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    conn_id = await _connection(settings, db)
    body = _payload("salla_order_created.json")
    resp = await client.post(f"/hooks/salla/{conn_id}", data=body, headers=_salla(body, "wrong-secret"))
    assert resp.status == 401
    assert (await resp.json())["code"] == 401
    resp = await client.post(f"/hooks/salla/{conn_id}", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 401
    assert await db.fetchval("SELECT count(*) FROM inbound_events") == 0
    redis = Redis.from_url(client.app[SETTINGS].redis_url or "")
    assert int(await redis.hget("hub:rejects:salla", "bad_signature") or 0) == 2  # counted for the ops view
    await redis.aclose()


async def test_unknown_source_or_connection_is_404(
    client: Client, settings: Settings, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    conn_id = await _connection(settings, db)
    assert (await client.post(f"/hooks/nosuch/{conn_id}", data=b"{}")).status == 404
    assert (await client.post("/hooks/salla/conn_missing", data=b"{}")).status == 404
    assert (await client.post(f"/hooks/zid/{conn_id}", data=b"{}")).status == 404


async def test_unreadable_payload_is_kept_as_failed_event(
    client: Client, settings: Settings, db: asyncpg.Connection, auth: dict[str, str], worker: Any
) -> None:
    conn_id = await _connection(settings, db)
    for body in (b"this is not json", b'{"event": "order.created", "data": {"no": "id"}}'):
        resp = await client.post(f"/hooks/salla/{conn_id}", data=body, headers=_salla(body))
        assert resp.status == 200

    async def failed() -> list[asyncpg.Record]:
        rows = await db.fetch("SELECT status, error FROM inbound_events WHERE status = 'failed'")
        return rows if len(rows) == 2 else []

    rows = await eventually(failed)
    assert all(r["error"] for r in rows)
    assert await db.fetchval("SELECT count(*) FROM orders") == 0

    async def counted() -> bool:
        return int(await worker.pool.hget("hub:rejects:salla", "bad_payload") or 0) == 2

    await eventually(counted)  # unreadable payloads are counted per source for the ops view


async def test_body_over_limit_is_413(
    client: Client, db: asyncpg.Connection, auth: dict[str, str], settings: Any
) -> None:
    conn_id = await _connection(settings, db)
    body = b"x" * (settings.max_body_bytes + 1)
    resp = await client.post(f"/hooks/salla/{conn_id}", data=body, headers=_salla(body))
    assert resp.status == 413


async def test_status_event_before_the_full_order_still_ends_complete(
    client: Client, settings: Settings, db: asyncpg.Connection, auth: dict[str, str], worker: Any
) -> None:
    conn_id = await _connection(settings, db)
    created = _payload("salla_order_created.json")
    event = json.loads(_payload("salla_order_status_updated.json"))
    # Salla's status event carries the whole order (issue 19): the same order, its status moved on.
    event["data"]["order"] = {**json.loads(created)["data"], "status": event["data"]["order"]["status"]}
    event["merchant"] = json.loads(created)["merchant"]  # the same store (a connection is bound to one)
    event["created_at"] = "Sun Mar 10 2024 15:00:00 GMT+0300"
    event["data"]["created_at"] = {"date": "2024-03-10 15:00:00.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"}
    for body in (json.dumps(event).encode(), created):  # newer status first, older full order late
        resp = await client.post(f"/hooks/salla/{conn_id}", data=body, headers=_salla(body))
        assert resp.status == 200

    async def both_done() -> bool:
        return bool(await db.fetchval("SELECT count(*) FROM inbound_events WHERE status = 'processed'") == 2)

    await eventually(both_done)
    order = await db.fetchrow("SELECT * FROM orders")
    assert order is not None
    assert order["status"] == "shipped"  # the newer status wins
    assert order["customer_name"]  # the late full order filled what was missing
    assert order["products"]
    assert order["total_amount"] > 0


async def test_deletion_topic_soft_deletes_and_emits_order_deleted(
    client: Client, settings: Settings, db: asyncpg.Connection, auth: dict[str, str], worker: Any
) -> None:
    conn_id = await _connection(settings, db)
    created = _payload("salla_order_created.json")
    deleted = json.loads(created)
    deleted["event"] = "order.deleted"
    for body in (created, json.dumps(deleted).encode()):
        resp = await client.post(f"/hooks/salla/{conn_id}", data=body, headers=_salla(body))
        assert resp.status == 200

    async def both_done() -> bool:
        return bool(await db.fetchval("SELECT count(*) FROM inbound_events WHERE status = 'processed'") == 2)

    await eventually(both_done)
    assert await db.fetchval("SELECT deleted_at IS NOT NULL FROM orders")
    types = [r["type"] for r in await db.fetch("SELECT type FROM order_events ORDER BY created, id")]
    assert types[0] == "order.created"
    assert types[-1] == "order.deleted"


async def test_older_update_after_deletion_does_not_revive_the_order(
    client: Client, settings: Settings, db: asyncpg.Connection, auth: dict[str, str], worker: Any
) -> None:
    conn_id = await _connection(settings, db)
    created = json.loads(_payload("salla_order_created.json"))
    deleted = json.loads(json.dumps(created))
    deleted["event"] = "order.deleted"
    deleted["data"]["updated_at"] = {"date": "2030-01-01 10:00:00.000000", "timezone_type": 3, "timezone": "UTC"}
    for event in (created, deleted):
        body = json.dumps(event).encode()
        assert (await client.post(f"/hooks/salla/{conn_id}", data=body, headers=_salla(body))).status == 200

    async def done(n: int) -> bool:
        return bool(await db.fetchval("SELECT count(*) FROM inbound_events WHERE status = 'processed'") == n)

    await eventually(lambda: done(2))
    late = json.loads(json.dumps(created))
    late["event"] = "order.updated"
    late["data"]["notes"] = "late, older update"
    body = json.dumps(late).encode()
    assert (await client.post(f"/hooks/salla/{conn_id}", data=body, headers=_salla(body))).status == 200
    await eventually(lambda: done(3))
    assert await db.fetchval("SELECT deleted_at IS NOT NULL FROM orders")


async def test_nul_in_topic_or_error_is_stored_not_looped(
    client: Client, settings: Settings, db: asyncpg.Connection, auth: dict[str, str], worker: Any
) -> None:
    conn_id = await _connection(settings, db)
    body = json.dumps({"event": "order.cre\u0000ated", "data": {"id": "x\u0000", "nested": "\ud800"}}).encode()
    assert (await client.post(f"/hooks/salla/{conn_id}", data=body, headers=_salla(body))).status == 200

    async def settled() -> Any:
        return await db.fetchval("SELECT status FROM inbound_events WHERE status <> 'received'")

    assert await eventually(settled) in ("failed", "ignored")


async def test_the_worker_listens_again_when_its_listening_connection_is_killed(
    client: Client, settings: Settings, db: asyncpg.Connection, auth: dict[str, str], worker: Any
) -> None:
    conn_id = await _connection(settings, db)

    async def listening(other_than: int = 0) -> int | None:
        pid: int | None = await db.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %' "
            "AND pid <> $1",
            other_than,
        )
        return pid

    first = await eventually(listening)
    assert await db.fetchval("SELECT pg_terminate_backend($1)", first)
    await eventually(lambda: listening(other_than=first))  # back, on a new connection

    body = _payload("salla_order_created.json")
    resp = await client.post(f"/hooks/salla/{conn_id}", data=body, headers=_salla(body))
    assert resp.status == 200, await resp.text()
    event_id = (await resp.json())["data"]["id"]
    assert (
        await eventually(
            lambda: db.fetchval("SELECT status FROM inbound_events WHERE id = $1 AND status <> 'received'", event_id)
        )
        == "processed"
    )

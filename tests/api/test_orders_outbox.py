"""Every kind of change writes its order.* events, with the order after the change, and one delivery per
matching endpoint, in the same transaction as the change."""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.settings import Settings
from tests.api.order_helpers import Client, call, make_order
from tests.factories import make_endpoint
from tests.helpers.polling import eventually


async def _endpoint(
    settings: Settings, db: asyncpg.Connection, event_types: list[str], source: str | None = None
) -> str:
    org = await db.fetchval("SELECT organization_id FROM api_keys LIMIT 1")
    return (await make_endpoint(settings, organization_id=org, event_types=event_types, source=source)).id


async def _events(db: asyncpg.Connection, order_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT id, type, source, payload FROM order_events WHERE order_id = $1 ORDER BY created, id",
        order_id,
    )
    return [dict(r) for r in rows]


async def test_each_change_records_its_events_and_deliveries(
    client: Client, auth: dict[str, str], settings: Settings, db: asyncpg.Connection
) -> None:
    everything = await _endpoint(settings, db, ["order.*"])
    cancels = await _endpoint(settings, db, ["order.cancelled", "order.deleted"])
    await _endpoint(settings, db, ["order.*"], source="salla")  # another source: never matches these orders

    order = await make_order(client, auth, customer_name="A")
    oid = order["id"]
    await call(client, "PUT", f"/api/v1/orders/{oid}", auth, 200, json={"notes": "n"})
    await call(client, "PATCH", f"/api/v1/orders/{oid}/status", auth, 200, json={"payment_status": "paid"})
    await call(
        client,
        "PUT",
        f"/api/v1/orders/{oid}/items",
        auth,
        200,
        json={"items": [{"name": "B", "price": 3, "quantity": 2}]},
    )
    await call(client, "POST", f"/api/v1/orders/{oid}/cancel", auth, 200, json={"reason": "r"})
    await call(client, "DELETE", "/api/v1/orders/bulk", auth, 200, json={"ids": [oid]})

    events = await _events(db, oid)
    assert [e["type"] for e in events] == [
        "order.created",
        "order.updated",
        "order.payment_updated",
        "order.updated",
        "order.status_changed",
        "order.cancelled",
        "order.deleted",
    ]
    assert all(e["source"] == "manual" for e in events)
    for event in events:
        payload = event["payload"]
        assert (payload["id"], payload["type"]) == (event["id"], event["type"])
        assert payload["data"]["order"]["id"] == oid
    assert events[0]["payload"]["data"]["order"]["status"] == "pending"
    assert events[3]["payload"]["data"]["order"]["total_amount"] == 6.0
    assert events[5]["payload"]["data"]["order"]["cancellation_reason"] == "r"

    deliveries = await db.fetch(
        "SELECT d.endpoint_id, e.type FROM deliveries d JOIN order_events e ON e.id = d.event_id "
        "WHERE e.order_id = $1 AND d.status = 'pending'",
        oid,
    )
    by_endpoint: dict[str, list[str]] = {}
    for row in deliveries:
        by_endpoint.setdefault(row["endpoint_id"], []).append(row["type"])
    assert sorted(by_endpoint[everything]) == sorted(e["type"] for e in events)
    assert sorted(by_endpoint[cancels]) == ["order.cancelled", "order.deleted"]
    assert set(by_endpoint) == {everything, cancels}


async def test_failed_requests_write_no_events(
    client: Client, auth: dict[str, str], settings: Settings, db: asyncpg.Connection
) -> None:
    await _endpoint(settings, db, ["order.*"])
    order = await make_order(client, auth)
    await call(client, "PATCH", f"/api/v1/orders/{order['id']}/status", auth, 422, json={"status": "delivered"})
    await call(client, "PUT", f"/api/v1/orders/{order['id']}", auth, 422, json={"tax": 1, "total_amount": 99})
    assert [e["type"] for e in await _events(db, order["id"])] == ["order.created"]
    assert await db.fetchval("SELECT count(*) FROM deliveries") == 1


async def test_status_walk_emits_delivered_and_returned(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    order = await make_order(client, auth)
    for status in ("confirmed", "preparing", "ready", "delivered", "returned"):
        await call(client, "PATCH", f"/api/v1/orders/{order['id']}/status", auth, 200, json={"status": status})
    types = [e["type"] for e in await _events(db, order["id"])]
    assert types == [
        "order.created",
        *["order.status_changed"] * 3,
        "order.status_changed",
        "order.delivered",
        "order.status_changed",
        "order.returned",
    ]


async def test_the_api_wakes_the_delivery_worker(
    client: Client, auth: dict[str, str], settings: Settings, db: asyncpg.Connection, worker: Any
) -> None:
    # After the commit the API enqueues the new deliveries; the endpoint is unreachable, so the
    # worker records a failed attempt and keeps the delivery for a retry: nothing is lost.
    await _endpoint(settings, db, ["order.created"])
    order = await make_order(client, auth)
    sql = (
        "SELECT count(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id "
        "JOIN order_events e ON e.id = d.event_id WHERE e.order_id = $1"
    )

    async def attempted() -> bool:
        return bool(await db.fetchval(sql, order["id"]))

    await eventually(attempted)

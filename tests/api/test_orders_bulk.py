"""Bulk create, status update and delete: per-item results, limits, stock and events."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.api.order_helpers import Client, call, event_types, make_order, make_product, stock

LINE = {"name": "Thing", "price": "10.00", "quantity": 1}


async def test_bulk_create_partial_failure(client: Client, auth: dict[str, str], db: asyncpg.Connection) -> None:
    product = await make_product(client, auth, stock_quantity=3)
    orders: list[Any] = [
        {"customer_name": "ok", "items": [{"product_id": product["id"], "quantity": 2}]},
        {"customer_name": "short", "items": [{"product_id": product["id"], "quantity": 2}]},
        {"customer_name": "bad total", "products": [LINE], "total_amount": 5},
        "not an object",
        {"customer_name": "upsert", "source": "salla", "external_id": "77", "products": [LINE]},
        {"customer_name": "upsert", "source": "salla", "external_id": "77", "products": [LINE], "notes": "again"},
    ]
    result = (await call(client, "POST", "/api/v1/orders/bulk", auth, 200, json=orders))["data"]
    assert result["succeeded"] == 3
    assert result["failed"] == 3
    assert set(result["errors"]) == {"1", "2", "3"}
    assert "insufficient stock" in result["errors"]["1"]
    assert result["errors"]["2"].startswith("total_amount:")
    assert result["ids"]["4"] == result["ids"]["5"]  # the second one upserted the first
    assert await stock(client, auth, product["id"]) == 1
    assert await db.fetchval("SELECT count(*) FROM orders") == 2
    assert await event_types(db, result["ids"]["4"]) == ["order.created", "order.updated"]


async def test_bulk_create_accepts_an_orders_envelope_and_skips_the_duplicate_window(
    client: Client, auth: dict[str, str]
) -> None:
    same = {"customer_name": "A", "customer_phone": "0501234567", "products": [LINE]}
    result = (await call(client, "POST", "/api/v1/orders/bulk", auth, 200, json={"orders": [same, same]}))["data"]
    assert result["succeeded"] == 2
    assert result["ids"]["0"] != result["ids"]["1"]


async def test_bulk_limits(client: Client, auth: dict[str, str]) -> None:
    one = {"customer_name": "A", "products": [LINE]}
    body = await call(client, "POST", "/api/v1/orders/bulk", auth, 422, json=[one] * 1001)
    assert body["details"] == {"body": "at most 1000 orders per request, got 1001"}
    await call(client, "POST", "/api/v1/orders/bulk", auth, 422, json=[])
    await call(client, "POST", "/api/v1/orders/bulk", auth, 422, json=one)
    body = await call(client, "PATCH", "/api/v1/orders/bulk/status", auth, 422, json={"updates": [{"id": "x"}] * 1001})
    assert set(body["details"]) == {"updates"}
    body = await call(client, "DELETE", "/api/v1/orders/bulk", auth, 422, json={"ids": ["x"] * 1001})
    assert set(body["details"]) == {"ids"}
    await call(client, "DELETE", "/api/v1/orders/bulk", auth, 422, json={"ids": []})
    await call(client, "PATCH", "/api/v1/orders/bulk/status", auth, 422, json={"changes": []})


async def test_bulk_create_a_thousand(client: Client, auth: dict[str, str], db: asyncpg.Connection) -> None:
    orders = [{"customer_name": f"c{i}", "products": [LINE], "external_id": f"e{i}"} for i in range(1000)]
    result = (await call(client, "POST", "/api/v1/orders/bulk", auth, 200, json=orders))["data"]
    assert (result["succeeded"], result["failed"]) == (1000, 0)
    assert await db.fetchval("SELECT count(*) FROM orders") == 1000
    assert await db.fetchval("SELECT count(*) FROM order_events WHERE type = 'order.created'") == 1000


async def test_bulk_status_per_item(client: Client, auth: dict[str, str], db: asyncpg.Connection) -> None:
    a = await make_order(client, auth, customer_name="a")
    b = await make_order(client, auth, customer_name="b")
    updates = [
        {"id": a["id"], "status": "confirmed", "payment_status": "paid"},
        {"id": b["id"], "status": "shipped"},
        {"id": b["id"], "payment_status": "owed"},
        {"status": "confirmed"},
        {"id": a["id"], "fulfillment_status": "fulfilled"},
    ]
    result = (await call(client, "PATCH", "/api/v1/orders/bulk/status", auth, 200, json={"updates": updates}))["data"]
    assert result["succeeded"] == 1
    assert result["failed"] == 4
    assert result["errors"][b["id"]].startswith("payment_status:")  # the later failure for b is reported
    assert result["errors"]["3"].startswith("id:")
    assert "repeats" in result["errors"][a["id"]]  # an id's first occurrence is processed, a repeat is an error
    got = (await call(client, "GET", f"/api/v1/orders/{a['id']}", auth, 200))["data"]
    assert (got["status"], got["payment_status"], got["fulfillment_status"]) == ("confirmed", "paid", "unfulfilled")
    assert await event_types(db, a["id"]) == [
        "order.created",
        "order.status_changed",
        "order.payment_updated",
    ]
    assert await event_types(db, b["id"]) == ["order.created"]


async def test_bulk_delete_soft_deletes(client: Client, auth: dict[str, str], db: asyncpg.Connection) -> None:
    product = await make_product(client, auth, stock_quantity=4)
    a = await make_order(client, auth, items=[{"product_id": product["id"], "quantity": 4}])
    result = (await call(client, "DELETE", "/api/v1/orders/bulk", auth, 200, json={"ids": [a["id"], a["id"]]}))["data"]
    assert result == {"succeeded": 1, "failed": 1, "errors": {a["id"]: "item 1 repeats an id given earlier"}}
    assert await stock(client, auth, product["id"]) == 4
    deleted_at = await db.fetchval("SELECT deleted_at FROM orders WHERE id = $1", a["id"])
    assert deleted_at is not None  # kept, only hidden
    assert await event_types(db, a["id"]) == ["order.created", "order.deleted"]
    await call(client, "GET", f"/api/v1/orders/{a['id']}", auth, 404)
    await call(client, "PUT", f"/api/v1/orders/{a['id']}", auth, 404, json={"notes": "x"})

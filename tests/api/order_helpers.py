"""Small helpers shared by the orders and products API tests (real HTTP, real Postgres)."""

from __future__ import annotations

import itertools
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

Client = TestClient[Any, Any]
JSON = {"Content-Type": "application/json"}
_SKUS = itertools.count(1)


async def call(client: Client, method: str, path: str, auth: dict[str, str], status: int, **kwargs: Any) -> Any:
    """Send a request and return the JSON body, asserting the status (the body is in the message)."""
    resp = await client.request(method, path, headers=auth, **kwargs)
    body = await resp.json()
    assert resp.status == status, body
    return body


async def make_product(client: Client, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    """A catalog product (defaults: 150.00 SAR, 50 in stock, a SKU no other product has: SKUs are unique)."""
    sku = f"TSH-{next(_SKUS):03d}"
    body = {"name": "Premium T-Shirt", "sku": sku, "category": "Clothing", "price": 150, "stock_quantity": 50}
    body.update(fields)
    data: dict[str, Any] = (await call(client, "POST", "/api/v1/products", auth, 201, json=body))["data"]
    return data


async def make_contact(client: Client, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    """A contact (defaults: Ahmed Al-Rashid, +966501234567)."""
    body = {"name": "Ahmed Al-Rashid", "phone": "+966501234567", "email": "ahmed@example.com", **fields}
    data: dict[str, Any] = (await call(client, "POST", "/api/v1/contacts", auth, 201, json=body))["data"]
    return data


async def make_order(client: Client, auth: dict[str, str], expect: int = 201, **fields: Any) -> dict[str, Any]:
    """An order with one explicit line unless ``products``/``items`` are given."""
    body: dict[str, Any] = {"customer_name": "Sarah Smith"}
    if "products" not in fields and "items" not in fields:
        body["products"] = [{"name": "Thing", "price": "10.00", "quantity": 1}]
    body.update(fields)
    data: dict[str, Any] = (await call(client, "POST", "/api/v1/orders", auth, expect, json=body))["data"]
    return data


async def stock(client: Client, auth: dict[str, str], product_id: str) -> int:
    """The product's stock as the API shows it."""
    quantity: int = (await call(client, "GET", f"/api/v1/products/{product_id}", auth, 200))["data"]["stock_quantity"]
    return quantity


async def event_types(db: asyncpg.Connection, order_id: str) -> list[str]:
    """The outbox event types recorded for an order, oldest first."""
    rows = await db.fetch("SELECT type FROM order_events WHERE order_id = $1 ORDER BY created, id", order_id)
    return [row["type"] for row in rows]


async def set_status(client: Client, auth: dict[str, str], order_id: str, *path: str) -> None:
    """Walk an order through ``path`` statuses with PATCH /status."""
    for status in path:
        body = {"status": status}
        if status == "cancelled":
            body["cancellation_reason"] = "test"
        await call(client, "PATCH", f"/api/v1/orders/{order_id}/status", auth, 200, json=body)

"""Answers every client can rely on: list page fields, bounded pages, SKUs, bulk repeats, versions, money."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.api.order_helpers import Client, call, make_order, make_product

_LISTS = (
    "/api/v1/orders",
    "/api/v1/products",
    "/api/v1/contacts",
    "/api/v1/webhooks",
    "/api/v1/webhooks/{webhook}/deliveries",
    "/api/v1/inbound-events",
    "/api/v1/connections",
)


async def _webhook(client: Client, auth: dict[str, str]) -> dict[str, Any]:
    body = {"url": "http://127.0.0.1:9/hook", "event_types": ["order.*"]}
    data: dict[str, Any] = (await call(client, "POST", "/api/v1/webhooks", auth, 201, json=body))["data"]
    return data


async def test_every_list_carries_both_seeds_page_fields(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    webhook = await _webhook(client, auth)
    for _ in range(3):
        await make_order(client, auth)
    for route in _LISTS:
        path = route.format(webhook=webhook["id"])
        body = await call(client, "GET", f"{path}?page=1&limit=2", auth, 200)
        meta = body["meta"]
        assert body["message"], path
        assert body["count"] == len(body["data"]), path
        assert body["total_count"] == meta["total"], path
        assert (body["page"], body["limit"]) == (1, 2), path
        assert body["has_next"] is meta["has_next"], path
        assert (meta["current_page"], meta["per_page"]) == (1, 2), path
    orders = await call(client, "GET", "/api/v1/orders?page=2&per_page=2", auth, 200)
    assert (orders["count"], orders["total_count"], orders["page"], orders["has_next"]) == (1, 3, 2, False)


@pytest.mark.parametrize("page", ["1000000000000000000", "99999999999999999999999999", "1000000001"])
async def test_a_page_past_any_row_is_422_on_every_list(
    client: Client, auth: dict[str, str], db: asyncpg.Connection, page: str
) -> None:
    webhook = await _webhook(client, auth)
    for route in _LISTS:
        body = await call(client, "GET", route.format(webhook=webhook["id"]) + f"?page={page}", auth, 422)
        assert "page" in body["details"], route
    last = await call(client, "GET", "/api/v1/orders?page=1000000000", auth, 200)
    assert last["data"] == []  # the largest page allowed is simply empty


async def test_get_webhook_answers_with_a_message(client: Client, auth: dict[str, str], db: asyncpg.Connection) -> None:
    webhook = await _webhook(client, auth)
    body = await call(client, "GET", f"/api/v1/webhooks/{webhook['id']}", auth, 200)
    assert body["message"]
    assert body["data"]["id"] == webhook["id"]


async def test_a_second_product_with_a_used_sku_is_409(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    first = await make_product(client, auth, sku="MUG-1")
    body = await call(client, "POST", "/api/v1/products", auth, 409, json={"name": "Mug", "sku": "MUG-1", "price": 5})
    assert body["code"] == 409
    assert first["id"] in body["details"]["sku"]
    other = await make_product(client, auth, sku="MUG-2")
    await call(client, "PUT", f"/api/v1/products/{other['id']}", auth, 409, json={"sku": "MUG-1"})
    await call(client, "PUT", f"/api/v1/products/{first['id']}", auth, 200, json={"sku": "MUG-1", "price": 6})
    await call(client, "DELETE", f"/api/v1/products/{first['id']}", auth, 200)
    await make_product(client, auth, sku="MUG-1")  # a deleted product frees its SKU


async def test_bulk_processes_the_first_occurrence_and_fails_each_repeat(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    a, b = (await make_order(client, auth))["id"], (await make_order(client, auth))["id"]
    updates = [{"id": a, "status": "confirmed"}, {"id": b, "status": "confirmed"}, {"id": a, "status": "confirmed"}]
    status = (await call(client, "PATCH", "/api/v1/orders/bulk/status", auth, 200, json={"updates": updates}))["data"]
    assert (status["succeeded"], status["failed"]) == (2, 1)
    assert list(status["errors"]) == [a]
    assert "repeats" in status["errors"][a]
    deleted = (await call(client, "DELETE", "/api/v1/orders/bulk", auth, 200, json={"ids": [a, b, a]}))["data"]
    assert (deleted["succeeded"], deleted["failed"]) == (2, 1)
    assert list(deleted["errors"]) == [a]
    assert "item 2 repeats" in deleted["errors"][a]


async def test_version_counts_stored_changes(client: Client, auth: dict[str, str], db: asyncpg.Connection) -> None:
    order = await make_order(client, auth)
    assert order["version"] == 1
    assert order["anomalies"] == []
    path = f"/api/v1/orders/{order['id']}"
    changed = await call(client, "PATCH", f"{path}/status", auth, 200, json={"status": "confirmed"})
    assert changed["data"]["version"] == 2
    same = await call(client, "PATCH", f"{path}/status", auth, 200, json={"status": "confirmed"})
    assert same["data"]["version"] == 2  # nothing stored
    assert (await call(client, "GET", path, auth, 200))["data"]["version"] == 2
    payloads = await db.fetch("SELECT payload FROM order_events WHERE order_id = $1 ORDER BY created, id", order["id"])
    assert [p["payload"]["data"]["order"]["version"] for p in payloads] == [1, 2]  # created, status_changed


@pytest.mark.parametrize(
    ("currency", "price", "shown_price", "quantity", "shown_total"),
    [("JPY", "10.5", 11, 3, 33), ("KWD", "1.2345", 1.235, 3, 3.705), ("SAR", "10.125", 10.13, 3, 30.39)],
)
async def test_money_follows_the_currency_and_a_line_total_is_price_times_quantity(
    client: Client,
    auth: dict[str, str],
    db: asyncpg.Connection,
    currency: str,
    price: str,
    shown_price: float,
    quantity: int,
    shown_total: float,
) -> None:
    order = await make_order(
        client,
        auth,
        currency=currency,
        products=[{"name": "Tea", "price": price, "quantity": quantity}],
        tax="0.5555",
    )
    line = order["products"][0]
    assert (line["price"], line["total"]) == (shown_price, shown_total)
    assert line["total"] == pytest.approx(line["price"] * line["quantity"])
    assert order["subtotal"] == line["total"]
    assert order["total_amount"] == pytest.approx(order["subtotal"] + order["tax"])


@pytest.mark.parametrize("amount", ["٣", "1_000", "0x10", "١٠.٥"])
async def test_amounts_the_api_refuses_are_refused_whatever_the_digits(
    client: Client, auth: dict[str, str], db: asyncpg.Connection, amount: str
) -> None:
    body = {"customer_name": "A", "products": [{"name": "Tea", "price": amount, "quantity": 1}]}
    await call(client, "POST", "/api/v1/orders", auth, 422, json=body)

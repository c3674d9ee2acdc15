"""The order list's kept renderings (hub.orders.listing): reused while a row is unchanged, never stale."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
import pytest

from hub.orders import listing as order_list
from tests.api.order_helpers import Client, call, make_order

Known = Callable[[Any, str, list[Any]], Awaitable[list[orjson.Fragment] | None]]


async def _names(client: Client, auth: dict[str, str], query: str = "") -> list[str]:
    return [o["customer_name"] for o in (await call(client, "GET", f"/api/v1/orders?{query}", auth, 200))["data"]]


async def test_a_polled_page_is_rendered_once(
    client: Client, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        await make_order(client, auth, customer_name=f"Polled {n}")
    first = await call(client, "GET", "/api/v1/orders", auth, 200)
    renders: list[str] = []
    real = order_list.order_public  # type: ignore[attr-defined]

    def counting(row: Any, **kwargs: Any) -> dict[str, Any]:
        renders.append(row["id"])
        return real(row, **kwargs)

    monkeypatch.setattr(order_list, "order_public", counting)
    again = await call(client, "GET", "/api/v1/orders", auth, 200)
    assert again["data"] == first["data"]
    assert renders == []
    single = await call(client, "GET", f"/api/v1/orders/{first['data'][0]['id']}", auth, 200)
    assert single["data"] == first["data"][0]  # the same JSON as the order's own endpoint


async def test_an_order_changed_anywhere_is_listed_as_changed(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    order = await make_order(client, auth, customer_name="Before")
    assert await _names(client, auth) == ["Before"]
    await call(client, "PUT", f"/api/v1/orders/{order['id']}", auth, 200, json={"customer_name": "Through the API"})
    assert await _names(client, auth) == ["Through the API"]
    await db.execute("UPDATE orders SET customer_name = 'Behind its back' WHERE id = $1", order["id"])
    assert await _names(client, auth) == ["Behind its back"]  # a new row version, whoever wrote it
    await db.execute("UPDATE orders SET deleted_at = now() WHERE id = $1", order["id"])
    assert await _names(client, auth) == []


async def test_a_row_changed_between_the_two_reads_is_read_again(
    client: Client, auth: dict[str, str], db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = await make_order(client, auth, customer_name="Stays pending")
    moved = await make_order(client, auth, customer_name="Confirmed meanwhile")
    real: Known = order_list._known
    calls: list[bool] = []

    async def racing(conn: Any, organization_id: str, keys: list[Any]) -> list[orjson.Fragment] | None:
        if not calls:  # the walk saw both rows pending; one leaves the filter before its row is read
            await db.execute("UPDATE orders SET status = 'confirmed' WHERE id = $1", moved["id"])
        page = await real(conn, organization_id, keys)
        calls.append(page is None)
        return page

    monkeypatch.setattr(order_list, "_known", racing)
    body = await call(client, "GET", "/api/v1/orders?status=pending", auth, 200)
    assert calls == [True]  # the stale version was noticed, so the page was read whole
    assert [o["id"] for o in body["data"]] == [kept["id"]]
    assert body["meta"]["total"] == 1
    assert body["has_next"] is False


async def test_renderings_are_kept_per_organization(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    order = await make_order(client, auth, customer_name="Mine")
    await _names(client, auth)
    row = await db.fetchrow("SELECT xmin AS row_xmin, organization_id FROM orders WHERE id = $1", order["id"])
    assert row is not None
    assert order_list.cached(row["organization_id"], order["id"], row["row_xmin"]) is not None
    assert order_list.cached("org_someone_else", order["id"], row["row_xmin"]) is None

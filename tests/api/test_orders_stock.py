"""Stock: reserved on create, given back on cancel/return/delete, adjusted on item replacement; race-safe."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.api.order_helpers import Client, call, make_order, make_product, set_status, stock


async def test_short_stock_is_422_and_changes_nothing(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    plenty = await make_product(client, auth, name="Plenty", stock_quantity=10)
    scarce = await make_product(client, auth, name="Scarce", stock_quantity=2)
    body = {
        "customer_name": "A",
        "items": [{"product_id": plenty["id"], "quantity": 4}, {"product_id": scarce["id"], "quantity": 3}],
    }
    refused = await call(client, "POST", "/api/v1/orders", auth, 422, json=body)
    assert refused["error"] == "Insufficient stock"
    assert refused["details"] == {
        "items.1.quantity": f"insufficient stock for product {scarce['id']}: 2 available, 3 requested"
    }
    assert await stock(client, auth, plenty["id"]) == 10  # the first line's reservation was rolled back
    assert await stock(client, auth, scarce["id"]) == 2
    assert await db.fetchval("SELECT count(*) FROM orders") == 0
    assert await db.fetchval("SELECT count(*) FROM order_events") == 0


async def test_same_product_on_two_lines_reserves_the_sum(client: Client, auth: dict[str, str]) -> None:
    product = await make_product(client, auth, stock_quantity=5)
    items = [{"product_id": product["id"], "quantity": 3}, {"product_id": product["id"], "quantity": 3}]
    await call(client, "POST", "/api/v1/orders", auth, 422, json={"customer_name": "A", "items": items})
    items[1]["quantity"] = 2
    await make_order(client, auth, items=items)
    assert await stock(client, auth, product["id"]) == 0
    listed = await call(client, "GET", "/api/v1/products?search=shirt", auth, 200)
    assert listed["data"][0]["in_stock"] is False


async def test_twenty_concurrent_orders_for_the_last_unit(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    product = await make_product(client, auth, stock_quantity=1)
    bodies = [
        {
            "customer_name": f"Buyer {i}",
            "customer_phone": f"05000000{i:02d}",
            "items": [{"product_id": product["id"], "quantity": 1}],
        }
        for i in range(20)
    ]
    responses = await asyncio.gather(*(client.post("/api/v1/orders", json=b, headers=auth) for b in bodies))
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] + [422] * 19
    assert await stock(client, auth, product["id"]) == 0
    assert await db.fetchval("SELECT count(*) FROM orders") == 1


async def test_cancel_return_and_delete_give_stock_back_once(client: Client, auth: dict[str, str]) -> None:
    product = await make_product(client, auth, stock_quantity=10)
    items = [{"product_id": product["id"], "quantity": 2}]
    cancelled = await make_order(client, auth, customer_name="c", items=items)
    returned = await make_order(client, auth, customer_name="r", items=items)
    deleted = await make_order(client, auth, customer_name="d", items=items)
    assert await stock(client, auth, product["id"]) == 4
    await call(client, "POST", f"/api/v1/orders/{cancelled['id']}/cancel", auth, 200, json={"reason": "x"})
    assert await stock(client, auth, product["id"]) == 6
    await call(client, "POST", f"/api/v1/orders/{cancelled['id']}/cancel", auth, 422, json={"reason": "x"})
    await set_status(client, auth, returned["id"], "confirmed", "preparing", "shipped", "delivered")
    assert await stock(client, auth, product["id"]) == 6
    await set_status(client, auth, returned["id"], "returned")
    assert await stock(client, auth, product["id"]) == 8
    await call(
        client,
        "DELETE",
        "/api/v1/orders/bulk",
        auth,
        200,
        json={"ids": [deleted["id"], cancelled["id"], returned["id"]]},
    )
    assert await stock(client, auth, product["id"]) == 10  # final orders had given theirs back already


async def test_concurrent_cancels_restore_once(client: Client, auth: dict[str, str]) -> None:
    product = await make_product(client, auth, stock_quantity=3)
    order = await make_order(client, auth, items=[{"product_id": product["id"], "quantity": 3}])
    responses = await asyncio.gather(
        *(client.post(f"/api/v1/orders/{order['id']}/cancel", json={"reason": "x"}, headers=auth) for _ in range(5))
    )
    assert sorted(r.status for r in responses) == [200] + [422] * 4
    assert await stock(client, auth, product["id"]) == 3


async def test_replacing_items_moves_only_the_difference(client: Client, auth: dict[str, str]) -> None:
    a = await make_product(client, auth, name="A", stock_quantity=5)
    b = await make_product(client, auth, name="B", stock_quantity=1)
    order = await make_order(client, auth, items=[{"product_id": a["id"], "quantity": 5}])
    # 5 of A held; asking for 5 of A again needs no extra stock even though none is left.
    items = [{"product_id": a["id"], "quantity": 4}, {"product_id": b["id"], "quantity": 1}]
    await call(client, "PUT", f"/api/v1/orders/{order['id']}/items", auth, 200, json={"items": items})
    assert (await stock(client, auth, a["id"]), await stock(client, auth, b["id"])) == (1, 0)
    short = await call(
        client,
        "PUT",
        f"/api/v1/orders/{order['id']}/items",
        auth,
        422,
        json={"items": [{"product_id": b["id"], "quantity": 2}]},
    )
    assert set(short["details"]) == {"items.0.quantity"}
    assert (await stock(client, auth, a["id"]), await stock(client, auth, b["id"])) == (1, 0)
    got = await call(client, "GET", f"/api/v1/orders/{order['id']}", auth, 200)
    assert [line["quantity"] for line in got["data"]["products"]] == [4, 1]
    await call(
        client,
        "PUT",
        f"/api/v1/orders/{order['id']}/items",
        auth,
        200,
        json={"products": [{"name": "Gift", "price": 5, "quantity": 1}]},
    )
    assert (await stock(client, auth, a["id"]), await stock(client, auth, b["id"])) == (5, 1)


async def test_deleting_a_product_keeps_old_orders(client: Client, auth: dict[str, str]) -> None:
    product = await make_product(client, auth, stock_quantity=5)
    order = await make_order(client, auth, items=[{"product_id": product["id"], "quantity": 2}])
    await call(client, "DELETE", f"/api/v1/products/{product['id']}", auth, 200)
    await call(client, "GET", f"/api/v1/products/{product['id']}", auth, 404)
    got = (await call(client, "GET", f"/api/v1/orders/{order['id']}", auth, 200))["data"]
    assert got["products"][0]["name"] == "Premium T-Shirt"
    assert got["products"][0]["total"] == 300.0
    # Cancelling still works (stock lands on the deleted row); new orders cannot use the product.
    await call(client, "POST", f"/api/v1/orders/{order['id']}/cancel", auth, 200, json={"reason": "x"})
    body = await call(
        client,
        "POST",
        "/api/v1/orders",
        auth,
        422,
        json={"customer_name": "A", "items": [{"product_id": product["id"], "quantity": 1}]},
    )
    assert set(body["details"]) == {"items.0.product_id"}


async def test_orders_created_final_hold_no_stock(client: Client, auth: dict[str, str]) -> None:
    product = await make_product(client, auth, stock_quantity=1)
    await make_order(client, auth, status="cancelled", items=[{"product_id": product["id"], "quantity": 1}])
    assert await stock(client, auth, product["id"]) == 1

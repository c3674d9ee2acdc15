"""PUT /api/v1/orders/{id}: merge semantics, who may change what, echoing an order back."""

from __future__ import annotations

import asyncpg

from tests.api.order_helpers import Client, call, event_types, make_contact, make_order, make_product


async def test_put_merges_and_keeps_omitted_fields(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    order = await make_order(
        client, auth, notes="call first", shipping_address={"city": "Riyadh", "street": "King Fahd"}, tax="1.50"
    )
    answer = await call(client, "PUT", f"/api/v1/orders/{order['id']}", auth, 200, json={"notes": "leave at door"})
    updated = answer["data"]
    assert updated["notes"] == "leave at door"
    assert updated["shipping_address"] == {"city": "Riyadh", "street": "King Fahd"}
    assert updated["total_amount"] == 11.5
    assert updated["updated"] > order["updated"]
    assert await event_types(db, order["id"]) == ["order.created", "order.updated"]


async def test_hub_made_orders_take_the_full_update(client: Client, auth: dict[str, str]) -> None:
    order = await make_order(client, auth, products=[{"name": "A", "price": "29.99", "quantity": 2}])
    contact = await make_contact(client, auth)
    body = {
        "customer_name": "Sarah Smith",
        "customer_email": "sarah@example.com",
        "customer_phone": "0509876543",
        "contact_id": contact["id"],
        "tax": 9,
        "delivery_fee": "15.00",
        "discount": 0,
        "total_amount": 83.98,
        "payment_status": "paid",
        "reference": "INV-7",
    }
    updated = (await call(client, "PUT", f"/api/v1/orders/{order['id']}", auth, 200, json=body))["data"]
    assert updated["customer_phone"] == "+966509876543"
    assert updated["total_amount"] == 83.98
    assert updated["payment_status"] == "paid"
    assert updated["reference"] == "INV-7"
    wrong = await call(
        client, "PUT", f"/api/v1/orders/{order['id']}", auth, 422, json={"tax": 10, "total_amount": 83.98}
    )
    assert set(wrong["details"]) == {"total_amount"}
    body = await call(client, "PUT", f"/api/v1/orders/{order['id']}", auth, 422, json={"contact_id": "con_nope"})
    assert set(body["details"]) == {"contact_id"}


async def test_get_then_put_round_trips(client: Client, auth: dict[str, str], db: asyncpg.Connection) -> None:
    product = await make_product(client, auth)
    order = await make_order(client, auth, items=[{"product_id": product["id"], "quantity": 2}], tax=3)
    echoed = dict(order)
    echoed["notes"] = "changed only this"
    updated = (await call(client, "PUT", f"/api/v1/orders/{order['id']}", auth, 200, json=echoed))["data"]
    assert updated["notes"] == "changed only this"
    assert updated["products"] == order["products"]
    assert await event_types(db, order["id"]) == ["order.created", "order.updated"]


async def test_line_items_and_origin_do_not_change_through_put(client: Client, auth: dict[str, str]) -> None:
    order = await make_order(client, auth)
    body = await call(
        client,
        "PUT",
        f"/api/v1/orders/{order['id']}",
        auth,
        422,
        json={"products": [{"name": "Other", "price": 1, "quantity": 1}], "source": "salla", "created_by": "web_chat"},
    )
    assert set(body["details"]) == {"products", "source", "created_by"}
    assert "/items" in body["details"]["products"]


async def test_source_orders_keep_the_sources_fields(client: Client, auth: dict[str, str]) -> None:
    order = await make_order(client, auth, source="salla", external_id="9", customer_name="From Salla")
    body = await call(
        client, "PUT", f"/api/v1/orders/{order['id']}", auth, 422, json={"customer_name": "Edited", "tax": 5}
    )
    assert body["details"] == {
        "customer_name": "cannot be changed on an order from salla",
        "tax": "cannot be changed on an order from salla",
    }
    answer = await call(
        client,
        "PUT",
        f"/api/v1/orders/{order['id']}",
        auth,
        200,
        json={
            "customer_name": "From Salla",  # restated unchanged: fine
            "status": "confirmed",
            "notes": "gift wrap",
            "shipping_address": "Jeddah",
            "fulfillment_status": "partial",
        },
    )
    assert (answer["data"]["status"], answer["data"]["notes"], answer["data"]["shipping_address"]) == (
        "confirmed",
        "gift wrap",
        "Jeddah",
    )


async def test_put_validation(client: Client, auth: dict[str, str]) -> None:
    order = await make_order(client, auth)
    body = await call(
        client,
        "PUT",
        f"/api/v1/orders/{order['id']}",
        auth,
        422,
        json={"customer_name": None, "status": None, "discount": "abc", "unknown": 1},
    )
    assert set(body["details"]) == {"discount", "unknown"}
    body = await call(client, "PUT", f"/api/v1/orders/{order['id']}", auth, 422, json={"customer_name": None})
    assert body["details"] == {"customer_name": "must not be null"}
    resp = await client.put(f"/api/v1/orders/{order['id']}", data=b"[1,", headers=auth)
    assert resp.status == 400


async def test_put_with_nothing_new_changes_nothing(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    order = await make_order(client, auth, notes="n")
    same = (await call(client, "PUT", f"/api/v1/orders/{order['id']}", auth, 200, json={"notes": "n"}))["data"]
    assert same["updated"] == order["updated"]
    assert await event_types(db, order["id"]) == ["order.created"]

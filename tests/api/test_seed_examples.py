"""Every curl example of both seed documents, as written (our base URL and key, real ids).

Bodies are sent byte for byte as the curl ``-d`` strings (ids swapped for real ones); answers are
checked against what the seeds document, in DESIGN's envelope and field names.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.api.order_helpers import JSON, Client, call, event_types, make_contact, make_order, make_product, stock


async def _seed000_order(client: Client, auth: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    contact = await make_contact(client, auth)
    product = await make_product(client, auth, sku="TSH-001")
    body = f"""{{
"contact_id": "{contact["id"]}",
"items": [
{{ "product_id": "{product["id"]}", "quantity": 3 }}
],
"shipping_address": "123 King Fahd Road, Riyadh"
}}"""
    created = await call(client, "POST", "/api/v1/orders", {**auth, **JSON}, 201, data=body)
    return contact, product, created


async def test_seed000_create_order_with_contact_and_items(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    contact, product, created = await _seed000_order(client, auth)
    assert created["success"] is True
    assert created["message"] == "Order created successfully."
    order = created["data"]
    assert order["id"].startswith("ord_")
    assert order["contact_id"] == contact["id"]
    assert order["customer_name"] == "Ahmed Al-Rashid"  # from the contact
    assert order["customer_phone"] == "+966501234567"
    assert order["status"] == "pending"
    assert order["total_amount"] == 450.00
    assert order["subtotal"] == 450.00
    assert order["currency"] == "SAR"
    assert order["source"] == "manual"
    assert order["created_by"] == "api"
    assert order["shipping_address"] == "123 King Fahd Road, Riyadh"
    assert order["is_duplicate"] is False
    line = order["products"][0]
    assert line == {
        "product_id": product["id"],
        "sku": "TSH-001",
        "name": "Premium T-Shirt",
        "quantity": 3,
        "price": 150.0,
        "total": 450.0,
    }
    assert await stock(client, auth, product["id"]) == 47
    assert await event_types(db, order["id"]) == ["order.created"]


async def test_seed000_duplicate_prevention(client: Client, auth: dict[str, str]) -> None:
    contact, product, created = await _seed000_order(client, auth)
    again = await call(
        client,
        "POST",
        "/api/v1/orders",
        auth,
        200,
        json={"contact_id": contact["id"], "items": [{"product_id": product["id"], "quantity": 3}]},
    )
    assert again["data"]["id"] == created["data"]["id"]
    assert again["data"]["is_duplicate"] is True
    assert await stock(client, auth, product["id"]) == 47


async def test_seed000_list_orders_status_per_page(client: Client, auth: dict[str, str]) -> None:
    for i in range(12):
        await make_order(client, auth, customer_name=f"Customer {i}")
    listed = await call(client, "GET", "/api/v1/orders?status=pending&per_page=10", auth, 200)
    assert listed["success"] is True
    assert listed["message"] == "Orders retrieved successfully."
    assert len(listed["data"]) == 10
    assert listed["meta"]["current_page"] == 1
    assert listed["meta"]["per_page"] == 10
    assert listed["meta"]["total"] == 12
    assert listed["meta"]["has_next"] is True
    assert all(o["status"] == "pending" and "products" in o for o in listed["data"])


async def test_seed000_get_update_cancel(client: Client, auth: dict[str, str], db: asyncpg.Connection) -> None:
    _, product, created = await _seed000_order(client, auth)
    order_id = created["data"]["id"]
    got = await call(client, "GET", f"/api/v1/orders/{order_id}", auth, 200)
    assert got["data"]["status_history"][0]["status"] == "pending"

    updated = await call(
        client, "PUT", f"/api/v1/orders/{order_id}", {**auth, **JSON}, 200, data='{ "status": "confirmed" }'
    )
    assert updated["data"]["status"] == "confirmed"
    assert updated["data"]["shipping_address"] == "123 King Fahd Road, Riyadh"  # merge keeps omitted fields
    assert [h["status"] for h in updated["data"]["status_history"]] == ["pending", "confirmed"]

    cancelled = await call(
        client,
        "POST",
        f"/api/v1/orders/{order_id}/cancel",
        {**auth, **JSON},
        200,
        data='{ "reason": "Customer requested cancellation" }',
    )
    assert cancelled["message"] == "Order cancelled successfully."
    assert cancelled["data"]["id"] == order_id
    assert cancelled["data"]["status"] == "cancelled"
    assert cancelled["data"]["cancellation_reason"] == "Customer requested cancellation"
    assert await stock(client, auth, product["id"]) == 50  # restored
    assert await event_types(db, order_id) == [
        "order.created",
        "order.status_changed",
        "order.status_changed",
        "order.cancelled",
    ]


async def test_seed000_update_order_with_notes_example(client: Client, auth: dict[str, str]) -> None:
    _, _, created = await _seed000_order(client, auth)
    body = '{\n"status": "confirmed",\n"notes": "Updated delivery instructions"\n}'
    updated = await call(client, "PUT", f"/api/v1/orders/{created['data']['id']}", {**auth, **JSON}, 200, data=body)
    assert updated["data"]["status"] == "confirmed"
    assert updated["data"]["notes"] == "Updated delivery instructions"


async def test_seed000_replace_items(client: Client, auth: dict[str, str]) -> None:
    _, shirt, created = await _seed000_order(client, auth)
    cap = await make_product(client, auth, name="Cap", sku="CAP-1", price="35.50", stock_quantity=5)
    body = f"""{{
"items": [
{{ "product_id": "{shirt["id"]}", "quantity": 2 }},
{{ "product_id": "{cap["id"]}", "quantity": 1 }}
]
}}"""
    order_id = created["data"]["id"]
    replaced = await call(client, "PUT", f"/api/v1/orders/{order_id}/items", {**auth, **JSON}, 200, data=body)
    order = replaced["data"]
    assert [(line["name"], line["quantity"]) for line in order["products"]] == [("Premium T-Shirt", 2), ("Cap", 1)]
    assert order["subtotal"] == 335.5
    assert order["total_amount"] == 335.5
    assert await stock(client, auth, shirt["id"]) == 48
    assert await stock(client, auth, cap["id"]) == 4
    await call(client, "PUT", f"/api/v1/orders/{order_id}", auth, 200, json={"status": "confirmed"})
    refused = await call(client, "PUT", f"/api/v1/orders/{order_id}/items", {**auth, **JSON}, 422, data=body)
    assert "status" in refused["details"]


async def test_seed000_list_products_search(client: Client, auth: dict[str, str]) -> None:
    await make_product(client, auth, description="100% cotton premium quality t-shirt")
    await make_product(client, auth, name="Mug", sku="MUG-1", category="Kitchen")
    listed = await call(client, "GET", "/api/v1/products?search=shirt", auth, 200)
    assert listed["message"] == "Products retrieved successfully."
    assert [p["name"] for p in listed["data"]] == ["Premium T-Shirt"]
    product = listed["data"][0]
    assert product["price"] == 150.0
    assert product["currency"] == "SAR"
    assert product["stock_quantity"] == 50
    assert product["in_stock"] is True
    assert product["description"] == "100% cotton premium quality t-shirt"
    assert listed["meta"] == {"current_page": 1, "per_page": 20, "total": 1, "has_next": False}


async def test_seed004_list_orders_status_source_limit(client: Client, auth: dict[str, str]) -> None:
    for i in range(3):
        await make_order(client, auth, source="salla", external_id=f"SALLA-ORD-{i}", status="delivered")
    await make_order(client, auth, source="salla", external_id="SALLA-ORD-9")
    await make_order(client, auth, source="zid", external_id="Z-1", status="delivered")
    listed = await call(client, "GET", "/api/v1/orders?status=delivered&source=salla&limit=50", auth, 200)
    assert {o["external_id"] for o in listed["data"]} == {"SALLA-ORD-0", "SALLA-ORD-1", "SALLA-ORD-2"}
    assert listed["meta"]["per_page"] == 50
    assert listed["meta"]["total"] == 3
    assert listed["meta"]["has_next"] is False


async def test_seed004_create_order_with_products_and_totals(client: Client, auth: dict[str, str]) -> None:
    body = """{
"source": "manual",
"customer_name": "Sarah Smith",
"customer_email": "sarah@example.com",
"customer_phone": "+966509876543",
"products": [
{
"product_id": "prd_001",
"name": "Product One",
"quantity": 2,
"price": 29.99
}
],
"subtotal": 59.98,
"tax": 9.00,
"delivery_fee": 15.00,
"total_amount": 83.98,
"currency": "SAR",
"status": "pending",
"payment_status": "pending"
}"""
    created = await call(client, "POST", "/api/v1/orders", {**auth, **JSON}, 201, data=body)
    order = created["data"]
    assert order["source"] == "manual"
    assert order["status"] == "pending"
    assert order["total_amount"] == 83.98
    assert order["subtotal"] == 59.98
    assert order["tax"] == 9.0
    assert order["delivery_fee"] == 15.0
    assert order["discount"] == 0
    assert order["products"] == [
        {"product_id": "prd_001", "sku": None, "name": "Product One", "quantity": 2, "price": 29.99, "total": 59.98}
    ]
    assert order["created"].endswith("Z")


async def test_seed004_patch_status(client: Client, auth: dict[str, str], db: asyncpg.Connection) -> None:
    order = await make_order(client, auth)
    for status in ("confirmed", "preparing", "ready", "shipped"):
        await call(client, "PATCH", f"/api/v1/orders/{order['id']}/status", auth, 200, json={"status": status})
    patched = await call(
        client,
        "PATCH",
        f"/api/v1/orders/{order['id']}/status",
        {**auth, **JSON},
        200,
        data='{"status": "delivered", "payment_status": "paid"}',
    )
    assert patched["data"]["status"] == "delivered"
    assert patched["data"]["payment_status"] == "paid"
    types = await event_types(db, order["id"])
    assert types[-3:] == ["order.status_changed", "order.delivered", "order.payment_updated"]


async def test_seed004_bulk_operations(client: Client, auth: dict[str, str], db: asyncpg.Connection) -> None:
    line = {"product_id": "prd_001", "name": "Panadol Extra", "quantity": 2, "price": 15.50}
    orders = [
        {"source": "manual", "customer_name": f"C{i}", "products": [line], "total_amount": 31.00, "currency": "SAR"}
        for i in range(3)
    ]
    orders.append({"source": "manual", "products": [line], "total_amount": 31.00})  # no customer_name
    created = await call(client, "POST", "/api/v1/orders/bulk", auth, 200, json=orders)
    assert created["success"] is True
    assert created["data"]["succeeded"] == 3
    assert created["data"]["failed"] == 1
    assert "customer_name" in created["data"]["errors"]["3"]
    ids = [created["data"]["ids"][str(i)] for i in range(3)]

    await call(client, "PATCH", f"/api/v1/orders/{ids[0]}/status", auth, 200, json={"status": "confirmed"})
    body = f"""{{
"updates": [
{{ "id": "{ids[0]}", "status": "preparing", "payment_status": "paid" }},
{{ "id": "{ids[1]}", "status": "cancelled", "cancellation_reason": "duplicate" }},
{{ "id": "{ids[2]}", "status": "delivered" }},
{{ "id": "order_050", "status": "delivered" }}
]
}}"""
    updated = await call(client, "PATCH", "/api/v1/orders/bulk/status", {**auth, **JSON}, 200, data=body)
    assert updated["data"]["succeeded"] == 2
    assert updated["data"]["failed"] == 2
    assert updated["data"]["errors"]["order_050"] == "Order not found"
    assert updated["data"]["errors"][ids[2]].startswith("Invalid status transition")

    body = f'{{\n"ids": ["{ids[0]}", "{ids[1]}", "order_003"]\n}}'
    deleted = await call(client, "DELETE", "/api/v1/orders/bulk", {**auth, **JSON}, 200, data=body)
    assert deleted["data"] == {"succeeded": 2, "failed": 1, "errors": {"order_003": "Order not found"}}
    await call(client, "GET", f"/api/v1/orders/{ids[0]}", auth, 404)
    assert (await event_types(db, ids[0]))[-1] == "order.deleted"
    listed = await call(client, "GET", "/api/v1/orders", auth, 200)
    assert [o["id"] for o in listed["data"]] == [ids[2]]


async def test_seed004_not_found_shape(client: Client, auth: dict[str, str]) -> None:
    body = await call(client, "GET", "/api/v1/orders/nonexistent", auth, 404)
    assert body == {"success": False, "code": 404, "error": "Order not found", "details": {"id": "nonexistent"}}


async def test_seed004_validation_shape(client: Client, auth: dict[str, str]) -> None:
    body = await call(client, "POST", "/api/v1/orders", auth, 422, json={"customer_name": "X", "products": []})
    assert body["error"] == "Validation failed"
    assert body["details"] == {"products": "At least one product is required"}

"""POST /api/v1/orders: lines, money, customer, currency, upserts, duplicates and idempotency keys."""

from __future__ import annotations

import asyncio

import asyncpg

from hub.settings import Settings
from tests.api.order_helpers import Client, call, event_types, make_contact, make_order, make_product, stock
from tests.factories import make_key

LINE = {"name": "Thing", "price": "10.00", "quantity": 1}


async def test_customer_name_required_unless_contact(client: Client, auth: dict[str, str]) -> None:
    body = await call(client, "POST", "/api/v1/orders", auth, 422, json={"products": [LINE]})
    assert body["details"] == {"customer_name": "is required unless contact_id is given"}
    contact = await make_contact(client, auth, name="Noura", phone="0551112222", email="n@example.com")
    order = await make_order(client, auth, customer_name=None, contact_id=contact["id"])
    assert (order["customer_name"], order["customer_phone"], order["customer_email"]) == (
        "Noura",
        "+966551112222",
        "n@example.com",
    )
    # Fields given in the request win over the contact's.
    order = await make_order(
        client, auth, contact_id=contact["id"], customer_name="Noura A.", products=[LINE | {"quantity": 2}]
    )
    assert order["customer_name"] == "Noura A."


async def test_unknown_references_are_422_naming_the_field(client: Client, auth: dict[str, str]) -> None:
    body = await call(
        client,
        "POST",
        "/api/v1/orders",
        auth,
        422,
        json={"contact_id": "con_nope", "items": [{"product_id": "x", "quantity": 1}]},
    )
    assert body["details"] == {"contact_id": "contact con_nope not found"}
    body = await call(
        client,
        "POST",
        "/api/v1/orders",
        auth,
        422,
        json={"customer_name": "A", "items": [{"product_id": 5, "quantity": 3}]},  # seed 000's integer id
    )
    assert body["details"] == {"items.0.product_id": "product 5 not found"}


async def test_other_organizations_products_and_contacts_are_invisible(
    client: Client, auth: dict[str, str], settings: Settings
) -> None:
    other = {"Authorization": f"Bearer {await make_key(settings, org='other')}"}
    product = await make_product(client, other)
    contact = await make_contact(client, other)
    body = await call(
        client,
        "POST",
        "/api/v1/orders",
        auth,
        422,
        json={"contact_id": contact["id"], "items": [{"product_id": product["id"], "quantity": 1}]},
    )
    assert set(body["details"]) == {"contact_id"}
    body = await call(
        client,
        "POST",
        "/api/v1/orders",
        auth,
        422,
        json={"customer_name": "A", "items": [{"product_id": product["id"], "quantity": 1}]},
    )
    assert set(body["details"]) == {"items.0.product_id"}
    assert await stock(client, other, product["id"]) == 50


async def test_malformed_fields_are_422_each_named(client: Client, auth: dict[str, str]) -> None:
    body = await call(
        client,
        "POST",
        "/api/v1/orders",
        auth,
        422,
        json={
            "customer_name": "",
            "customer_email": "not-an-email",
            "customer_phone": 501234567,
            "products": [
                {"name": "A", "price": -1, "quantity": 0},
                {"name": "B", "price": "1.23456", "quantity": True},
            ],
            "currency": "XYZ",
            "status": "flying",
            "payment_status": "maybe",
            "colour": "red",
        },
    )
    assert set(body["details"]) == {
        "customer_name",
        "customer_email",
        "customer_phone",
        "products.0.price",
        "products.0.quantity",
        "products.1.price",
        "products.1.quantity",
        "currency",
        "status",
        "payment_status",
        "colour",
    }
    assert body["details"]["products.0.price"] == "must not be negative"
    assert body["details"]["products.1.price"] == "must have at most 4 decimal places"


async def test_malformed_json_is_400(client: Client, auth: dict[str, str]) -> None:
    resp = await client.post("/api/v1/orders", data=b"{nope", headers={**auth, "Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["code"] == 400


async def test_line_kinds(client: Client, auth: dict[str, str]) -> None:
    body = await call(
        client,
        "POST",
        "/api/v1/orders",
        auth,
        422,
        json={"customer_name": "A", "products": [{"price": 5, "quantity": 1}, {"name": "No price", "quantity": 1}]},
    )
    assert set(body["details"]) == {"products.0.name", "products.1.product_id"}
    product = await make_product(client, auth, stock_quantity=1)
    # An explicit line with a product_id is an opaque reference: its price is used, no stock moves.
    order = await make_order(
        client, auth, products=[{"product_id": product["id"], "name": "Custom", "price": 99, "quantity": 5}]
    )
    assert order["products"][0]["price"] == 99.0
    assert await stock(client, auth, product["id"]) == 1


async def test_money_is_exact(client: Client, auth: dict[str, str]) -> None:
    lines = [{"name": "A", "price": 0.1, "quantity": 1}, {"name": "B", "price": 0.2, "quantity": 1}]
    order = await make_order(client, auth, products=lines, total_amount=0.3, subtotal="0.30")
    assert order["subtotal"] == 0.3
    assert order["total_amount"] == 0.3
    lines = [{"name": "A", "price": "19.99", "quantity": 3}]
    order = await make_order(
        client, auth, products=lines, discount="0.97", tax=8.85, delivery_fee=15, total_amount="82.85"
    )
    assert order["total_amount"] == 82.85
    kwd = await make_order(client, auth, products=[{"name": "A", "price": "1.005", "quantity": 3}], currency="KWD")
    assert kwd["total_amount"] == 3.015
    jpy = await make_order(client, auth, products=[{"name": "A", "price": 1500, "quantity": 2}], currency="jpy")
    assert jpy["total_amount"] == 3000
    assert isinstance(jpy["total_amount"], int)


async def test_totals_that_disagree_are_422_naming_fields(client: Client, auth: dict[str, str]) -> None:
    lines = [{"name": "A", "price": "29.99", "quantity": 2, "total": "59.98"}]
    body = await call(
        client,
        "POST",
        "/api/v1/orders",
        auth,
        422,
        json={"customer_name": "A", "products": lines, "subtotal": 60, "tax": 9, "total_amount": 83.98},
    )
    assert set(body["details"]) == {"subtotal", "total_amount"}
    body = await call(
        client,
        "POST",
        "/api/v1/orders",
        auth,
        422,
        json={"customer_name": "A", "products": [LINE | {"total": 11}]},
    )
    assert set(body["details"]) == {"products.0.total"}
    body = await call(
        client, "POST", "/api/v1/orders", auth, 422, json={"customer_name": "A", "products": [LINE], "discount": 11}
    )
    assert set(body["details"]) == {"discount"}


async def test_currency_defaults(client: Client, auth: dict[str, str]) -> None:
    usd = await make_product(client, auth, currency="USD", price="9.99")
    order = await make_order(client, auth, items=[{"product_id": usd["id"], "quantity": 1}])
    assert order["currency"] == "USD"
    assert (await make_order(client, auth))["currency"] == "SAR"  # the organization's default
    body = await call(
        client,
        "POST",
        "/api/v1/orders",
        auth,
        422,
        json={"customer_name": "A", "currency": "SAR", "items": [{"product_id": usd["id"], "quantity": 1}]},
    )
    assert set(body["details"]) == {"currency"}
    sar = await make_product(client, auth)
    body = await call(
        client,
        "POST",
        "/api/v1/orders",
        auth,
        422,
        json={
            "customer_name": "A",
            "items": [{"product_id": usd["id"], "quantity": 1}, {"product_id": sar["id"], "quantity": 1}],
        },
    )
    assert set(body["details"]) == {"items"}


async def test_items_and_products_together_are_refused(client: Client, auth: dict[str, str]) -> None:
    body = await call(
        client, "POST", "/api/v1/orders", auth, 422, json={"customer_name": "A", "products": [LINE], "items": [LINE]}
    )
    assert set(body["details"]) == {"items"}


async def test_source_and_external_id_upsert(client: Client, auth: dict[str, str], db: asyncpg.Connection) -> None:
    first = await make_order(client, auth, source="salla", external_id="1001", customer_phone="0501234567")
    assert first["source"] == "salla"
    assert first["customer_phone"] == "+966501234567"
    again = await make_order(
        client, auth, 200, source="salla", external_id="1001", status="confirmed", notes="paid by card"
    )
    assert again["id"] == first["id"]
    assert again["status"] == "confirmed"
    assert again["notes"] == "paid by card"
    assert again["is_duplicate"] is False
    same = await make_order(client, auth, 200, source="salla", external_id="1001")
    assert same["updated"] == again["updated"]  # restating changes nothing
    assert await event_types(db, first["id"]) == ["order.created", "order.updated", "order.status_changed"]
    other_source = await make_order(client, auth, source="zid", external_id="1001")
    assert other_source["id"] != first["id"]
    body = await call(
        client,
        "POST",
        "/api/v1/orders",
        auth,
        422,
        json={
            "source": "salla",
            "external_id": "1001",
            "customer_name": "A",
            "products": [LINE],
            "status": "delivered",
        },
    )
    assert body["error"] == "Invalid status transition"


async def test_duplicate_window(client: Client, auth: dict[str, str], db: asyncpg.Connection) -> None:
    product = await make_product(client, auth)
    body = {
        "customer_name": "A",
        "customer_phone": "0501234567",
        "items": [{"product_id": product["id"], "quantity": 2}],
    }
    first = (await call(client, "POST", "/api/v1/orders", auth, 201, json=body))["data"]
    # Same phone written differently, same products: a duplicate.
    dup = await call(client, "POST", "/api/v1/orders", auth, 200, json=body | {"customer_phone": "+966 50 123 4567"})
    assert dup["data"]["id"] == first["id"]
    assert dup["data"]["is_duplicate"] is True
    # Different quantity, different phone, or an email identity: new orders.
    await call(
        client,
        "POST",
        "/api/v1/orders",
        auth,
        201,
        json=body | {"items": [{"product_id": product["id"], "quantity": 3}]},
    )
    await call(client, "POST", "/api/v1/orders", auth, 201, json=body | {"customer_phone": "0509999999"})
    # Outside the window (moved back 301 s), a new order is made.
    await db.execute("UPDATE orders SET created = created - interval '301 seconds' WHERE id = $1", first["id"])
    later = await call(client, "POST", "/api/v1/orders", auth, 201, json=body)
    assert later["data"]["id"] != first["id"]
    # A cancelled order is not a duplicate target.
    await call(client, "POST", f"/api/v1/orders/{later['data']['id']}/cancel", auth, 200, json={"reason": "x"})
    await call(client, "POST", "/api/v1/orders", auth, 201, json=body)
    assert await stock(client, auth, product["id"]) == 50 - 2 - 3 - 2 - 2
    # With external_id the window never applies (it is an upsert key instead).
    await call(client, "POST", "/api/v1/orders", auth, 201, json=body | {"source": "chat_agent", "external_id": "c1"})


async def test_duplicate_by_email_when_no_contact_or_phone(client: Client, auth: dict[str, str]) -> None:
    body = {"customer_name": "A", "customer_email": "A@Example.com", "products": [LINE]}
    first = (await call(client, "POST", "/api/v1/orders", auth, 201, json=body))["data"]
    dup = (await call(client, "POST", "/api/v1/orders", auth, 200, json=body | {"customer_email": "a@example.com"}))[
        "data"
    ]
    assert dup["id"] == first["id"]
    # Without any identity there is nothing to compare: every request makes an order.
    await call(client, "POST", "/api/v1/orders", auth, 201, json={"customer_name": "A", "products": [LINE]})
    await call(client, "POST", "/api/v1/orders", auth, 201, json={"customer_name": "A", "products": [LINE]})


async def test_twenty_identical_concurrent_requests_make_one_order(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    contact = await make_contact(client, auth)
    product = await make_product(client, auth)
    body = {"contact_id": contact["id"], "items": [{"product_id": product["id"], "quantity": 1}]}
    responses = await asyncio.gather(*(client.post("/api/v1/orders", json=body, headers=auth) for _ in range(20)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 19 + [201]
    ids = {(await r.json())["data"]["id"] for r in responses}
    assert len(ids) == 1
    assert await db.fetchval("SELECT count(*) FROM orders") == 1
    assert await stock(client, auth, product["id"]) == 49
    assert await db.fetchval("SELECT count(*) FROM order_events") == 1


async def test_idempotency_key(client: Client, auth: dict[str, str], db: asyncpg.Connection) -> None:
    headers = auth | {"Idempotency-Key": "order-42"}
    body = {"customer_name": "A", "products": [LINE]}
    first = await client.post("/api/v1/orders", json=body, headers=headers)
    assert first.status == 201
    replay = await client.post(
        "/api/v1/orders",
        data=b'{"products": [{"quantity": 1, "price": "10.00", "name": "Thing"}], "customer_name": "A"}',
        headers=headers | {"Content-Type": "application/json"},
    )
    assert replay.status == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert await replay.json() == await first.json()
    conflict = await client.post("/api/v1/orders", json=body | {"notes": "other"}, headers=headers)
    assert conflict.status == 409
    assert "Idempotency-Key" in (await conflict.json())["details"]
    assert await db.fetchval("SELECT count(*) FROM orders") == 1
    # Keys belong to an organization, and a failed request stores nothing.
    bad = await client.post("/api/v1/orders", json={"products": [LINE]}, headers=auth | {"Idempotency-Key": "k2"})
    assert bad.status == 422
    good = await client.post("/api/v1/orders", json=body | {"notes": "n"}, headers=auth | {"Idempotency-Key": "k2"})
    assert good.status == 201
    long_key = await client.post("/api/v1/orders", json=body, headers=auth | {"Idempotency-Key": "x" * 300})
    assert long_key.status == 422


async def test_concurrent_requests_with_one_idempotency_key(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    headers = auth | {"Idempotency-Key": "same"}
    body = {"customer_name": "A", "products": [LINE]}
    responses = await asyncio.gather(*(client.post("/api/v1/orders", json=body, headers=headers) for _ in range(10)))
    assert {r.status for r in responses} == {201}
    assert len({(await r.json())["data"]["id"] for r in responses}) == 1
    assert await db.fetchval("SELECT count(*) FROM orders") == 1


async def test_a_deleted_source_order_restated_comes_back(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    product = await make_product(client, auth, stock_quantity=5)
    body = {
        "source": "shopify",
        "external_id": "450789",
        "customer_name": "A",
        "items": [{"product_id": product["id"], "quantity": 2}],
    }
    first = (await call(client, "POST", "/api/v1/orders", auth, 201, json=body))["data"]
    await call(client, "DELETE", "/api/v1/orders/bulk", auth, 200, json={"ids": [first["id"]]})
    assert await stock(client, auth, product["id"]) == 5
    back = (await call(client, "POST", "/api/v1/orders", auth, 201, json=body))["data"]
    assert back["id"] == first["id"]
    assert await stock(client, auth, product["id"]) == 3
    assert await event_types(db, first["id"]) == ["order.created", "order.deleted", "order.created"]
    await call(client, "GET", f"/api/v1/orders/{first['id']}", auth, 200)


async def test_phone_numbers_are_stored_in_e164_or_refused(client: Client, auth: dict[str, str]) -> None:
    for i, given in enumerate(("0501234567", "+966 50 123 4567", "00966501234567", "966501234567")):
        line = LINE | {"quantity": i + 1}  # different contents: not a duplicate of the previous one
        order = await make_order(client, auth, customer_phone=given, products=[line])
        assert order["customer_phone"] == "+966501234567", given
    for junk in ("call me", "12", "+1 555"):
        body = await call(
            client,
            "POST",
            "/api/v1/orders",
            auth,
            422,
            json={"customer_name": "A", "customer_phone": junk, "products": [LINE]},
        )
        assert set(body["details"]) == {"customer_phone"}, junk
    order = await make_order(client, auth, customer_phone="")
    assert order["customer_phone"] is None

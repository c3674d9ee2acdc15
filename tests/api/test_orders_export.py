"""GET /api/v1/orders/export: CSV and NDJSON streamed, filtered like the list, parseable back."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import asyncpg

from hub.settings import Settings
from tests.api.order_helpers import Client, call, make_order
from tests.factories import make_key

ROWS = 3000


async def _seed(db: asyncpg.Connection, organization_id: str, count: int) -> None:
    # Thousands of orders straight into the table (the API path is tested elsewhere).
    await db.execute(
        """
        INSERT INTO orders (id, organization_id, source, external_id, created_by, customer_name, customer_phone,
            shipping_address, products, subtotal, discount, tax, delivery_fee, total_amount, currency, status,
            payment_status, fulfillment_status, notes, status_history, created, updated)
        SELECT 'ord_' || lpad(g::text, 8, '0'), $1, CASE WHEN g % 3 = 0 THEN 'salla' ELSE 'manual' END,
            CASE WHEN g % 3 = 0 THEN 'S-' || g END, 'api', 'Customer, "' || g || '"',
            '+9665000' || lpad(g::text, 5, '0'),
            '{"city": "Riyadh"}'::jsonb,
            jsonb_build_array(
                jsonb_build_object('name', 'Line ' || g, 'quantity', 1, 'price', '10.10', 'total', '10.10')
            ),
            10.10, 0, 0.1, 0, 10.20, 'SAR', CASE WHEN g % 2 = 0 THEN 'delivered' ELSE 'pending' END, 'pending',
            'unfulfilled', E'multi\\nline', '[]'::jsonb, now() - g * interval '1 second', now()
        FROM generate_series(1, $2) AS g
        """,
        organization_id,
        count,
    )


async def _org(db: asyncpg.Connection) -> str:
    org: str = await db.fetchval("SELECT organization_id FROM api_keys LIMIT 1")
    return org


async def test_export_csv_parses_back(client: Client, auth: dict[str, str], db: asyncpg.Connection) -> None:
    await _seed(db, await _org(db), ROWS)
    resp = await client.get("/api/v1/orders/export?format=csv", headers=auth)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert len(rows) == ROWS
    assert rows[0]["id"] == "ord_00000001"  # newest first by default
    assert rows[0]["customer_name"] == 'Customer, "1"'
    assert rows[0]["notes"] == "multi\nline"
    assert rows[0]["total_amount"] == "10.20"
    assert json.loads(rows[0]["shipping_address"]) == {"city": "Riyadh"}
    assert json.loads(rows[0]["products"])[0]["price"] == 10.1
    assert sum(Decimal(r["total_amount"]) for r in rows) == Decimal("10.20") * ROWS
    assert len({r["id"] for r in rows}) == ROWS


async def test_export_ndjson_with_filters(client: Client, auth: dict[str, str], db: asyncpg.Connection) -> None:
    await _seed(db, await _org(db), ROWS)
    resp = await client.get(
        "/api/v1/orders/export?format=ndjson&status=delivered&source=salla&sort=created", headers=auth
    )
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/x-ndjson")
    orders = [json.loads(line) for line in (await resp.text()).splitlines()]
    assert len(orders) == ROWS // 6
    assert all(o["status"] == "delivered" and o["source"] == "salla" for o in orders)
    assert [o["created"] for o in orders] == sorted(o["created"] for o in orders)
    listed = await call(client, "GET", "/api/v1/orders?status=delivered&source=salla", auth, 200)
    assert listed["meta"]["total"] == len(orders)


async def test_export_is_scoped_and_validated(
    client: Client, auth: dict[str, str], db: asyncpg.Connection, settings: Settings
) -> None:
    await make_order(client, auth)
    other = {"Authorization": f"Bearer {await make_key(settings, org='other')}"}
    resp = await client.get("/api/v1/orders/export?format=csv", headers=other)
    assert (await resp.text()).count("\n") == 1  # the header only
    resp = await client.get("/api/v1/orders/export?format=ndjson", headers=other)
    assert await resp.text() == ""
    body = await call(client, "GET", "/api/v1/orders/export?format=xml", auth, 422)
    assert set(body["details"]) == {"format"}
    body = await call(client, "GET", "/api/v1/orders/export?date_from=soon", auth, 422)
    assert set(body["details"]) == {"date_from"}
    resp = await client.get("/api/v1/orders/export")
    assert resp.status == 401


async def test_deleted_orders_are_not_exported(client: Client, auth: dict[str, str]) -> None:
    keep = await make_order(client, auth, customer_name="keep")
    gone = await make_order(client, auth, customer_name="gone")
    await call(client, "DELETE", "/api/v1/orders/bulk", auth, 200, json={"ids": [gone["id"]]})
    resp = await client.get("/api/v1/orders/export?format=ndjson", headers=auth)
    assert [json.loads(line)["id"] for line in (await resp.text()).splitlines()] == [keep["id"]]

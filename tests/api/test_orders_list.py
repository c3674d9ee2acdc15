"""GET /api/v1/orders: filters of both seeds, search, dates, sorts, pagination, tenancy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest

from hub.orders import listing as order_list
from hub.orders import query as order_query
from hub.settings import Settings
from tests.api.order_helpers import Client, call, make_contact, make_order
from tests.factories import make_key


async def _ids(client: Client, auth: dict[str, str], query: str) -> list[str]:
    return [o["id"] for o in (await call(client, "GET", f"/api/v1/orders?{query}", auth, 200))["data"]]


async def test_filters(client: Client, auth: dict[str, str]) -> None:
    contact = await make_contact(client, auth)
    a = await make_order(client, auth, source="salla", external_id="S-1", created_by="webhook", payment_status="paid")
    b = await make_order(client, auth, contact_id=contact["id"], created_by="ai_agent", status="confirmed")
    c = await make_order(client, auth, source="zid", external_id="Z-1", fulfillment_status="fulfilled")
    assert await _ids(client, auth, "source=salla") == [a["id"]]
    assert await _ids(client, auth, "source=salla,zid") == [c["id"], a["id"]]
    assert await _ids(client, auth, "payment_status=paid") == [a["id"]]
    assert await _ids(client, auth, "fulfillment_status=fulfilled") == [c["id"]]
    assert await _ids(client, auth, "created_by=ai_agent") == [b["id"]]
    assert await _ids(client, auth, f"contact_id={contact['id']}") == [b["id"]]
    assert await _ids(client, auth, "external_id=Z-1") == [c["id"]]
    assert await _ids(client, auth, "status=pending,confirmed") == [c["id"], b["id"], a["id"]]
    assert await _ids(client, auth, "status=confirmed&source=salla") == []


async def test_search(client: Client, auth: dict[str, str]) -> None:
    a = await make_order(client, auth, customer_name="Ahmed Hassan", customer_phone="0501234567")
    b = await make_order(client, auth, customer_name="Sarah", customer_email="sarah_1@example.com")
    c = await make_order(client, auth, customer_name="Omar", source="salla", external_id="SALLA-ORD-12345")
    assert await _ids(client, auth, "search=hassan") == [a["id"]]
    assert await _ids(client, auth, "search=0501234567") == [a["id"]]  # local form finds the E.164 phone
    assert await _ids(client, auth, "search=%2B9665012") == [a["id"]]
    assert await _ids(client, auth, "search=EXAMPLE.COM") == [b["id"]]
    assert await _ids(client, auth, "search=ord-123") == [c["id"]]
    assert await _ids(client, auth, "search=a_s") == []  # LIKE wildcards are literal ("Hassan" has "ass")
    assert await _ids(client, auth, "search=%25") == []


async def test_dates_and_aliases(client: Client, auth: dict[str, str], db: asyncpg.Connection) -> None:
    orders = [await make_order(client, auth, customer_name=f"d{i}") for i in range(3)]
    for order, when in zip(
        orders, ("2024-01-14T23:59:59.999999Z", "2024-01-15T23:59:59Z", "2024-01-16T00:00:00Z"), strict=True
    ):
        stamp = datetime.fromisoformat(when.replace("Z", "+00:00"))
        await db.execute("UPDATE orders SET created = $2 WHERE id = $1", order["id"], stamp)
    ids = [o["id"] for o in orders]
    assert await _ids(client, auth, "date_from=2024-01-15&date_to=2024-01-15") == [ids[1]]  # the whole UTC day
    assert await _ids(client, auth, "created_from=2024-01-15&created_to=2024-01-16") == [ids[2], ids[1]]
    assert await _ids(client, auth, "date_to=2024-01-15T23:59:59Z") == [ids[1], ids[0]]  # inclusive instant
    assert await _ids(client, auth, "date_from=2024-01-16T02:59:59%2B03:00") == [ids[2], ids[1]]
    assert await _ids(client, auth, "date_from=2024-01-16T02:59:59+03:00") == [ids[2], ids[1]]  # "+" unencoded
    body = await call(client, "GET", "/api/v1/orders?date_from=yesterday", auth, 422)
    assert set(body["details"]) == {"date_from"}
    body = await call(client, "GET", "/api/v1/orders?created_to=2024-13-01", auth, 422)
    assert set(body["details"]) == {"created_to"}


async def test_sorts_end_with_id_and_pages_never_overlap(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    for i in range(25):
        await make_order(client, auth, customer_name=f"o{i}", products=[{"name": "x", "price": i % 4, "quantity": 1}])
    # Many equal timestamps: only the id tiebreaker keeps pages apart.
    same = datetime(2024, 1, 1, tzinfo=UTC)
    await db.execute("UPDATE orders SET created = $1, updated = $1", same)
    for sort in ("created", "-created", "updated", "-updated", "total_amount", "-total_amount", "status", "-status"):
        seen: list[str] = []
        for page in (1, 2, 3):
            seen += await _ids(client, auth, f"sort={sort}&per_page=10&page={page}")
        assert len(seen) == len(set(seen)) == 25, sort
    amounts = [
        o["total_amount"]
        for o in (await call(client, "GET", "/api/v1/orders?sort=-total_amount&limit=100", auth, 200))["data"]
    ]
    assert amounts == sorted(amounts, reverse=True)
    body = await call(client, "GET", "/api/v1/orders?sort=name", auth, 422)
    assert set(body["details"]) == {"sort"}


async def test_default_order_is_newest_first(client: Client, auth: dict[str, str], db: asyncpg.Connection) -> None:
    first = await make_order(client, auth, customer_name="first")
    second = await make_order(client, auth, customer_name="second")
    await db.execute("UPDATE orders SET created = created - interval '1 day' WHERE id = $1", second["id"])
    assert await _ids(client, auth, "") == [first["id"], second["id"]]


async def test_pagination_meta_and_bounds(client: Client, auth: dict[str, str]) -> None:
    for i in range(5):
        await make_order(client, auth, customer_name=f"p{i}")
    body = await call(client, "GET", "/api/v1/orders?per_page=2&page=3", auth, 200)
    assert len(body["data"]) == 1
    assert body["meta"] == {"current_page": 3, "per_page": 2, "total": 5, "has_next": False, "total_exact": True}
    body = await call(client, "GET", "/api/v1/orders?limit=2&page=2", auth, 200)
    assert body["meta"] == {"current_page": 2, "per_page": 2, "total": 5, "has_next": True, "total_exact": True}
    body = await call(client, "GET", "/api/v1/orders?page=9", auth, 200)
    assert body["data"] == []
    assert body["meta"]["total"] == 5
    assert (await call(client, "GET", "/api/v1/orders", auth, 200))["meta"]["per_page"] == 20
    for query, field in (("per_page=101", "per_page"), ("limit=0", "limit"), ("page=0", "page"), ("page=x", "page")):
        body = await call(client, "GET", f"/api/v1/orders?{query}", auth, 422)
        assert field in body["details"], query
    body = await call(client, "GET", "/api/v1/orders?status=lost", auth, 422)
    assert set(body["details"]) == {"status"}


async def test_count_exact_on_request(client: Client, auth: dict[str, str]) -> None:
    for i in range(3):
        await make_order(client, auth, customer_name=f"c{i}")
    body = await call(client, "GET", "/api/v1/orders?per_page=1&count=exact", auth, 200)
    assert body["meta"]["total"] == 3
    assert body["meta"]["total_exact"] is True


async def test_another_organization_sees_nothing(client: Client, auth: dict[str, str], settings: Settings) -> None:
    order = await make_order(client, auth)
    other = {"Authorization": f"Bearer {await make_key(settings, org='other')}"}
    assert await _ids(client, other, "") == []
    for method, path, body in (
        ("GET", f"/api/v1/orders/{order['id']}", None),
        ("PUT", f"/api/v1/orders/{order['id']}", {"notes": "x"}),
        ("PATCH", f"/api/v1/orders/{order['id']}/status", {"status": "confirmed"}),
        ("POST", f"/api/v1/orders/{order['id']}/cancel", {"reason": "x"}),
        ("PUT", f"/api/v1/orders/{order['id']}/items", {"items": [{"name": "x", "price": 1, "quantity": 1}]}),
    ):
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        answer = await call(client, method, path, other, 404, **kwargs)
        assert answer["error"] == "Order not found"
    result = await call(client, "DELETE", "/api/v1/orders/bulk", other, 200, json={"ids": [order["id"]]})
    assert result["data"]["errors"] == {order["id"]: "Order not found"}
    result = await call(
        client,
        "PATCH",
        "/api/v1/orders/bulk/status",
        other,
        200,
        json={"updates": [{"id": order["id"], "status": "confirmed"}]},
    )
    assert result["data"]["failed"] == 1
    untouched = (await call(client, "GET", f"/api/v1/orders/{order['id']}", auth, 200))["data"]
    assert untouched["status"] == "pending"
    assert untouched["notes"] is None


async def test_test_key_sees_its_own_twin(client: Client, auth: dict[str, str], settings: Settings) -> None:
    await make_order(client, auth)
    test_auth = {"Authorization": f"Bearer {await make_key(settings, org='acme', test=True)}"}
    assert await _ids(client, test_auth, "") == []
    mine = await make_order(client, test_auth)
    assert await _ids(client, test_auth, "") == [mine["id"]]


async def test_deleted_orders_leave_lists(client: Client, auth: dict[str, str]) -> None:
    keep = await make_order(client, auth, customer_name="keep")
    gone = await make_order(client, auth, customer_name="gone")
    await call(client, "DELETE", "/api/v1/orders/bulk", auth, 200, json={"ids": [gone["id"]]})
    assert await _ids(client, auth, "") == [keep["id"]]
    assert (datetime.now(UTC) - timedelta(minutes=1)).year >= 2024


async def test_search_plans_agree_with_a_plain_filter(
    client: Client, auth: dict[str, str], db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny window and count cap so every search plan (window, rare, deep) runs on a few rows.
    monkeypatch.setattr(order_list, "WINDOW", 5)
    monkeypatch.setattr(order_query, "COUNT_CAP", 4)
    names = [("Rare" if i % 3 == 2 else "Common") + f" {i}" for i in range(24)]
    for name in names:
        await make_order(client, auth, customer_name=name)
    everything = (await call(client, "GET", "/api/v1/orders?per_page=100", auth, 200))["data"]
    for term, sort in (
        ("common", "-created"),  # many matches: the window, then the deep plan
        ("rare", "-created"),
        ("rare", "total_amount"),
        ("1", "created"),
        ("rare 2", "-created"),  # three matches: the trigram plan with an exact count
    ):
        expected = [
            o["id"]
            for o in sorted(everything, key=lambda o: (o["created"], o["id"]), reverse=sort[0] == "-")
            if term in o["customer_name"].lower()
        ]
        if sort == "total_amount":
            expected = sorted(expected)  # equal amounts: the id decides
        for per_page in (2, 3):
            for page in range(1, len(expected) // per_page + 3):
                body = await call(
                    client,
                    "GET",
                    f"/api/v1/orders?search={quote(term)}&sort={sort}&per_page={per_page}&page={page}",
                    auth,
                    200,
                )
                start = (page - 1) * per_page
                assert [o["id"] for o in body["data"]] == expected[start : start + per_page], (term, sort, page)
                assert body["meta"]["has_next"] == (start + per_page < len(expected))
                if body["meta"]["total_exact"]:
                    assert body["meta"]["total"] == len(expected)
                else:
                    assert body["meta"]["total"] >= start + len(body["data"])
        exact = await call(client, "GET", f"/api/v1/orders?search={quote(term)}&per_page=2&count=exact", auth, 200)
        assert (exact["meta"]["total"], exact["meta"]["total_exact"]) == (len(expected), True)


async def test_an_estimated_total_is_reused_briefly_and_an_exact_one_never(
    client: Client, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(order_query, "COUNT_CAP", 2)
    for n in range(3):
        await make_order(client, auth, customer_name=f"Estimate {n}")
    first = await call(client, "GET", "/api/v1/orders?per_page=1", auth, 200)
    assert first["meta"]["total_exact"] is False
    await make_order(client, auth, customer_name="Estimate 3")
    again = await call(client, "GET", "/api/v1/orders?per_page=1", auth, 200)
    assert (again["meta"]["total"], again["meta"]["total_exact"]) == (first["meta"]["total"], False)
    exact = await call(client, "GET", "/api/v1/orders?per_page=1&count=exact", auth, 200)
    assert (exact["meta"]["total"], exact["meta"]["total_exact"]) == (4, True)
    monkeypatch.setattr(order_query, "ESTIMATE_TTL", 0.0)  # expired: estimated afresh (and still flagged)
    assert (await call(client, "GET", "/api/v1/orders?per_page=1", auth, 200))["meta"]["total_exact"] is False

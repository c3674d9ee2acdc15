"""The status transition table, exhaustively, through PATCH /status, PUT and POST /cancel."""

from __future__ import annotations

import pytest

from hub.orders.transitions import STATUSES, TRANSITIONS
from tests.api.order_helpers import Client, call, make_order

PAIRS = [(old, new) for old in STATUSES for new in STATUSES]


def _allowed(old: str, new: str) -> bool:
    return old == new or new in TRANSITIONS[old]


async def test_transition_table_through_patch(client: Client, auth: dict[str, str]) -> None:
    for old, new in PAIRS:
        order = await make_order(client, auth, status=old, customer_name=f"{old}->{new}")
        body = {"status": new, "cancellation_reason": "because"}
        expected = 200 if _allowed(old, new) else 422
        answer = await call(client, "PATCH", f"/api/v1/orders/{order['id']}/status", auth, expected, json=body)
        if expected == 422:
            assert answer["error"] == "Invalid status transition"
            assert answer["details"]["status"].startswith(f"cannot change from {old} to {new}")
        else:
            assert answer["data"]["status"] == new


@pytest.mark.parametrize("path", ["put", "cancel"])
async def test_transition_table_through_put_and_cancel(client: Client, auth: dict[str, str], path: str) -> None:
    for old in STATUSES:
        order = await make_order(client, auth, status=old, customer_name=old)
        if path == "put":
            expected = 200 if _allowed(old, "cancelled") else 422
            await call(
                client,
                "PUT",
                f"/api/v1/orders/{order['id']}",
                auth,
                expected,
                json={"status": "cancelled", "cancellation_reason": "r"},
            )
        else:
            expected = 200 if "cancelled" in TRANSITIONS[old] else 422
            await call(client, "POST", f"/api/v1/orders/{order['id']}/cancel", auth, expected, json={"reason": "r"})


async def test_processing_is_an_alias_of_preparing(client: Client, auth: dict[str, str]) -> None:
    order = await make_order(client, auth, status="confirmed")
    answer = await call(client, "PUT", f"/api/v1/orders/{order['id']}", auth, 200, json={"status": "processing"})
    assert answer["data"]["status"] == "preparing"
    listed = await call(client, "GET", "/api/v1/orders?status=processing", auth, 200)
    assert [o["id"] for o in listed["data"]] == [order["id"]]


async def test_cancelling_needs_a_reason(client: Client, auth: dict[str, str]) -> None:
    order = await make_order(client, auth)
    body = await call(client, "PATCH", f"/api/v1/orders/{order['id']}/status", auth, 422, json={"status": "cancelled"})
    assert body["details"] == {"cancellation_reason": "is required to cancel an order"}
    await call(client, "PUT", f"/api/v1/orders/{order['id']}", auth, 422, json={"status": "cancelled"})
    body = await call(client, "POST", f"/api/v1/orders/{order['id']}/cancel", auth, 422, json={"reason": ""})
    assert "reason" in body["details"]
    resp = await client.post(f"/api/v1/orders/{order['id']}/cancel", headers=auth)
    assert resp.status == 400  # no body at all
    answer = await call(
        client, "PATCH", f"/api/v1/orders/{order['id']}/status", auth, 200, json={"status": "cancelled", "reason": "r"}
    )
    assert answer["data"]["cancellation_reason"] == "r"


async def test_payment_and_fulfillment_take_any_listed_value(client: Client, auth: dict[str, str]) -> None:
    order = await make_order(client, auth)
    for payment, fulfillment in (("refunded", "returned"), ("pending", "unfulfilled"), ("paid", "partial")):
        answer = await call(
            client,
            "PATCH",
            f"/api/v1/orders/{order['id']}/status",
            auth,
            200,
            json={"payment_status": payment, "fulfillment_status": fulfillment},
        )
        assert (answer["data"]["payment_status"], answer["data"]["fulfillment_status"]) == (payment, fulfillment)
        assert answer["data"]["status"] == "pending"
    body = await call(
        client, "PATCH", f"/api/v1/orders/{order['id']}/status", auth, 422, json={"payment_status": "owed"}
    )
    assert set(body["details"]) == {"payment_status"}
    body = await call(client, "PATCH", f"/api/v1/orders/{order['id']}/status", auth, 422, json={})
    assert set(body["details"]) == {"status"}


async def test_status_history_records_time_and_key(client: Client, auth: dict[str, str], db: object) -> None:
    order = await make_order(client, auth)
    for status in ("confirmed", "preparing", "ready"):
        await call(client, "PATCH", f"/api/v1/orders/{order['id']}/status", auth, 200, json={"status": status})
    got = (await call(client, "GET", f"/api/v1/orders/{order['id']}", auth, 200))["data"]
    history = got["status_history"]
    assert [h["status"] for h in history] == ["pending", "confirmed", "preparing", "ready"]
    assert all(h["by"].startswith("key_") and h["at"].endswith("Z") for h in history)
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)
    # Setting the same status again is a no-op, not a new history entry.
    await call(client, "PATCH", f"/api/v1/orders/{order['id']}/status", auth, 200, json={"status": "ready"})
    again = (await call(client, "GET", f"/api/v1/orders/{order['id']}", auth, 200))["data"]
    assert len(again["status_history"]) == 4
    assert again["updated"] == got["updated"]

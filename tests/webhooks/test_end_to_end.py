"""Issue 5's check, end to end: an API order and an ingested platform order each reach a local
receiver as order.created, order.status_changed and order.cancelled, verifying with the reference
Standard Webhooks library."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from typing import Any

import asyncpg

from tests.conftest import data_path, eventually
from tests.fakes.receiver import Receiver
from tests.webhooks.conftest import Client, create_webhook, org_of, verify

SALLA_SECRET = "salla-webhook-secret"


async def _types_for(receiver: Receiver, path: str, secret: str, order_id: str, count: int) -> list[str]:
    """Verify everything received at ``path``; return the event types of ``order_id`` once ``count`` arrived."""
    found: list[str] = []

    async def arrived() -> bool:
        found.clear()
        for request in receiver.requests(path):
            payload = verify(secret, request)
            if payload["data"]["order"]["id"] == order_id:
                found.append(payload["type"])
        return len(found) >= count

    await eventually(arrived, timeout=15)
    return found


async def _call(client: Client, method: str, path: str, auth: dict[str, str], body: Any) -> Any:
    response = await client.request(method, path, json=body, headers=auth)
    assert response.status in (200, 201), await response.text()
    return (await response.json())["data"]


async def test_an_api_order_reaches_the_subscriber(
    client: Client, auth: dict[str, str], worker: Any, receiver: Receiver
) -> None:
    endpoint = await create_webhook(client, auth, receiver.url("/api-orders"))
    order = await _call(
        client,
        "POST",
        "/api/v1/orders",
        auth,
        {"customer_name": "Sarah Smith", "products": [{"name": "Thing", "price": "10.00", "quantity": 1}]},
    )
    await _call(client, "PATCH", f"/api/v1/orders/{order['id']}/status", auth, {"status": "confirmed"})
    await _call(client, "POST", f"/api/v1/orders/{order['id']}/cancel", auth, {"reason": "customer asked"})

    types = await _types_for(receiver, "/api-orders", endpoint["secret"], order["id"], 4)
    assert sorted(types) == ["order.cancelled", "order.created", "order.status_changed", "order.status_changed"]
    ids = [r.headers["webhook-id"] for r in receiver.requests("/api-orders")]
    assert len(set(ids)) == len(ids)  # one webhook-id per event


def _salla(body: bytes) -> dict[str, str]:
    signature = hmac.new(SALLA_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Salla-Signature": signature, "Content-Type": "application/json"}


def _status_event(created: dict[str, Any], slug: str, when: str) -> bytes:
    """A Salla ``order.status.updated`` for the created order, at ``when`` (Riyadh time)."""
    event = json.loads(data_path("connectors", "payloads", "salla_order_status_updated.json").read_bytes())
    event = copy.deepcopy(event)
    # Salla's status event carries the whole order (issue 19): the same order, its status moved on.
    event["data"]["order"] = {**created["data"], "status": {**event["data"]["order"]["status"], "slug": slug}}
    event["merchant"] = created["merchant"]  # the same store: a connection is bound to one
    event["created_at"] = f"Sun Mar 10 2024 {when} GMT+0300"
    event["data"]["created_at"] = {"date": f"2024-03-10 {when}.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"}
    return json.dumps(event).encode()


async def test_an_ingested_platform_order_reaches_the_subscriber(
    client: Client, auth: dict[str, str], worker: Any, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    endpoint = await create_webhook(client, auth, receiver.url("/salla-orders"))
    org = await org_of(pool, endpoint["id"])
    await pool.execute(
        "INSERT INTO connections (id, organization_id, source, name, secret, settings, created) "
        "VALUES ('conn_wh_salla', $1, 'salla', 'test', $2, '{}'::jsonb, now())",
        org,
        SALLA_SECRET,
    )
    created_body = data_path("connectors", "payloads", "salla_order_created.json").read_bytes()
    created = json.loads(created_body)
    for body in (
        created_body,
        _status_event(created, "delivering", "15:00:00"),
        _status_event(created, "canceled", "16:00:00"),
    ):
        response = await client.post("/hooks/salla/conn_wh_salla", data=body, headers=_salla(body))
        assert response.status == 200, await response.text()
        # One at a time, as the platform would send them: each is processed before the next arrives.
        await eventually(
            lambda: pool.fetchval("SELECT count(*) = 0 FROM inbound_events WHERE status = 'received'"), timeout=15
        )
    order_id = await pool.fetchval(
        "SELECT id FROM orders WHERE source = 'salla' AND external_id = $1", str(created["data"]["id"])
    )
    types = await _types_for(receiver, "/salla-orders", endpoint["secret"], order_id, 4)
    assert types[0] == "order.created"
    assert {"order.status_changed", "order.cancelled"} <= set(types)
    [cancelled] = [
        r for r in receiver.requests("/salla-orders") if verify(endpoint["secret"], r)["type"] == "order.cancelled"
    ]
    payload = verify(endpoint["secret"], cancelled)
    assert payload["data"]["order"]["status"] == "cancelled"
    assert payload["data"]["order"]["source"] == "salla"

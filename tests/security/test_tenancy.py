"""Tenancy: one organization never reads or changes another's data, on any route (always 404).

The routes come from the served ``/openapi.json``, so a route added later is covered or makes this
test fail until it says what kind of id it takes. Organization A gets one object of each kind; then
every route is called with A's ids by B's live key, B's test key and A's own test key (the test
twin is a separate organization): all 404, and A's objects unchanged. The same calls with A's key
succeed, which proves the ids and bodies were good and only the organization differed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.app import create_app
from hub.settings import Settings
from tests.factories import make_key
from tests.fakes.receiver import Receiver
from tests.faults.platform import make_event, sign

Client = TestClient[Any, Any]

#: Which kind of id each ``{id}`` route takes, by path prefix (checked against the served document).
KINDS = {
    "/api/v1/contacts/": "contact",
    "/api/v1/orders/": "order",
    "/api/v1/products/": "product",
    "/api/v1/connections/": "connection",
    "/api/v1/inbound-events/": "inbound_event",
    "/api/v1/webhooks/": "webhook",
    "/api/v1/deliveries/": "delivery",
}
#: Routes with ids that are not organization-scoped API routes, and why.
NOT_TENANT_ROUTES = {
    "/hooks/{source}/{connection_id}": "platforms authenticate with the connection's secret, not a key",
    "/ops/static/{name}": "static files of the ops page",
    "/docs/static/{name}": "static files of the API reference",
    "/ops/api/deliveries/{id}/retry": "the operators' console spans organizations (ops token)",
    "/ops/api/inbound-events/{id}/retry": "the operators' console spans organizations (ops token)",
}
#: A valid body for each route that needs one (so only the organization can make it fail).
BODIES: dict[tuple[str, str], Any] = {
    ("PUT", "/api/v1/orders/{id}"): {"notes": "changed by another organization"},
    ("PATCH", "/api/v1/orders/{id}/status"): {"status": "confirmed"},
    ("POST", "/api/v1/orders/{id}/cancel"): {"reason": "cancelled by another organization"},
    ("PUT", "/api/v1/orders/{id}/items"): {"products": [{"name": "Swapped", "quantity": 2, "price": "5.00"}]},
    ("PUT", "/api/v1/products/{id}"): {"name": "Renamed"},
    ("PUT", "/api/v1/webhooks/{id}"): {"description": "changed"},
    ("POST", "/api/v1/webhooks/{id}/rotate-secret"): {},
    ("POST", "/api/v1/webhooks/{id}/recover"): {"since": "2000-01-01T00:00:00Z"},
}


@dataclass
class Tenant:
    key: str
    ids: dict[str, str]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
async def api(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[Client]:
    roomy = settings.model_copy(update={"rate_limit": "100000/second", "rate_limit_burst": 100000})
    async with TestClient(TestServer(create_app(roomy), host="127.0.0.1")) as test_client:
        yield test_client


async def _data(client: Client, method: str, path: str, auth: dict[str, str], body: Any = None) -> Any:
    resp = await client.request(method, path, headers=auth, json=body)
    assert resp.status < 300, f"{method} {path}: {resp.status} {await resp.text()}"
    return (await resp.json())["data"]


async def _populate(client: Client, settings: Settings, receiver: Receiver) -> Tenant:
    """Organization A with one object of every kind, made through the API as a merchant would."""
    tenant = Tenant(await make_key(settings, org="org-a"), {})
    auth, ids = tenant.auth, tenant.ids
    ids["webhook"] = (
        await _data(client, "POST", "/api/v1/webhooks", auth, {"url": receiver.url("/a"), "event_types": ["order.*"]})
    )["id"]
    contact = {"name": "Ahmed", "phone": "+966501234567"}
    ids["contact"] = (await _data(client, "POST", "/api/v1/contacts", auth, contact))["id"]
    ids["product"] = (
        await _data(client, "POST", "/api/v1/products", auth, {"name": "Shirt", "price": "10.00", "stock_quantity": 50})
    )["id"]
    order = {
        "contact_id": ids["contact"],
        "products": [{"product_id": ids["product"], "quantity": 1}],
    }
    ids["order"] = (await _data(client, "POST", "/api/v1/orders", auth, order))["id"]
    connection = await _data(client, "POST", "/api/v1/connections", auth, {"source": "generic", "name": "A's shop"})
    ids["connection"] = connection["id"]
    event = make_event("tenancy", 1, 0)
    headers = sign(connection["secret"], event.msg_id, event.body)
    resp = await client.post(f"/hooks/generic/{connection['id']}", data=event.body, headers=headers)
    assert resp.status == 200, await resp.text()
    ids["inbound_event"] = (await resp.json())["data"]["id"]
    deliveries = await _data(client, "GET", f"/api/v1/webhooks/{ids['webhook']}/deliveries", auth)
    assert deliveries, "the order made a delivery for A's endpoint"
    ids["delivery"] = deliveries[0]["id"]
    return tenant


def _id_routes(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(method, path template, kind) of every organization-scoped route that takes an id in its path."""
    routes = []
    for path, operations in document["paths"].items():
        if "{" not in path:
            continue
        if path in NOT_TENANT_ROUTES:
            continue
        kind = next((k for prefix, k in KINDS.items() if path.startswith(prefix)), None)
        assert kind is not None, f"{path} takes an id: say its kind in KINDS (or why not in NOT_TENANT_ROUTES)"
        assert re.fullmatch(r"[^{}]*\{id\}[^{}]*", path), f"{path}: one {{id}} expected"
        routes += [(method.upper(), path, kind) for method in operations]
    return routes


async def _snapshot(client: Client, tenant: Tenant) -> dict[str, Any]:
    reads = {
        "order": f"/api/v1/orders/{tenant.ids['order']}",
        "product": f"/api/v1/products/{tenant.ids['product']}",
        "contact": f"/api/v1/contacts/{tenant.ids['contact']}",
        "webhook": f"/api/v1/webhooks/{tenant.ids['webhook']}",
        "secret": f"/api/v1/webhooks/{tenant.ids['webhook']}/secret",
        "connection": f"/api/v1/connections/{tenant.ids['connection']}",
        "delivery": f"/api/v1/deliveries/{tenant.ids['delivery']}",
        "inbound_event": f"/api/v1/inbound-events/{tenant.ids['inbound_event']}",
    }
    return {name: await _data(client, "GET", path, tenant.auth) for name, path in reads.items()}


async def test_every_route_answers_404_for_another_organizations_ids(
    api: Client, settings: Settings, db: asyncpg.Connection
) -> None:
    async with Receiver() as receiver:
        a = await _populate(api, settings, receiver)
        outsiders = {
            "B live": await make_key(settings, org="org-b"),
            "B test": await make_key(settings, org="org-b", test=True),
            "A's test twin": await make_key(settings, org="org-a", test=True),
        }
        document = await (await api.get("/openapi.json")).json()
        routes = _id_routes(document)
        assert len(routes) >= 20, f"only {len(routes)} id routes found: is the document complete?"
        before = await _snapshot(api, a)

        leaks = []
        for who, key in outsiders.items():
            for method, template, kind in routes:
                path = template.replace("{id}", a.ids[kind])
                body = BODIES.get((method, template))
                resp = await api.request(method, path, headers={"Authorization": f"Bearer {key}"}, json=body)
                answer = await resp.json()
                if resp.status != 404 or answer.get("success") is not False:
                    leaks.append(f"{who}: {method} {template} -> {resp.status} {json.dumps(answer)[:200]}")
        assert not leaks, "another organization's ids answered:\n" + "\n".join(leaks)
        assert await _snapshot(api, a) == before, "a 404 call still changed organization A's data"

        # The same calls with A's own key reach the objects: the 404s were about the organization.
        for method, template, kind in sorted(routes, key=lambda r: r[0] == "DELETE"):
            path = template.replace("{id}", a.ids[kind])
            resp = await api.request(method, path, headers=a.auth, json=BODIES.get((method, template)))
            assert resp.status != 404, f"A's own {method} {path} -> 404: {await resp.text()}"
            assert resp.status < 500, f"A's own {method} {path} -> {resp.status}: {await resp.text()}"


async def test_ids_in_bodies_and_filters_do_not_cross_organizations(
    api: Client, settings: Settings, db: asyncpg.Connection
) -> None:
    async with Receiver() as receiver:
        a = await _populate(api, settings, receiver)
    b = Tenant(await make_key(settings, org="org-b"), {})
    before = await _snapshot(api, a)

    # list filters naming A's ids find nothing for B
    for path in (
        f"/api/v1/orders?contact_id={a.ids['contact']}",
        f"/api/v1/orders?search={a.ids['order']}",
        f"/api/v1/inbound-events?connection_id={a.ids['connection']}",
        f"/api/v1/orders/export?contact_id={a.ids['contact']}",
    ):
        resp = await api.get(path, headers=b.auth)
        assert resp.status == 200, path
        if resp.content_type == "application/json":
            assert (await resp.json())["data"] == [], path
        else:
            assert a.ids["order"] not in await resp.text(), path

    # bulk operations on A's order ids: per-item "not found", nothing changes
    bulk_delete = await api.delete("/api/v1/orders/bulk", json={"ids": [a.ids["order"]]}, headers=b.auth)
    assert bulk_delete.status == 200
    assert "not found" in json.dumps(await bulk_delete.json()).lower()
    bulk_status = await api.patch(
        "/api/v1/orders/bulk/status", json={"updates": [{"id": a.ids["order"], "status": "confirmed"}]}, headers=b.auth
    )
    assert bulk_status.status == 200
    assert "not found" in json.dumps(await bulk_status.json()).lower()

    # A's contact and A's catalog product cannot be used in B's orders
    with_contact = await api.post(
        "/api/v1/orders",
        json={"contact_id": a.ids["contact"], "products": [{"name": "X", "quantity": 1, "price": "1.00"}]},
        headers=b.auth,
    )
    assert with_contact.status in (404, 422), await with_contact.text()
    assert "Ahmed" not in await with_contact.text()
    with_product = await api.post(
        "/api/v1/orders",
        json={"customer_name": "B", "products": [{"product_id": a.ids["product"], "quantity": 1}]},
        headers=b.auth,
    )
    assert with_product.status in (404, 422), await with_product.text()
    assert "Shirt" not in await with_product.text()
    assert await _snapshot(api, a) == before


async def test_api_keys_are_stored_only_as_hashes(api: Client, settings: Settings, db: asyncpg.Connection) -> None:
    keys = [await make_key(settings, org="org-a"), await make_key(settings, org="org-a", test=True)]
    for key in keys:  # they work…
        assert (await api.get("/api/v1/orders", headers={"Authorization": f"Bearer {key}"})).status == 200
    rows = [dict(r) for r in await db.fetch("SELECT * FROM api_keys")]
    assert len(rows) == len(keys)
    dump = json.dumps(rows, default=str)
    for key in keys:  # …but no column holds them, nor any long piece of them
        secret_part = key.split("_", 2)[2]
        assert key not in dump
        assert all(secret_part[i : i + 16] not in dump for i in range(len(secret_part) - 16))
    import hashlib

    stored = {r["key_hash"] for r in rows}
    assert stored == {hashlib.sha256(k.encode()).hexdigest() for k in keys}
    assert all(len(r["prefix"]) <= 16 for r in rows), "the displayed prefix must stay short"
    started = time.monotonic()
    assert (await api.get("/api/v1/orders", headers={"Authorization": "Bearer sk_live_" + "x" * 43})).status == 401
    assert time.monotonic() - started < 5


async def test_signing_secrets_are_shown_only_where_documented(
    api: Client, settings: Settings, db: asyncpg.Connection
) -> None:
    """Connection and endpoint secrets sign and verify, so they are kept as they are; the API shows them only
    in the answer that creates them (and an endpoint's at its ``/secret`` route), never in reads or lists."""
    async with Receiver() as receiver:
        a = await _populate(api, settings, receiver)
    created = await _data(api, "POST", "/api/v1/connections", a.auth, {"source": "generic", "name": "another"})
    connection_secret = created["secret"]
    endpoint_secret = (await _data(api, "GET", f"/api/v1/webhooks/{a.ids['webhook']}/secret", a.auth))["secret"]
    reads = [
        f"/api/v1/connections/{created['id']}",
        "/api/v1/connections",
        f"/api/v1/webhooks/{a.ids['webhook']}",
        "/api/v1/webhooks",
        f"/api/v1/deliveries/{a.ids['delivery']}",
        f"/api/v1/webhooks/{a.ids['webhook']}/deliveries",
        f"/api/v1/inbound-events/{a.ids['inbound_event']}",
        "/api/v1/inbound-events",
    ]
    for path in reads:
        text = await (await api.get(path, headers=a.auth)).text()
        for secret in (connection_secret, endpoint_secret, endpoint_secret.removeprefix("whsec_")):
            assert secret not in text, f"{path} shows a signing secret"

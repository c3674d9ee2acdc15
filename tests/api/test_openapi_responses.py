"""Real answers of every route, success and error, checked against ``/openapi.json``.

Each request below is one an integrator or a platform really sends. Its answer must be a status the
document lists for that operation, in a documented media type, and a JSON body must validate
against the schema documented for that status (jsonschema, 2020-12, the dialect of OpenAPI 3.1).
Every documented operation must have been answered with a documented success at least once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator
from pydantic import SecretStr

from hub.app import create_app
from hub.settings import Settings
from tests.conftest import eventually, running_worker
from tests.fakes.receiver import Receiver
from tests.faults.platform import make_event, sign

Client = TestClient[Any, Any]
OPS_TOKEN = "openapi-ops-token-0123456789"
LINE = {"name": "Thing", "quantity": 1, "price": "10.00"}


class Conformance:
    """Sends requests and checks each answer against the document; remembers what it saw."""

    def __init__(self, client: Client, document: dict[str, Any], auth: dict[str, str]) -> None:
        self.client = client
        self.doc = document
        self.auth = auth
        self.seen: set[tuple[str, str, int]] = set()
        self.wrong: list[str] = []

    async def __call__(
        self,
        method: str,
        template: str,
        status: int,
        *,
        path: dict[str, str] | None = None,
        auth: bool = True,
        **kwargs: Any,
    ) -> Any:
        """``method template`` with ``path`` filled in; asserts ``status``, checks it against the document."""
        url = template.format(**(path or {}))
        headers = {**(self.auth if auth else {}), **kwargs.pop("headers", {})}
        resp = await self.client.request(method, url, headers=headers, allow_redirects=False, **kwargs)
        raw = await resp.read()
        assert resp.status == status, f"{method} {url}: {resp.status} {raw[:500]!r}"
        self.seen.add((method, template, status))
        self._check(method, template, resp.status, resp.content_type, raw)
        return json.loads(raw) if resp.content_type == "application/json" else raw

    def _check(self, method: str, template: str, status: int, content_type: str, raw: bytes) -> None:
        where = f"{method} {template} → {status}"
        operation = self.doc["paths"].get(template, {}).get(method.lower())
        if operation is None:
            self.wrong.append(f"{where}: operation not documented")
            return
        documented = operation["responses"].get(str(status))
        if documented is None:
            self.wrong.append(f"{where}: status not documented (documented: {sorted(operation['responses'])})")
            return
        content = documented.get("content")
        if not content:
            if raw:
                self.wrong.append(f"{where}: documented without a body, got {raw[:80]!r}")
            return
        media = content.get(content_type)
        if media is None:
            self.wrong.append(f"{where}: {content_type} not documented (documented: {sorted(content)})")
            return
        if content_type != "application/json" or "schema" not in media:
            return
        schema = {**media["schema"], "components": self.doc["components"]}
        errors = sorted(Draft202012Validator(schema).iter_errors(json.loads(raw)), key=str)
        for error in errors[:3]:
            path = "/".join(str(p) for p in error.absolute_path)
            self.wrong.append(f"{where}: body at /{path}: {error.message[:300]}")


@pytest.fixture
def loose_settings(settings: Settings) -> Settings:
    """An ops token, loopback webhook URLs allowed (the receiver is local) and no rate limit in the way."""
    update = {"ops_token": SecretStr(OPS_TOKEN), "webhook_allow_loopback": True, "rate_limit": "100000/second"}
    return settings.model_copy(update=update)


@pytest.fixture
async def loose(loose_settings: Settings, db: asyncpg.Connection) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(loose_settings), host="127.0.0.1")) as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as server:
        yield server


async def test_every_route_answers_as_documented(
    loose: Client, loose_settings: Settings, auth: dict[str, str], receiver: Receiver
) -> None:
    document = await (await loose.get("/openapi.json")).json()
    call = Conformance(loose, document, auth)
    await _probes_and_docs(call)
    await _contacts_and_products(call)
    await _orders(call)
    event_id = await _platforms(call)
    async with running_worker(loose_settings):
        await _delivered(call, receiver)
    await _retries(call, receiver)  # no worker: nothing is being sent while the retries are asked for
    await _ops(call, event_id)

    assert not call.wrong, "answers that the document does not describe:\n" + "\n".join(call.wrong)
    unanswered = [
        f"{method.upper()} {template}"
        for template, item in document["paths"].items()
        for method, operation in item.items()
        if not any(
            (method.upper(), template, int(status)) in call.seen for status in operation["responses"] if status < "400"
        )
    ]
    assert not unanswered, f"operations never driven to a success: {unanswered}"


async def test_no_route_documents_answers_it_cannot_give(client: Client) -> None:
    document = await (await client.get("/openapi.json")).json()
    paths = document["paths"]
    assert sorted(paths["/healthz"]["get"]["responses"]) == ["200"]
    assert sorted(paths["/readyz"]["get"]["responses"]) == ["200", "503"]
    assert sorted(paths["/docs"]["get"]["responses"]) == ["200"]
    create = paths["/api/v1/orders"]["post"]["responses"]
    assert create["200"]["content"] == create["201"]["content"]  # a duplicate is the order, not an Error
    export = {p["name"] for p in paths["/api/v1/orders/export"]["get"]["parameters"]}
    assert not export & {"page", "per_page", "limit", "count"}
    assert {"page", "per_page"} <= {p["name"] for p in paths["/api/v1/contacts"]["get"]["parameters"]}
    status = next(p for p in paths["/api/v1/orders"]["get"]["parameters"] if p["name"] == "status")
    assert "confirmed" in status["schema"]["items"]["enum"]
    for template, item in paths.items():
        for method, operation in item.items():
            assert "405" not in operation["responses"], (method, template)
            for parameter in operation["parameters"]:
                assert parameter.get("description"), (method, template, parameter["name"])
    assert not list(_null_spelled_apart(document))  # "or null" is written as a type list
    assert "seed 00" not in json.dumps(document)


async def test_request_examples_are_accepted_as_documented(client: Client) -> None:
    document = await (await client.get("/openapi.json")).json()
    checked = 0
    for template, item in document["paths"].items():
        for method, operation in item.items():
            media = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            if "example" in media:
                schema = {**media["schema"], "components": document["components"]}
                errors = [e.message for e in Draft202012Validator(schema).iter_errors(media["example"])]
                assert not errors, (method, template, errors)
                checked += 1
    assert checked >= 15


def _null_spelled_apart(node: Any, where: str = "") -> Any:
    """Places where null is a separate ``{"type": "null"}`` alternative of something that could say it itself."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _null_spelled_apart(item, f"{where}/{i}")
    elif isinstance(node, dict):
        options = node.get("anyOf", [])
        if {"type": "null"} in options and any("$ref" not in o for o in options if o != {"type": "null"}):
            yield where
        for key, value in node.items():
            yield from _null_spelled_apart(value, f"{where}/{key}")


async def _probes_and_docs(call: Conformance) -> None:
    await call("GET", "/healthz", 200, auth=False)
    await call("GET", "/readyz", 200, auth=False)
    await call("GET", "/openapi.json", 200, auth=False)
    await call("GET", "/docs", 200, auth=False)
    await call("GET", "/docs/static/{name}", 200, path={"name": "docs.js"}, auth=False)
    await call("GET", "/docs/static/{name}", 200, path={"name": "swagger-ui.css"}, auth=False)
    await call("GET", "/docs/static/{name}", 404, path={"name": "nope.js"}, auth=False)
    await call("GET", "/metrics", 200, auth=False)


async def _contacts_and_products(call: Conformance) -> None:
    contact = (await call("POST", "/api/v1/contacts", 201, json={"name": "Sara", "phone": "+966501234567"}))["data"]
    await call("POST", "/api/v1/contacts", 422, json={"name": ""})
    await call("POST", "/api/v1/contacts", 400, data=b"{not json", headers={"Content-Type": "application/json"})
    await call("POST", "/api/v1/contacts", 401, json={"name": "x"}, auth=False)
    await call("GET", "/api/v1/contacts", 200, params={"search": "sar"})
    await call("GET", "/api/v1/contacts", 422, params={"page": "0"})
    await call("GET", "/api/v1/contacts/{id}", 200, path={"id": contact["id"]})
    await call("GET", "/api/v1/contacts/{id}", 404, path={"id": "con_missing"})

    body = {"name": "Shirt", "sku": "SH-1", "price": 150, "stock_quantity": 5}
    product = (await call("POST", "/api/v1/products", 201, json=body))["data"]
    await call("POST", "/api/v1/products", 422, json={"name": "No price"})
    await call("GET", "/api/v1/products", 200, params={"in_stock": "true"})
    await call("GET", "/api/v1/products", 422, params={"per_page": "1000"})
    await call("GET", "/api/v1/products/{id}", 200, path={"id": product["id"]})
    await call("PUT", "/api/v1/products/{id}", 200, path={"id": product["id"]}, json={"price": 140})
    await call("PUT", "/api/v1/products/{id}", 422, path={"id": product["id"]}, json={"price": -1})
    await call("DELETE", "/api/v1/products/{id}", 200, path={"id": product["id"]})
    await call("DELETE", "/api/v1/products/{id}", 404, path={"id": product["id"]})


async def _orders(call: Conformance) -> None:
    body = {"customer_name": "Sara", "source": "api", "external_id": "ext-1", "products": [LINE]}
    order = (await call("POST", "/api/v1/orders", 201, json=body))["data"]
    await call("POST", "/api/v1/orders", 200, json=body)  # the same order again: the stored one
    keyed: dict[str, Any] = {"headers": {"Idempotency-Key": "k-1"}}
    await call("POST", "/api/v1/orders", 201, json={"customer_name": "B", "products": [LINE]}, **keyed)
    await call("POST", "/api/v1/orders", 409, json={"customer_name": "C", "products": [LINE]}, **keyed)
    await call("POST", "/api/v1/orders", 422, json={"products": [{"quantity": 0}]})
    oid = {"id": order["id"]}
    await call("GET", "/api/v1/orders", 200, params={"status": "pending,confirmed", "sort": "-created"})
    await call("GET", "/api/v1/orders", 422, params={"status": "lost"})
    await call("GET", "/api/v1/orders/export", 200, params={"format": "ndjson"})
    await call("GET", "/api/v1/orders/export", 200)
    await call("GET", "/api/v1/orders/export", 422, params={"format": "xml"})
    await call("GET", "/api/v1/orders/{id}", 200, path=oid)
    await call("GET", "/api/v1/orders/{id}", 404, path={"id": "ord_missing"})
    await call("PUT", "/api/v1/orders/{id}", 200, path=oid, json={"notes": "ring twice"})
    await call("PUT", "/api/v1/orders/{id}/items", 200, path=oid, json={"items": [LINE, LINE]})
    await call("PATCH", "/api/v1/orders/{id}/status", 200, path=oid, json={"status": "confirmed"})
    await call("PATCH", "/api/v1/orders/{id}/status", 422, path=oid, json={"status": "lost"})
    await call("POST", "/api/v1/orders/{id}/cancel", 200, path=oid, json={"reason": "customer asked"})
    bulk = await call("POST", "/api/v1/orders/bulk", 200, json=[{"customer_name": "D", "products": [LINE]}, {}])
    await call("POST", "/api/v1/orders/bulk", 422, json=[])
    made = [r["id"] for r in bulk["data"]["results"] if r.get("id")] if "results" in bulk["data"] else []
    updates = [{"id": order["id"], "status": "confirmed"}]
    await call("PATCH", "/api/v1/orders/bulk/status", 200, json={"updates": updates})
    await call("DELETE", "/api/v1/orders/bulk", 200, json={"ids": [order["id"], *made]})
    await call("DELETE", "/api/v1/orders/bulk", 422, json={"ids": []})


async def _platforms(call: Conformance) -> str:
    connection = (await call("POST", "/api/v1/connections", 201, json={"source": "generic", "name": "Shop"}))["data"]
    assert connection["id"].startswith("conn_")
    await call("POST", "/api/v1/connections", 422, json={"source": "nowhere", "name": "x"})
    await call("GET", "/api/v1/connections", 200, params={"source": "generic"})
    await call("GET", "/api/v1/connections/{id}", 200, path={"id": connection["id"]})
    await call("GET", "/api/v1/connections/{id}", 404, path={"id": "conn_missing"})
    pulled_body = {
        "source": "chat_agent",
        "name": "Agent",
        "settings": {"base_url": "http://127.0.0.1:9", "api_key": "sk_live_remote_key_000000"},
    }
    pulled = (await call("POST", "/api/v1/connections", 201, json=pulled_body))["data"]
    assert pulled["sync"]["pull"] is True
    sync_path = "/api/v1/connections/{id}/sync"
    await call("POST", sync_path, 202, path={"id": pulled["id"]}, json={"since": "2026-01-01T00:00:00Z"})
    await call("POST", sync_path, 422, path={"id": pulled["id"]}, json={"since": "yesterday"})
    await call("POST", sync_path, 422, path={"id": connection["id"]})  # webhook-only
    await call("POST", sync_path, 404, path={"id": "conn_missing"})
    await call("POST", "/api/v1/connections/{id}/subscribe", 202, path={"id": pulled["id"]})
    await call("POST", "/api/v1/connections/{id}/subscribe", 404, path={"id": "conn_missing"})
    await call("DELETE", "/api/v1/connections/{id}", 200, path={"id": pulled["id"]})

    hook = "/hooks/{source}/{connection_id}"
    where = {"source": "generic", "connection_id": connection["id"]}
    event = make_event("openapi", 1, 0)
    signed = sign(connection["secret"], event.msg_id, event.body)
    stored = (await call("POST", hook, 200, path=where, data=event.body, headers=signed, auth=False))["data"]
    again = await call("POST", hook, 200, path=where, data=event.body, headers=signed, auth=False)
    assert again["data"]["duplicate"] is True
    bad = {**signed, "webhook-signature": "v1,AAAA"}
    await call("POST", hook, 401, path=where, data=event.body, headers=bad, auth=False)
    elsewhere = {"source": "generic", "connection_id": "conn_missing"}
    await call("POST", hook, 404, path=elsewhere, data=event.body, headers=signed, auth=False)

    await call("GET", "/api/v1/inbound-events", 200, params={"status": "received", "per_page": "5"})
    await call("GET", "/api/v1/inbound-events", 422, params={"status": "bogus"})
    await call("GET", "/api/v1/inbound-events/{id}", 200, path={"id": stored["id"]})
    await call("GET", "/api/v1/inbound-events/{id}", 404, path={"id": "in_missing"})
    await call("POST", "/api/v1/inbound-events/{id}/retry", 202, path={"id": stored["id"]})
    await call("POST", "/api/v1/inbound-events/{id}/retry", 404, path={"id": "in_missing"})
    await call("DELETE", "/api/v1/connections/{id}", 200, path={"id": connection["id"]})
    await call("DELETE", "/api/v1/connections/{id}", 404, path={"id": connection["id"]})
    return str(stored["id"])


async def _delivered(call: Conformance, receiver: Receiver) -> None:
    body = {"url": receiver.url("/orders"), "event_types": ["order.*"]}
    endpoint = (await call("POST", "/api/v1/webhooks", 201, json=body))["data"]
    await call("POST", "/api/v1/webhooks", 422, json={"url": "ftp://x", "event_types": ["order.*"]})
    wid = {"id": endpoint["id"]}
    await call("GET", "/api/v1/webhooks", 200, params={"enabled": "true"})
    await call("GET", "/api/v1/webhooks", 422, params={"enabled": "maybe"})
    await call("GET", "/api/v1/webhooks/{id}", 200, path=wid)
    await call("GET", "/api/v1/webhooks/{id}", 404, path={"id": "we_missing"})
    await call("PUT", "/api/v1/webhooks/{id}", 200, path=wid, json={"description": "orders"})
    await call("PUT", "/api/v1/webhooks/{id}", 422, path=wid, json={"event_types": []})
    await call("GET", "/api/v1/webhooks/{id}/secret", 200, path=wid)
    await call("POST", "/api/v1/webhooks/{id}/rotate-secret", 200, path=wid)
    delivery = (await call("POST", "/api/v1/webhooks/{id}/test", 202, path=wid))["data"]
    await call("GET", "/api/v1/webhooks/{id}/deliveries", 200, path=wid, params={"status": "pending"})
    await call("GET", "/api/v1/webhooks/{id}/deliveries", 422, path=wid, params={"status": "lost"})
    await call("POST", "/api/v1/webhooks/{id}/recover", 202, path=wid, json={"since": "2000-01-01T00:00:00Z"})
    await call("POST", "/api/v1/webhooks/{id}/recover", 422, path=wid, json={"since": "yesterday"})
    did = {"id": delivery["id"]}
    await call("GET", "/api/v1/deliveries/{id}", 200, path=did)
    await call("GET", "/api/v1/deliveries/{id}", 404, path={"id": "dlv_missing"})
    await call("POST", "/api/v1/deliveries/{id}/retry", 404, path={"id": "dlv_missing"})
    await _until_delivered(call, delivery["id"])
    await call("POST", "/api/v1/deliveries/{id}/retry", 409, path=did)  # it already succeeded
    await call("POST", "/ops/api/deliveries/{id}/retry", 409, path=did, auth=False, headers=_OPS)
    await call("PUT", "/api/v1/webhooks/{id}", 200, path=wid, json={"enabled": False})
    await call("POST", "/api/v1/webhooks/{id}/test", 409, path=wid)  # a disabled endpoint
    await call("DELETE", "/api/v1/webhooks/{id}", 200, path=wid)
    await call("DELETE", "/api/v1/webhooks/{id}", 404, path=wid)


async def _retries(call: Conformance, receiver: Receiver) -> None:
    body = {"url": receiver.url("/later"), "event_types": ["order.*"]}
    endpoint = (await call("POST", "/api/v1/webhooks", 201, json=body))["data"]
    delivery = (await call("POST", "/api/v1/webhooks/{id}/test", 202, path={"id": endpoint["id"]}))["data"]
    did = {"id": delivery["id"]}
    await call("POST", "/api/v1/deliveries/{id}/retry", 202, path=did)
    await call("POST", "/ops/api/deliveries/{id}/retry", 200, path=did, auth=False, headers=_OPS)


_OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}


async def _until_delivered(call: Conformance, delivery_id: str) -> None:
    async def done() -> bool:
        resp = await call.client.get(f"/api/v1/deliveries/{delivery_id}", headers=call.auth)
        return bool((await resp.json())["data"]["status"] == "succeeded")

    await eventually(done, timeout=15)


async def _ops(call: Conformance, event_id: str) -> None:
    await call("GET", "/ops", 303, auth=False)  # to the login form
    await call("GET", "/ops", 303, auth=False, params={"token": OPS_TOKEN})  # the token becomes a cookie
    await call("GET", "/ops", 200, auth=False, headers=_OPS)
    await call("GET", "/ops/static/{name}", 200, path={"name": "ops.js"}, auth=False)
    await call("GET", "/ops/static/{name}", 200, path={"name": "ops.css"}, auth=False)
    await call("GET", "/ops/static/{name}", 404, path={"name": "secrets.txt"}, auth=False)
    await call("GET", "/ops/login", 200, auth=False)
    await call("POST", "/ops/login", 303, auth=False, data={"token": OPS_TOKEN})
    await call("POST", "/ops/login", 401, auth=False, data={"token": "wrong"})
    await call("POST", "/ops/logout", 303, auth=False)
    await call("GET", "/ops/api/summary", 200, auth=False, headers=_OPS)
    await call("GET", "/ops/api/summary", 401, auth=False)
    await call("POST", "/ops/api/deliveries/{id}/retry", 404, path={"id": "dlv_missing"}, auth=False, headers=_OPS)
    await call("POST", "/ops/api/inbound-events/{id}/retry", 404, path={"id": "in_missing"}, auth=False, headers=_OPS)
    await call("POST", "/ops/api/deliveries/{id}/retry", 401, path={"id": "dlv_missing"}, auth=False)
    await call("POST", "/ops/api/inbound-events/{id}/retry", 200, path={"id": event_id}, auth=False, headers=_OPS)

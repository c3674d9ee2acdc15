"""``/api/v1/webhooks`` CRUD, validation, SSRF refusals, secrets and tenancy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.app import create_app
from hub.settings import Settings
from tests.conftest import make_key
from tests.webhooks.conftest import Client, create_webhook, emit, org_of

URL = "http://127.0.0.1:9/hook"


async def _json(response: Any) -> Any:
    return await response.json()


async def test_create_returns_id_and_secret_and_secret_is_retrievable(client: Client, auth: dict[str, str]) -> None:
    response = await client.post("/api/v1/webhooks", json={"url": URL, "event_types": ["order.*"]}, headers=auth)
    assert response.status == 201
    data = (await _json(response))["data"]
    assert data["id"].startswith("whk_")
    assert data["secret"].startswith("whsec_")
    assert data["event_types"] == ["order.*"]
    assert data["enabled"] is True
    assert data["url"] == URL

    shown = (await _json(await client.get(f"/api/v1/webhooks/{data['id']}", headers=auth)))["data"]
    assert "secret" not in shown
    assert shown["id"] == data["id"]
    secret = (await _json(await client.get(f"/api/v1/webhooks/{data['id']}/secret", headers=auth)))["data"]
    assert secret == {"secret": data["secret"], "previous_secret": None, "previous_secret_expires_at": None}


@pytest.mark.parametrize(
    ("body", "field", "why"),
    [
        ({"url": "ftp://example.com/x", "event_types": ["order.*"]}, "url", "scheme"),
        ({"url": "not a url", "event_types": ["order.*"]}, "url", ""),
        ({"url": "http://user:pw@example.com/", "event_types": ["order.*"]}, "url", "credentials"),
        ({"url": "http://10.0.0.7/hook", "event_types": ["order.*"]}, "url", "private"),
        ({"url": "http://192.168.1.10/hook", "event_types": ["order.*"]}, "url", "private"),
        ({"url": "http://169.254.169.254/latest/meta-data", "event_types": ["order.*"]}, "url", "metadata"),
        ({"url": "http://169.254.10.1/", "event_types": ["order.*"]}, "url", "link-local"),
        ({"url": "http://[fd00:ec2::254]/", "event_types": ["order.*"]}, "url", "metadata"),
        ({"url": "http://0x0a000001/", "event_types": ["order.*"]}, "url", "private"),
        ({"url": "http://[::ffff:10.0.0.1]/", "event_types": ["order.*"]}, "url", "private"),
        ({"url": "http://unresolvable.invalid/", "event_types": ["order.*"]}, "url", "resolve"),
        ({"url": URL, "event_types": ["order.shipped_by_drone"]}, "event_types.0", "unknown event type"),
        ({"url": URL, "event_types": ["payment.*"]}, "event_types.0", "unknown event type"),
        ({"url": URL, "event_types": []}, "event_types", ""),
        ({"url": URL}, "event_types", ""),
        ({"url": URL, "event_types": ["order.*"], "source": "Not A Source!"}, "source", ""),
        ({"url": URL, "event_types": ["order.*"], "colour": "red"}, "colour", ""),
    ],
)
async def test_invalid_input_is_422_naming_the_field(
    client: Client, auth: dict[str, str], body: dict[str, Any], field: str, why: str
) -> None:
    response = await client.post("/api/v1/webhooks", json=body, headers=auth)
    assert response.status == 422, await response.text()
    details = (await _json(response))["details"]
    assert field in details, details
    assert why in details[field]


async def test_event_type_wildcards_and_exact_types_are_accepted(client: Client, auth: dict[str, str]) -> None:
    for types in (["*"], ["order.*"], ["order.created", "order.cancelled", "order.created"]):
        data = await create_webhook(client, auth, URL, event_types=types)
        assert data["event_types"] == list(dict.fromkeys(types))


@pytest.fixture
async def strict_client(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[Client]:
    """The app with production's SSRF policy: loopback refused."""
    strict = settings.model_copy(update={"webhook_allow_loopback": False})
    async with TestClient(TestServer(create_app(strict), host="127.0.0.1")) as test_client:
        yield test_client


async def test_loopback_is_refused_unless_allowed(strict_client: Client, settings: Settings) -> None:
    auth = {"Authorization": f"Bearer {await make_key(settings)}"}
    for url in ("http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]/", "http://2130706433/"):
        response = await strict_client.post("/api/v1/webhooks", json={"url": url, "event_types": ["*"]}, headers=auth)
        assert response.status == 422, url
        assert "loopback" in (await _json(response))["details"]["url"]
    response = await strict_client.post(
        "/api/v1/webhooks", json={"url": "http://0.0.0.0/", "event_types": ["*"]}, headers=auth
    )
    assert "unspecified" in (await _json(response))["details"]["url"]


async def test_list_get_update_delete(client: Client, auth: dict[str, str]) -> None:
    first = await create_webhook(client, auth, URL, description="first")
    second = await create_webhook(client, auth, "http://localhost:9/two", description="second", enabled=False)
    page = await _json(await client.get("/api/v1/webhooks?per_page=1", headers=auth))
    assert page["meta"] == {"current_page": 1, "per_page": 1, "total": 2, "has_next": True}
    assert page["data"][0]["id"] == second["id"]  # newest first
    disabled = await _json(await client.get("/api/v1/webhooks?enabled=false", headers=auth))
    assert [w["id"] for w in disabled["data"]] == [second["id"]]
    assert disabled["data"][0]["disabled_reason"] == "disabled by its owner"

    response = await client.put(f"/api/v1/webhooks/{first['id']}", json={"description": "renamed"}, headers=auth)
    updated = (await _json(response))["data"]
    assert updated["description"] == "renamed"
    assert updated["url"] == URL
    assert updated["event_types"] == ["order.*"]
    response = await client.put(f"/api/v1/webhooks/{first['id']}", json={"url": "http://10.1.2.3/"}, headers=auth)
    assert response.status == 422
    assert "url" in (await _json(response))["details"]
    response = await client.put(f"/api/v1/webhooks/{first['id']}", json={"event_types": ["nope"]}, headers=auth)
    assert response.status == 422
    assert "event_types.0" in (await _json(response))["details"]

    response = await client.put(f"/api/v1/webhooks/{second['id']}", json={"enabled": True}, headers=auth)
    enabled = (await _json(response))["data"]
    assert enabled["enabled"] is True
    assert enabled["disabled_reason"] is None
    assert enabled["disabled_at"] is None

    response = await client.delete(f"/api/v1/webhooks/{first['id']}", headers=auth)
    assert response.status == 200
    assert (await client.get(f"/api/v1/webhooks/{first['id']}", headers=auth)).status == 404
    assert (await _json(await client.get("/api/v1/webhooks", headers=auth)))["meta"]["total"] == 1


async def test_rotate_secret_keeps_the_old_one_during_the_overlap(
    client: Client, auth: dict[str, str], settings: Settings
) -> None:
    created = await create_webhook(client, auth, URL)
    response = await client.post(f"/api/v1/webhooks/{created['id']}/rotate-secret", headers=auth)
    assert response.status == 200
    rotated = (await _json(response))["data"]
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != created["secret"]
    assert rotated["previous_secret"] == created["secret"]
    assert rotated["previous_secret_expires_at"] is not None
    shown = (await _json(await client.get(f"/api/v1/webhooks/{created['id']}", headers=auth)))["data"]
    assert shown["secret_rotation_ends_at"] == rotated["previous_secret_expires_at"]

    own = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
    response = await client.post(f"/api/v1/webhooks/{created['id']}/rotate-secret", json={"secret": own}, headers=auth)
    assert (await _json(response))["data"]["secret"] == own
    response = await client.post(
        f"/api/v1/webhooks/{created['id']}/rotate-secret", json={"secret": "whsec_short"}, headers=auth
    )
    assert response.status == 422
    assert "secret" in (await _json(response))["details"]


async def test_another_organizations_ids_are_404_on_every_route(
    client: Client, auth: dict[str, str], settings: Settings, pool: asyncpg.Pool
) -> None:
    mine = await create_webhook(client, auth, URL)
    delivery_id = await _a_delivery(client, auth, mine["id"], pool)
    other = {"Authorization": f"Bearer {await make_key(settings, org='globex')}"}
    wid = mine["id"]
    routes = [
        ("GET", f"/api/v1/webhooks/{wid}", None),
        ("PUT", f"/api/v1/webhooks/{wid}", {"description": "x"}),
        ("DELETE", f"/api/v1/webhooks/{wid}", None),
        ("GET", f"/api/v1/webhooks/{wid}/secret", None),
        ("POST", f"/api/v1/webhooks/{wid}/rotate-secret", None),
        ("POST", f"/api/v1/webhooks/{wid}/test", None),
        ("GET", f"/api/v1/webhooks/{wid}/deliveries", None),
        ("POST", f"/api/v1/webhooks/{wid}/recover", {"since": "2020-01-01T00:00:00Z"}),
        ("GET", f"/api/v1/deliveries/{delivery_id}", None),
        ("POST", f"/api/v1/deliveries/{delivery_id}/retry", None),
    ]
    for method, path, body in routes:
        response = await client.request(method, path, json=body, headers=other)
        assert response.status == 404, (method, path, response.status)
        assert (await _json(response))["success"] is False
    listed = await _json(await client.get("/api/v1/webhooks", headers=other))
    assert listed["data"] == []
    assert listed["meta"]["total"] == 0
    # ...and nothing changed for the owner.
    assert (await client.get(f"/api/v1/webhooks/{wid}", headers=auth)).status == 200
    secret = (await _json(await client.get(f"/api/v1/webhooks/{wid}/secret", headers=auth)))["data"]
    assert secret["secret"] == mine["secret"]


async def _a_delivery(client: Client, auth: dict[str, str], webhook_id: str, pool: asyncpg.Pool) -> str:
    response = await client.post(f"/api/v1/webhooks/{webhook_id}/test", headers=auth)
    assert response.status == 202
    delivery_id: str = (await _json(response))["data"]["id"]
    return delivery_id


async def test_pausing_or_deleting_fails_pending_deliveries_and_recover_requeues_them(
    client: Client, auth: dict[str, str], pool: asyncpg.Pool
) -> None:
    paused = await create_webhook(client, auth, URL)
    deleted = await create_webhook(client, auth, URL)
    await emit(pool, None, await org_of(pool, paused["id"]), "order.created")  # no worker: both stay pending
    await client.put(f"/api/v1/webhooks/{paused['id']}", json={"enabled": False}, headers=auth)
    await client.delete(f"/api/v1/webhooks/{deleted['id']}", headers=auth)
    rows = {r["endpoint_id"]: r for r in await pool.fetch("SELECT endpoint_id, status, last_error FROM deliveries")}
    assert rows[paused["id"]]["status"] == "failed"
    assert rows[paused["id"]]["last_error"] == "endpoint disabled: disabled by its owner"
    assert rows[deleted["id"]]["status"] == "failed"
    assert rows[deleted["id"]]["last_error"] == "endpoint deleted"

    since = {"since": "2000-01-01T00:00:00Z"}
    response = await client.post(f"/api/v1/webhooks/{paused['id']}/recover", json=since, headers=auth)
    assert response.status == 409  # enable it first
    await client.put(f"/api/v1/webhooks/{paused['id']}", json={"enabled": True}, headers=auth)
    response = await client.post(f"/api/v1/webhooks/{paused['id']}/recover", json=since, headers=auth)
    assert (await _json(response))["data"] == {"count": 1}
    assert await pool.fetchval("SELECT status FROM deliveries WHERE endpoint_id = $1", paused["id"]) == "pending"
    response = await client.post(
        f"/api/v1/webhooks/{paused['id']}/recover", json={"since": "2999-01-01T00:00:00Z"}, headers=auth
    )
    assert (await _json(response))["data"] == {"count": 0}

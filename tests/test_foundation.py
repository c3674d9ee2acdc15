"""Health, auth and the error shape on the real app with real Postgres and Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.settings import Settings
from hub.web import middleware
from tests.factories import make_key

Client = TestClient[Any, Any]


async def test_healthz_and_readyz(client: Client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json()) == {"status": "ok"}
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["checks"] == {"postgres": True, "redis": True}


async def test_missing_key_is_401_in_error_shape(client: Client) -> None:
    resp = await client.get("/api/v1/contacts")
    assert resp.status == 401
    body = await resp.json()
    assert body["success"] is False
    assert body["code"] == 401
    assert body["error"] == "Missing API key"


async def test_malformed_and_unknown_keys_are_401(client: Client) -> None:
    for header in ("Basic abc", "Bearer", "Bearer sk_live_nope", "Bearer " + "x" * 50, "Token sk_live_" + "a" * 40):
        resp = await client.get("/api/v1/contacts", headers={"Authorization": header})
        assert resp.status == 401, header
        assert (await resp.json())["code"] == 401


async def test_key_maps_to_its_organization_only(client: Client, settings: Settings, auth: dict[str, str]) -> None:
    resp = await client.post("/api/v1/contacts", json={"name": "Ahmed", "phone": "0501234567"}, headers=auth)
    assert resp.status == 201, await resp.text()
    contact = (await resp.json())["data"]
    assert contact["phone"] == "+966501234567"
    other = {"Authorization": f"Bearer {await make_key(settings, org='other')}"}
    resp = await client.get(f"/api/v1/contacts/{contact['id']}", headers=other)
    assert resp.status == 404
    listed = await (await client.get("/api/v1/contacts", headers=other)).json()
    assert listed["data"] == []
    assert listed["meta"] == {"current_page": 1, "per_page": 20, "total": 0, "has_next": False}


async def test_test_key_sees_the_test_twin_not_live_data(
    client: Client, settings: Settings, auth: dict[str, str]
) -> None:
    await client.post("/api/v1/contacts", json={"name": "Live customer"}, headers=auth)
    test_auth = {"Authorization": f"Bearer {await make_key(settings, org='acme', test=True)}"}
    assert test_auth["Authorization"].startswith("Bearer sk_test_")
    listed = await (await client.get("/api/v1/contacts", headers=test_auth)).json()
    assert listed["data"] == []


async def test_revoked_key_is_401(client: Client, settings: Settings, db: Any) -> None:
    key = await make_key(settings, org="acme")
    await db.execute("UPDATE api_keys SET revoked_at = now()")
    resp = await client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 401
    assert (await resp.json())["error"] == "Invalid or revoked API key"


async def test_a_key_revoked_after_use_stops_working_within_the_cache_ttl(
    client: Client, settings: Settings, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(middleware, "KEY_TTL", 0.05)
    auth = {"Authorization": f"Bearer {await make_key(settings, org='acme')}"}
    assert (await client.get("/api/v1/contacts", headers=auth)).status == 200
    await db.execute("UPDATE api_keys SET revoked_at = now()")
    await asyncio.sleep(0.1)
    assert (await client.get("/api/v1/contacts", headers=auth)).status == 401


async def test_keys_are_stored_only_as_hashes(settings: Settings, db: Any) -> None:
    key = await make_key(settings, org="acme")
    rows = await db.fetch("SELECT * FROM api_keys")
    assert len(rows) == 1
    assert all(key not in str(value) for value in dict(rows[0]).values())


async def test_malformed_json_is_400(client: Client, auth: dict[str, str]) -> None:
    resp = await client.post(
        "/api/v1/contacts", data=b"{not json", headers={**auth, "Content-Type": "application/json"}
    )
    assert resp.status == 400
    body = await resp.json()
    assert body == {"success": False, "code": 400, "error": "Malformed JSON", "details": body["details"]}


async def test_validation_names_the_field(client: Client, auth: dict[str, str]) -> None:
    resp = await client.post("/api/v1/contacts", json={"name": "", "email": "nope"}, headers=auth)
    assert resp.status == 422
    body = await resp.json()
    assert body["error"] == "Validation failed"
    assert set(body["details"]) == {"name", "email"}


async def test_unknown_route_404_wrong_method_405(client: Client, auth: dict[str, str]) -> None:
    resp = await client.get("/no/such/route")
    assert resp.status == 404
    assert (await resp.json())["code"] == 404
    resp = await client.delete("/healthz")
    assert resp.status == 405
    assert (await resp.json())["error"] == "Method not allowed"


async def test_body_over_limit_is_413(client: Client, settings: Settings, auth: dict[str, str]) -> None:
    big = b'{"name": "' + b"x" * (settings.max_body_bytes + 10) + b'"}'
    resp = await client.post("/api/v1/contacts", data=big, headers={**auth, "Content-Type": "application/json"})
    assert resp.status == 413
    assert (await resp.json())["code"] == 413


async def test_bad_pagination_is_422(client: Client, auth: dict[str, str]) -> None:
    for query in ("per_page=0", "per_page=101", "limit=500", "page=0", "page=abc"):
        resp = await client.get(f"/api/v1/contacts?{query}", headers=auth)
        assert resp.status == 422, query

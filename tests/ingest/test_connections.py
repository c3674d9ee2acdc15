"""``/api/v1/connections``: create (secret once), read, list, delete, tenancy, validation."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.app import create_app
from hub.settings import Settings
from tests.factories import make_key

Client = TestClient[Any, Any]


async def _create(client: Client, auth: dict[str, str], **body: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/api/v1/connections", json=body, headers=auth)
    return resp.status, await resp.json()


async def test_create_salla_answers_201_with_id_inbound_url_and_secret_once(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    status, body = await _create(
        client, auth, source="salla", name="My Salla store", secret="s3cret-from-salla-partners"
    )
    assert status == 201, body
    data = body["data"]
    assert data["id"].startswith("conn_")
    assert data["source"] == "salla"
    assert data["name"] == "My Salla store"
    assert data["settings"] == {}
    assert data["secret"] == "s3cret-from-salla-partners"
    # The request's own scheme, host and port when HUB_PUBLIC_URL is not set.
    assert data["inbound_url"] == f"http://{client.host}:{client.port}/hooks/salla/{data['id']}"
    assert data["created"].endswith("Z")
    assert await db.fetchval("SELECT secret FROM connections WHERE id = $1", data["id"]) == "s3cret-from-salla-partners"

    got = await client.get(f"/api/v1/connections/{data['id']}", headers=auth)
    assert got.status == 200
    shown = (await got.json())["data"]
    assert shown["secret"] is None
    assert shown["inbound_url"] == data["inbound_url"]
    listed = await (await client.get("/api/v1/connections", headers=auth)).json()
    assert [c["id"] for c in listed["data"]] == [data["id"]]
    assert listed["data"][0]["secret"] is None
    assert listed["meta"] == {"current_page": 1, "per_page": 20, "total": 1, "has_next": False}


async def test_inbound_url_uses_public_url_when_configured(settings: Settings, db: asyncpg.Connection) -> None:
    public = settings.model_copy(update={"public_url": "https://hub.example.com/"})
    key = await make_key(settings)
    async with TestClient(TestServer(create_app(public), host="127.0.0.1")) as client:
        status, body = await _create(
            client, {"Authorization": f"Bearer {key}"}, source="shopify", name="s", secret="shpss_0123456789abcdef"
        )
    assert status == 201
    assert body["data"]["inbound_url"] == f"https://hub.example.com/hooks/shopify/{body['data']['id']}"


async def test_zid_url_carries_a_generated_token_only_at_creation(client: Client, auth: dict[str, str]) -> None:
    status, body = await _create(client, auth, source="zid", name="Zid")
    assert status == 201, body
    data = body["data"]
    assert len(data["secret"]) >= 32
    assert data["inbound_url"].endswith(f"/hooks/zid/{data['id']}?token={data['secret']}")
    shown = (await (await client.get(f"/api/v1/connections/{data['id']}", headers=auth)).json())["data"]
    assert shown["inbound_url"].endswith(f"/hooks/zid/{data['id']}")
    assert data["secret"] not in str(shown)


@pytest.mark.parametrize("source", ["chat_agent", "generic"])
async def test_standard_webhooks_sources_get_a_whsec_secret(client: Client, auth: dict[str, str], source: str) -> None:
    status, body = await _create(client, auth, source=source, name="agent")
    assert status == 201, body
    assert body["data"]["secret"].startswith("whsec_")


async def test_chat_agent_settings_validated_and_api_key_masked(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    settings = {"base_url": "https://Dashboard.Example.com/", "api_key": "sk_live_abcdefghijkl1234"}
    status, body = await _create(client, auth, source="chat_agent", name="agent", settings=settings)
    assert status == 201, body
    shown = body["data"]["settings"]
    assert shown == {"base_url": "https://dashboard.example.com", "api_key": "sk_live_••••1234"}
    stored = await db.fetchval("SELECT settings FROM connections WHERE id = $1", body["data"]["id"])
    assert stored["api_key"] == "sk_live_abcdefghijkl1234"  # kept in full: pull sync needs it

    for bad, field in (
        ({"base_url": "ftp://x.example.com", "api_key": "k"}, "base_url"),
        ({"base_url": "not a url", "api_key": "k"}, "base_url"),
        ({"base_url": "https://x.example.com"}, "api_key"),
        ({"api_key": "k"}, "base_url"),
    ):
        status, body = await _create(client, auth, source="chat_agent", name="agent", settings=bad)
        assert status == 422, bad
        assert body["details"]["settings"].startswith(field), body


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"source": "ebay", "name": "x", "secret": "s"}, "source"),
        ({"source": "salla", "name": "x"}, "secret"),
        ({"source": "shopify", "name": "x"}, "secret"),
        ({"source": "salla", "name": "", "secret": "s"}, "name"),
        ({"source": "zid", "name": "x", "secret": "short"}, "secret"),
        ({"source": "salla", "name": "x", "secret": "fifteen-chars.."}, "secret"),
        ({"source": "woocommerce", "name": "x", "secret": "s3cret"}, "secret"),
        ({"source": "generic", "name": "x", "secret": "whsec_!!!"}, "secret"),
        ({"source": "salla", "name": "x", "secret": "s", "settings": []}, "settings"),
        ({"source": "salla", "name": "x", "secret": "s", "colour": "red"}, "colour"),
    ],
)
async def test_invalid_bodies_are_422_naming_the_field(
    client: Client, auth: dict[str, str], payload: dict[str, Any], field: str
) -> None:
    status, body = await _create(client, auth, **payload)
    assert status == 422, body
    assert field in body["details"], body


async def test_woocommerce_without_secret_gets_one(client: Client, auth: dict[str, str]) -> None:
    status, body = await _create(client, auth, source="woocommerce", name="wp")
    assert status == 201
    assert len(body["data"]["secret"]) >= 24


async def test_delete_is_soft_and_hides_the_connection(
    client: Client, auth: dict[str, str], db: asyncpg.Connection
) -> None:
    _, body = await _create(client, auth, source="salla", name="x", secret="salla-secret-0123456789")
    conn_id = body["data"]["id"]
    resp = await client.delete(f"/api/v1/connections/{conn_id}", headers=auth)
    assert resp.status == 200
    assert (await resp.json())["data"]["id"] == conn_id
    assert await db.fetchval("SELECT deleted_at IS NOT NULL FROM connections WHERE id = $1", conn_id)
    assert (await client.get(f"/api/v1/connections/{conn_id}", headers=auth)).status == 404
    assert (await client.delete(f"/api/v1/connections/{conn_id}", headers=auth)).status == 404
    listed = await (await client.get("/api/v1/connections", headers=auth)).json()
    assert listed["data"] == []
    # Its inbound URL is gone too (the receiver treats a deleted connection as unknown).
    hook = await client.post(f"/hooks/salla/{conn_id}", data=b"{}", headers={"X-Salla-Signature": "00"})
    assert hook.status == 404


async def test_other_organizations_connections_are_404(
    client: Client, auth: dict[str, str], settings: Settings
) -> None:
    _, body = await _create(client, auth, source="salla", name="x", secret="salla-secret-0123456789")
    other = {"Authorization": f"Bearer {await make_key(settings, org='globex')}"}
    conn_id = body["data"]["id"]
    assert (await client.get(f"/api/v1/connections/{conn_id}", headers=other)).status == 404
    assert (await client.delete(f"/api/v1/connections/{conn_id}", headers=other)).status == 404
    assert (await (await client.get("/api/v1/connections", headers=other)).json())["data"] == []
    assert (await client.get("/api/v1/connections/conn_nope", headers=auth)).status == 404


async def test_list_paginates_newest_first_and_filters_by_source(client: Client, auth: dict[str, str]) -> None:
    ids = []
    for n in range(3):
        _, body = await _create(
            client, auth, source="salla" if n < 2 else "shopify", name=f"c{n}", secret="salla-secret-0123456789"
        )
        ids.append(body["data"]["id"])
    page = await (await client.get("/api/v1/connections?per_page=2", headers=auth)).json()
    assert [c["id"] for c in page["data"]] == [ids[2], ids[1]]
    assert page["meta"]["has_next"] is True
    rest = await (await client.get("/api/v1/connections?per_page=2&page=2", headers=auth)).json()
    assert [c["id"] for c in rest["data"]] == [ids[0]]
    salla = await (await client.get("/api/v1/connections?source=salla", headers=auth)).json()
    assert {c["id"] for c in salla["data"]} == set(ids[:2])


async def test_requires_an_api_key(client: Client) -> None:
    resp = await client.post("/api/v1/connections", json={"source": "salla", "name": "x", "secret": "s"})
    assert resp.status == 401

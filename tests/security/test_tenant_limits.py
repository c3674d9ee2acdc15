"""Smaller limits of issue 20.7: endpoints per organization, and the strength of inbound secrets."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.app import create_app
from hub.settings import Settings

Client = TestClient[Any, Any]


async def test_webhook_endpoints_are_capped_per_organization(
    settings: Settings, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    capped = settings.model_copy(update={"webhook_max_endpoints": 3})
    async with TestClient(TestServer(create_app(capped), host="127.0.0.1")) as client:

        async def create(n: int) -> int:
            body = {"url": f"http://127.0.0.1:9/hook{n}", "event_types": ["order.*"]}
            resp = await client.post("/api/v1/webhooks", json=body, headers=auth)
            return resp.status

        # Concurrent creations cannot race past the cap.
        statuses = await asyncio.gather(*(create(n) for n in range(6)))
        assert sorted(statuses) == [201, 201, 201, 422, 422, 422]
        resp = await client.post(
            "/api/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "event_types": ["order.*"]}, headers=auth
        )
        body = await resp.json()
        assert resp.status == 422
        assert "at most 3" in body["details"]["url"]
        assert await db.fetchval("SELECT count(*) FROM webhook_endpoints") == 3


@pytest.mark.parametrize("source", ["salla", "shopify", "woocommerce", "zid"])
async def test_inbound_secrets_need_sixteen_characters(client: Client, auth: dict[str, str], source: str) -> None:
    short = {"source": source, "name": "shop", "secret": "x" * 15}
    resp = await client.post("/api/v1/connections", json=short, headers=auth)
    assert resp.status == 422
    assert "secret" in (await resp.json())["details"]
    strong = {**short, "secret": "x" * 16}
    assert (await client.post("/api/v1/connections", json=strong, headers=auth)).status == 201

"""Per-key rate limit: a flood from one key gets 429 with Retry-After; other keys are unaffected."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from hub.app import create_app
from hub.settings import Settings
from hub.web.ratelimit import burst_item
from tests.factories import make_key


def test_burst_item_allows_the_burst_over_a_window_matching_the_rate() -> None:
    item = burst_item("100/second", 200)
    assert item.amount == 200
    assert item.get_expiry() == 2


async def test_flood_from_one_key_is_429_with_retry_after(settings: Settings, db: asyncpg.Connection) -> None:
    limited = settings.model_copy(update={"rate_limit": "5/second", "rate_limit_burst": 5})
    flooding = {"Authorization": f"Bearer {await make_key(settings, org='flood')}"}
    calm = {"Authorization": f"Bearer {await make_key(settings, org='calm')}"}
    client: TestClient[Any, Any]
    async with TestClient(TestServer(create_app(limited), host="127.0.0.1")) as client:
        statuses = [(await client.get("/api/v1/contacts", headers=flooding)).status for _ in range(8)]
        assert statuses[:5] == [200] * 5
        assert 429 in statuses[5:]
        resp = await client.get("/api/v1/contacts", headers=flooding)
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1
        body = await resp.json()
        assert body["code"] == 429
        assert body["error"] == "Rate limit exceeded"
        assert (await client.get("/api/v1/contacts", headers=calm)).status == 200

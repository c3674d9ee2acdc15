"""``hub status`` as an engineer runs it: a real process reading the configured Postgres and Redis."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import asyncpg

from hub.settings import Settings
from tests.helpers.ops_state import DISABLED_REASON, FAILED_DELIVERY, FAILED_INBOUND, RETRYING, seed, seed_retrying


def _status(settings: Settings, *args: str, columns: int = 200) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_DATABASE_URL=settings.database_url or "",
        HUB_REDIS_URL=settings.redis_url or "",
        HUB_DATA_DIR=str(settings.data_dir),
        COLUMNS=str(columns),
    )
    return subprocess.run(
        [sys.executable, "-m", "hub", "status", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


async def test_status_prints_the_summary(settings: Settings, db: asyncpg.Connection, redis_client: Any) -> None:
    await seed(db, redis_client, endpoint_url="https://shop.example/webhooks")
    done = await asyncio.to_thread(_status, settings)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "queue depth" in out
    assert "5 (2 ready, 2 running, 1 deferred)" in out
    assert "4 (2 inbound, 2 deliveries)" in out
    assert "salla" in out
    assert "shopify" in out
    assert f"disabled: {DISABLED_REASON}" in out
    assert "https://shop.example/webhooks" in out
    assert FAILED_DELIVERY in out
    assert FAILED_INBOUND[0] in out


async def test_status_json_is_the_page_summary(settings: Settings, db: asyncpg.Connection, redis_client: Any) -> None:
    await seed(db, redis_client, endpoint_url="https://shop.example/webhooks")
    done = await asyncio.to_thread(_status, settings, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["queue"]["depth"] == 5
    assert data["failed_jobs"] == 4
    assert data["endpoints_disabled"] == 1
    assert {s["source"] for s in data["sources"]} == {"salla", "shopify", "zid"}


async def test_status_lists_failing_endpoints_still_retrying(
    settings: Settings, db: asyncpg.Connection, redis_client: Any
) -> None:
    await seed(db, redis_client, endpoint_url="https://shop.example/webhooks")
    url = "https://a-rather-long-merchant-hostname.example.com/integrations/orderhub/webhooks/orders/receiver"
    await seed_retrying(db, endpoint_url=url)
    done = await asyncio.to_thread(_status, settings, columns=80)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if url in line]
    assert len(lines) == 1, done.stdout  # one whole line, not cut at 80 columns
    assert "2 retrying" in lines[0]
    assert RETRYING[0] in lines[0]  # the delivery whose next attempt comes first
    assert "HTTP 500" in lines[0]
    assert "deliveries retrying" in done.stdout
    assert "/api/v1/deliveries/{id}/retry" in done.stdout  # the API-key route, not the cookie-only ops one
    assert "/ops/api/" not in done.stdout
    assert "Nothing failed" not in done.stdout

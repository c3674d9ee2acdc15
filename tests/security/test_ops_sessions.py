"""Ops sign-in (issue 20.7): a logged-out session cookie is dead everywhere, and guessing is throttled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from hub.app import create_app
from hub.settings import Settings

Client = TestClient[Any, Any]
TOKEN = "ops-security-token-0123456789"


@pytest.fixture
async def ops(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[Client]:
    tuned = settings.model_copy(update={"ops_token": SecretStr(TOKEN), "ops_login_limit": "3/minute"})
    async with TestClient(TestServer(create_app(tuned), host="127.0.0.1")) as client:
        yield client


async def test_logout_revokes_the_session_cookie_itself(ops: Client) -> None:
    resp = await ops.post("/ops/login", data={"token": TOKEN}, allow_redirects=False)
    assert resp.status == 303
    cookie = resp.cookies["hub_ops"].value
    stolen = {"Cookie": f"hub_ops={cookie}"}
    ops.session.cookie_jar.clear()
    assert (await ops.get("/ops/api/summary", headers=stolen)).status == 200
    await ops.post("/ops/logout", headers=stolen, allow_redirects=False)
    # A copy of the cookie (another tab, a stolen one) no longer gets in, though it has not expired.
    after = await ops.get("/ops/api/summary", headers=stolen)
    assert after.status == 401
    assert (await after.json())["success"] is False


async def test_repeated_failed_logins_get_429_with_retry_after(ops: Client) -> None:
    for _ in range(3):
        assert (await ops.post("/ops/login", data={"token": "guess"}, allow_redirects=False)).status == 401
    resp = await ops.post("/ops/login", data={"token": "guess"}, allow_redirects=False)
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert "Too many failed attempts" in await resp.text()  # the login form, as for its 401
    # Once throttled, even the right token waits: guessing cannot go on at full speed.
    right = await ops.post("/ops/login", data={"token": TOKEN}, allow_redirects=False)
    assert right.status == 429

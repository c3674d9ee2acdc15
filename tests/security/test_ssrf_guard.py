"""One SSRF guard for every outgoing call (issue 20.2).

The chat-agent pull, webhook deliveries and platform clients share :func:`hub.ssrf_http.pinned_session`:
with ``HUB_WEBHOOK_ALLOW_PRIVATE=true`` a loopback base URL is still refused unless loopback is allowed
too, metadata and link-local addresses are refused whatever the settings, and IP literals (which aiohttp
never resolves) are checked before any byte is sent. A connection whose settings name such a URL is
refused with 422 when it is created.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hub import ssrf
from hub.app import create_app
from hub.platforms.chat_client import ChatAgentClient, pinned_session
from hub.platforms.chat_remote import PermanentRemoteError
from hub.settings import Settings
from hub.ssrf_http import pinned_session as guarded_session

EVERYTHING = {"allow_private": True, "allow_loopback": True}


@pytest.fixture
async def remote() -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A chat agent on 127.0.0.1 that records every request it gets."""
    seen: list[web.Request] = []

    async def orders(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"success": True, "data": [], "meta": {"total": 0}})

    app = web.Application()
    app.router.add_get("/api/v1/orders", orders)
    async with TestServer(app, host="127.0.0.1") as server:
        yield f"http://127.0.0.1:{server.port}", seen


async def test_allow_private_does_not_open_loopback_to_the_pull(remote: tuple[str, list[web.Request]]) -> None:
    base_url, seen = remote
    async with pinned_session(allow_private=True, allow_loopback=False) as http:
        client = ChatAgentClient(http, base_url=base_url, api_key="sk_live_tenant_key")
        with pytest.raises(PermanentRemoteError, match="loopback"):
            await client.fetch_orders(date_from=date(2020, 1, 1), page=1, per_page=100)
    assert seen == []  # the tenant's Bearer key never left the hub


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://169.254.10.1/",
        "http://[fe80::1]/",
        "http://[::ffff:169.254.169.254]/",
    ],
)
async def test_metadata_and_link_local_are_refused_whatever_the_settings(url: str) -> None:
    async with pinned_session(allow_loopback=True, allow_private=True) as http:
        with pytest.raises(ssrf.UnsafeUrlError):
            await http.get(url, allow_redirects=False)
    with pytest.raises(ssrf.UnsafeUrlError):
        await ssrf.check_url(url, policy=ssrf.AddressPolicy(**EVERYTHING))


async def test_names_are_checked_by_the_same_pinned_resolver() -> None:
    async def metadata(host: str, port: int) -> list[str]:
        return ["169.254.169.254"]

    async with guarded_session(ssrf.AddressPolicy(**EVERYTHING), resolver=metadata) as http:
        with pytest.raises(ssrf.UnsafeUrlError, match="cloud metadata"):
            await http.get("http://rebound.example/api/v1/orders")


@pytest.mark.parametrize(
    ("settings_body", "loopback", "private", "field"),
    [
        ({"base_url": "http://169.254.169.254", "api_key": "k"}, True, True, "base_url"),
        ({"base_url": "http://127.0.0.1:9", "api_key": "k"}, False, True, "base_url"),
        ({"base_url": "http://10.1.2.3", "api_key": "k"}, True, False, "base_url"),
    ],
)
async def test_connection_with_a_refused_url_is_422(
    settings: Settings,
    db: Any,
    auth: dict[str, str],
    settings_body: dict[str, str],
    loopback: bool,
    private: bool,
    field: str,
) -> None:
    app_settings = settings.model_copy(update={"webhook_allow_loopback": loopback, "webhook_allow_private": private})
    async with TestClient(TestServer(create_app(app_settings), host="127.0.0.1")) as client:
        body = {"source": "chat_agent", "name": "agent", "settings": settings_body}
        resp = await client.post("/api/v1/connections", json=body, headers=auth)
        payload = await resp.json()
        assert resp.status == 422, payload
        assert payload["success"] is False
        assert payload["details"]["settings"].startswith(f"{field}:")
        listed = await (await client.get("/api/v1/connections", headers=auth)).json()
        assert listed["data"] == []


async def test_platform_api_base_url_is_checked_too(settings: Settings, db: Any, auth: dict[str, str]) -> None:
    app_settings = settings.model_copy(update={"webhook_allow_loopback": True, "webhook_allow_private": True})
    async with TestClient(TestServer(create_app(app_settings), host="127.0.0.1")) as client:
        body = {
            "source": "shopify",
            "name": "shop",
            "secret": "s" * 32,
            "settings": {"shop_domain": "a.myshopify.com", "access_token": "t", "api_base_url": "http://[fe80::1]/"},
        }
        resp = await client.post("/api/v1/connections", json=body, headers=auth)
        assert resp.status == 422
        assert (await resp.json())["details"]["settings"].startswith("api_base_url:")

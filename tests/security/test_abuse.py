"""Hostile clients: oversized bodies (413 on every route), slow loris (cut off, never holding the server),
and floods (429 with ``Retry-After``, per API key and per inbound connection)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.app import create_app
from hub.settings import Settings
from tests.factories import make_key
from tests.faults.checks import record
from tests.faults.platform import make_event, sign
from tests.security.server import hub_serve

Client = TestClient[Any, Any]
LIMIT = 4096


@pytest.fixture
async def small(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[Client]:
    tight = settings.model_copy(update={"max_body_bytes": LIMIT, "rate_limit": "100000/second"})
    async with TestClient(TestServer(create_app(tight), host="127.0.0.1")) as test_client:
        yield test_client


async def _generic_connection(client: Client, auth: dict[str, str]) -> tuple[str, str]:
    resp = await client.post("/api/v1/connections", json={"source": "generic", "name": "shop"}, headers=auth)
    assert resp.status == 201, await resp.text()
    data = (await resp.json())["data"]
    return data["id"], data["secret"]


async def test_oversized_bodies_are_413_on_every_route(small: Client, auth: dict[str, str]) -> None:
    connection_id, _ = await _generic_connection(small, auth)
    document = await (await small.get("/openapi.json")).json()
    big = b'{"name": "' + b"x" * (LIMIT * 2) + b'"}'
    wrong = []
    tried = 0
    for template, operations in document["paths"].items():
        path = (
            template.replace("{id}", "x")
            .replace("{source}", "generic")
            .replace("{connection_id}", connection_id)
            .replace("{name}", "ops.css")
        )
        for method in operations:
            for chunked in (False, True):
                data: Any = big
                if chunked:

                    async def chunks() -> AsyncIterator[bytes]:
                        for start in range(0, len(big), 1000):
                            yield big[start : start + 1000]

                    data = chunks()
                headers = {**auth, "Content-Type": "application/json"}
                resp = await small.request(method.upper(), path, data=data, headers=headers)
                tried += 1
                body = await resp.json() if resp.content_type == "application/json" else {}
                if resp.status != 413 or body.get("code") != 413:
                    wrong.append(f"{method.upper()} {path} chunked={chunked}: {resp.status}")
    assert tried > 90
    assert not wrong, "oversized bodies not refused with 413:\n" + "\n".join(wrong)


async def test_a_body_at_the_limit_is_accepted(small: Client, auth: dict[str, str]) -> None:
    padding = LIMIT - len(b'{"name": "", "email": null}')
    body = b'{"name": "' + b"x" * (padding - 1) + b'", "email": null}'
    assert len(body) <= LIMIT
    resp = await small.post("/api/v1/contacts", data=body, headers={**auth, "Content-Type": "application/json"})
    assert resp.status in (201, 422), await resp.text()  # read and judged, not refused for its size


async def _trickle(port: int, head: bytes, drip: bytes, *, every: float, within: float) -> tuple[float, bytes]:
    """Send ``head`` then ``drip`` every ``every`` s; return when the server closes (seconds, what it said)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got = b""
    try:
        writer.write(head)
        while time.monotonic() - started < within:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), every)
            except TimeoutError:
                writer.write(drip)
                try:
                    await writer.drain()
                except (ConnectionError, OSError):
                    break
                continue
            except (ConnectionError, OSError):
                break
            if not chunk:
                break
            got += chunk
        return time.monotonic() - started, got
    finally:
        writer.close()


async def test_slow_loris_clients_are_cut_off_and_never_hold_the_server(
    settings: Settings, auth: dict[str, str], tmp_path: Path
) -> None:
    env = {"HUB_HTTP_KEEPALIVE_SECONDS": "2", "HUB_HTTP_BODY_TIMEOUT_SECONDS": "2"}
    async with hub_serve(settings, tmp_path, **env) as served:
        header_head = b"GET /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        body_head = (
            b"POST /api/v1/contacts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Authorization: {auth['Authorization']}\r\nContent-Length: 5000\r\n\r\n".encode()
            + b'{"name": "'
        )
        headers = [
            asyncio.create_task(_trickle(served.port, header_head, b"X-Slow: 1\r\n", every=0.3, within=20))
            for _ in range(150)
        ]
        bodies = [asyncio.create_task(_trickle(served.port, body_head, b"x", every=0.3, within=20)) for _ in range(50)]
        await asyncio.sleep(0.5)
        latencies = []
        async with aiohttp.ClientSession(base_url=served.base_url, headers=auth) as session:
            for n in range(40):
                started = time.monotonic()
                async with session.post("/api/v1/contacts", json={"name": f"calm {n}"}) as resp:
                    assert resp.status == 201, await resp.text()
                latencies.append(time.monotonic() - started)
                await asyncio.sleep(0.02)
        header_results = await asyncio.gather(*headers)
        body_results = await asyncio.gather(*bodies)

    slowest_header_cut = max(seconds for seconds, _ in header_results)
    slowest_body_cut = max(seconds for seconds, _ in body_results)
    assert slowest_header_cut < 6, f"a header trickler was held {slowest_header_cut:.1f} s (limit 2 s)"
    assert slowest_body_cut < 6, f"a body trickler was held {slowest_body_cut:.1f} s (limit 2 s)"
    answers = Counter(said.split(b"\r\n", 1)[0] for _, said in body_results)
    assert answers == Counter({b"HTTP/1.1 408 Request Timeout": len(bodies)}), answers
    assert max(latencies) < 1.0, f"a normal request waited {max(latencies):.2f} s behind slow clients"
    record(
        "slow_loris",
        header_tricklers=len(headers),
        body_tricklers=len(bodies),
        limits_s=2,
        header_trickler_cut_after_max_s=round(slowest_header_cut, 2),
        body_trickler_cut_after_max_s=round(slowest_body_cut, 2),
        normal_request_max_ms=round(max(latencies) * 1000, 1),
    )


async def test_a_flood_on_one_inbound_connection_is_429_and_spares_the_others(
    settings: Settings, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    limited = settings.model_copy(update={"hooks_rate_limit": "5/second"})
    async with TestClient(TestServer(create_app(limited), host="127.0.0.1")) as client:
        flooded, flooded_secret = await _generic_connection(client, auth)
        calm, calm_secret = await _generic_connection(client, auth)
        statuses = []
        for n in range(12):
            event = make_event("flood", n, 0)
            resp = await client.post(
                f"/hooks/generic/{flooded}", data=event.body, headers=sign(flooded_secret, event.msg_id, event.body)
            )
            statuses.append(resp.status)
            if resp.status == 429:
                assert int(resp.headers["Retry-After"]) >= 1
                body = await resp.json()
                assert body["code"] == 429
                assert body["success"] is False
        assert statuses[:5] == [200] * 5
        assert statuses.count(429) >= 5
        event = make_event("calm", 1, 0)
        resp = await client.post(
            f"/hooks/generic/{calm}", data=event.body, headers=sign(calm_secret, event.msg_id, event.body)
        )
        assert resp.status == 200
    stored = await db.fetchval("SELECT count(*) FROM inbound_events WHERE connection_id = $1", flooded)
    assert stored == statuses.count(200), "a 429'd request was stored"


async def test_a_flood_from_one_key_is_429_with_retry_after_and_spares_other_keys_and_hooks(
    settings: Settings, db: asyncpg.Connection
) -> None:
    limited = settings.model_copy(update={"rate_limit": "5/second", "rate_limit_burst": 5})
    flooding = {"Authorization": f"Bearer {await make_key(settings, org='flood')}"}
    calm = {"Authorization": f"Bearer {await make_key(settings, org='calm')}"}
    async with TestClient(TestServer(create_app(limited), host="127.0.0.1")) as client:
        connection_id, secret = await _generic_connection(client, flooding)
        statuses = [(await client.get("/api/v1/orders", headers=flooding)).status for _ in range(20)]
        assert statuses.count(429) >= 10
        resp = await client.post("/api/v1/contacts", json={"name": "x"}, headers=flooding)
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1
        assert (await client.get("/api/v1/orders", headers=calm)).status == 200
        event = make_event("hooks-unaffected", 1, 0)
        resp = await client.post(
            f"/hooks/generic/{connection_id}", data=event.body, headers=sign(secret, event.msg_id, event.body)
        )
        assert resp.status == 200, "the key's limit must not stop the platform's webhooks"

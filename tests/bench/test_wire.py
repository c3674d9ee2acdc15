"""The load generator's lean HTTP client against a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from hub.bench.wire import ConnectionPool, WireError, serialize


@pytest.fixture
async def server(free_port: int) -> AsyncIterator[tuple[str, list[tuple[str, bytes, int]]]]:
    seen: list[tuple[str, bytes, int]] = []  # (path, body, id of the connection's transport)

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((request.path_qs, body, id(request.transport)))
        if request.query.get("close"):
            return web.Response(status=202, text="bye", headers={"Connection": "close"})
        if request.query.get("slow"):
            await asyncio.sleep(2)
        return web.Response(status=int(request.query.get("status", "200")), text="x" * 5000)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", free_port).start()
    yield f"http://127.0.0.1:{free_port}", seen
    await runner.cleanup()


async def test_requests_reuse_a_kept_alive_connection_and_return_the_status(
    server: tuple[str, list[tuple[str, bytes, int]]],
) -> None:
    base, seen = server
    pool = ConnectionPool(base, limit=1, timeout=5)
    try:
        assert await pool.request(serialize("POST", f"{base}/hooks?status=202", {"X-A": "1"}, b"hello")) == 202
        assert await pool.request(serialize("GET", f"{base}/orders", {}, None)) == 200
    finally:
        pool.close()
    assert [(path, body) for path, body, _ in seen] == [("/hooks?status=202", b"hello"), ("/orders", b"")]
    assert seen[0][2] == seen[1][2]  # the same connection


async def test_a_connection_the_server_closes_is_replaced(server: tuple[str, list[tuple[str, bytes, int]]]) -> None:
    base, seen = server
    pool = ConnectionPool(base, limit=1, timeout=5)
    try:
        assert await pool.request(serialize("POST", f"{base}/a?close=1", {}, b"1")) == 202
        await asyncio.sleep(0.1)
        assert await pool.request(serialize("POST", f"{base}/b", {}, b"2")) == 200
    finally:
        pool.close()
    assert seen[0][2] != seen[1][2]


async def test_a_slow_answer_times_out_and_nothing_listening_is_a_wire_error(
    server: tuple[str, list[tuple[str, bytes, int]]],
) -> None:
    base, _ = server
    pool = ConnectionPool(base, limit=2, timeout=0.2)
    try:
        with pytest.raises(TimeoutError):
            await pool.request(serialize("GET", f"{base}/x?slow=1", {}, None))
        assert await pool.request(serialize("GET", f"{base}/x", {}, None)) == 200
    finally:
        pool.close()
    nowhere = ConnectionPool("http://127.0.0.1:9", limit=1, timeout=1)
    with pytest.raises(WireError):
        await nowhere.request(serialize("GET", "http://127.0.0.1:9/", {}, None))

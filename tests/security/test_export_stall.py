"""No tenant can stall the hub through exports (issue 20.1).

Twenty export requests of one organization that never read their answer: beyond the process-wide and
per-organization caps they get 429 with ``Retry-After``; the ones that run hold no more than their share
of the API's pool and are dropped once they make no progress for ``HUB_EXPORT_STALL_SECONDS``; another
organization's API calls and signed webhooks keep answering and ``/readyz`` stays 200 all along.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.app import create_app
from hub.settings import Settings
from tests.conftest import make_key
from tests.faults.platform import make_event, sign

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STALL = 2.0
ORDERS = 4000  # ~4 KB each: ~16 MB of NDJSON, far more than the sockets' buffers hold
FAST = 1.5  # seconds: "answers within its normal latency" on a shared 2-core machine


async def _seed(db: asyncpg.Connection, organization_id: str) -> None:
    # Bulk rows straight into the table: the API path of orders is tested elsewhere.
    await db.execute(
        """
        INSERT INTO orders (id, organization_id, source, external_id, created_by, customer_name, shipping_address,
            products, subtotal, discount, tax, delivery_fee, total_amount, currency, status, payment_status,
            fulfillment_status, notes, status_history, created, updated)
        SELECT 'ord_stall' || lpad(g::text, 8, '0'), $1, 'manual', NULL, 'api', 'Customer ' || g, '{}'::jsonb,
            '[]'::jsonb, 10, 0, 0, 0, 10, 'SAR', 'pending', 'pending', 'unfulfilled', repeat('x', 4000),
            '[]'::jsonb, now() - g * interval '1 second', now()
        FROM generate_series(1, $2) AS g
        """,
        organization_id,
        ORDERS,
    )


async def _stalled_reader(port: int, key: str) -> asyncio.StreamWriter:
    """A client that asks for an export and never reads a byte of it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    _, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        f"GET /api/v1/orders/export?format=ndjson HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\n\r\n".encode()
    )
    await writer.drain()
    return writer


@pytest.fixture
async def hub(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[TestClient[Any, Any]]:
    tuned = settings.model_copy(update={"export_stall_seconds": STALL})
    async with TestClient(TestServer(create_app(tuned), host="127.0.0.1")) as client:
        yield client


async def _timed(coro: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = await asyncio.wait_for(coro, timeout=10)
    return result, time.monotonic() - started


async def test_twenty_stalled_exports_do_not_stall_anyone_else(
    hub: TestClient[Any, Any], settings: Settings, db: asyncpg.Connection
) -> None:
    key_a = await make_key(settings, org="greedy")
    key_b = await make_key(settings, org="bystander")
    org_a = await db.fetchval("SELECT organization_id FROM api_keys ORDER BY created LIMIT 1")
    await _seed(db, org_a)
    auth_b = {"Authorization": f"Bearer {key_b}"}
    created = await hub.post(
        "/api/v1/connections", json={"source": "generic", "name": "pos", "secret": WHSEC}, headers=auth_b
    )
    assert created.status == 201, await created.text()
    connection_id = (await created.json())["data"]["id"]

    port = hub.server.port
    assert port is not None
    readers = [await _stalled_reader(port, key_a) for _ in range(20)]
    try:
        await asyncio.sleep(0.5)  # every export has started, or been refused
        more = await hub.get("/api/v1/orders/export?format=ndjson", headers={"Authorization": f"Bearer {key_a}"})
        assert more.status == 429
        assert int(more.headers["Retry-After"]) > 0
        assert (await more.json())["success"] is False

        for round_ in range(3):
            listing, took = await _timed(hub.get("/api/v1/orders", headers=auth_b))
            assert listing.status == 200
            assert took < FAST, (round_, took)
            event = make_event(f"stall{round_}", 1, 0)
            hooked, took = await _timed(
                hub.post(
                    f"/hooks/generic/{connection_id}", data=event.body, headers=sign(WHSEC, event.msg_id, event.body)
                )
            )
            assert hooked.status in (200, 202)
            assert took < FAST, (round_, took)
            ready, took = await _timed(hub.get("/readyz"))
            assert ready.status == 200, await ready.text()
            assert took < FAST, (round_, took)
            await asyncio.sleep(0.3)

        # The stalled streams are dropped after STALL seconds without progress: the organization's slots free.
        await asyncio.sleep(STALL + 1)
        again = await hub.get("/api/v1/orders/export?format=ndjson", headers={"Authorization": f"Bearer {key_a}"})
        assert again.status == 200
        lines = (await again.read()).count(b"\n")
        assert lines == ORDERS
    finally:
        for writer in readers:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

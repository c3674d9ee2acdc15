"""The bench's receiver (a lean HTTP/1.1 server) against a real aiohttp client on 127.0.0.1."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import orjson
import pytest
from standardwebhooks import Webhook

from hub.bench.receiver import Receiver, listening

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


@pytest.fixture
async def receiver(free_port: int) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    async with listening(free_port, Receiver()), aiohttp.ClientSession() as http:
        yield f"http://127.0.0.1:{free_port}", http


def _signed(body: bytes, msg_id: str) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SECRET).sign(msg_id, now, body.decode()),
        "content-type": "application/json",
    }


async def test_verified_order_created_is_counted_and_timed_on_a_kept_alive_connection(
    receiver: tuple[str, aiohttp.ClientSession],
) -> None:
    base, http = receiver
    async with http.post(f"{base}/config", json={"secret": SECRET}) as config:
        assert config.status == 200
    started = time.monotonic()
    for n in (1, 2):
        body = orjson.dumps({"type": "order.created", "data": {"order": {"external_id": f"ext-{n}"}}})
        async with http.post(f"{base}/hook", data=body, headers=_signed(body, f"msg_{n}")) as answer:
            assert (answer.status, await answer.text()) == (200, "ok")
    async with http.post(f"{base}/hook", data=b"{}", headers=_signed(b"[]", "msg_3")) as forged:
        assert forged.status == 401
    async with http.get(f"{base}/stats", params={"receipts": "1"}) as stats:
        out = await stats.json()
    assert (out["verified"], out["invalid"], out["unique"]) == (2, 1, 2)
    assert set(out["receipts"]) == {"ext-1", "ext-2"}
    assert all(started <= t <= time.monotonic() for t in out["receipts"].values())
    assert len(http.connector._conns) == 1  # type: ignore[union-attr]  # every request on one connection


async def test_reset_keeps_the_secret_and_stats_leave_receipts_out_unless_asked(
    receiver: tuple[str, aiohttp.ClientSession],
) -> None:
    base, http = receiver
    await (await http.post(f"{base}/config", json={"secret": SECRET})).release()
    body = b'{"type": "order.updated"}'
    await (await http.post(f"{base}/hook", data=body, headers=_signed(body, "a"))).release()
    await (await http.post(f"{base}/reset")).release()
    async with http.post(f"{base}/hook", data=body, headers=_signed(body, "b")) as again:
        assert again.status == 200
    async with http.get(f"{base}/stats") as stats:
        assert await stats.json() == {
            "verified": 1,
            "invalid": 0,
            "unique": 1,
            "last": pytest.approx(time.monotonic(), abs=5),
        }


async def test_unsigned_unknown_and_malformed_requests_get_clear_answers(
    receiver: tuple[str, aiohttp.ClientSession],
) -> None:
    base, http = receiver
    async with http.post(f"{base}/hook", data=b"{}") as unconfigured:
        assert unconfigured.status == 401
    async with http.get(f"{base}/nowhere") as unknown:
        assert unknown.status == 404
    async with http.post(f"{base}/config", data=b"not json") as bad:
        assert bad.status == 400

"""The bench's subscriber: a lean HTTP/1.1 server that verifies Standard Webhooks and records receipts.

Runs as its own process (``python -m hub.bench.receiver --port N``) so verifying does not share a
loop with the hub or the load generator. Every ``POST /hook`` is verified with the reference
``standardwebhooks`` library against the secret set through ``POST /config``; a bad signature is
answered 401 and counted, never recorded. For each verified ``order.created`` the first receipt
time (``time.monotonic()``, comparable with the load generator's) is kept by the order's
``external_id``, which is how the runner measures end-to-end latency.

Like the load generator's client (:mod:`hub.bench.wire`), it is an ``asyncio.Protocol`` around
``httptools``' C parser, not an aiohttp application: on a 2-core machine the receiver shares the
cores with the worker it measures, and aiohttp's server cost about 0.27 ms of CPU per request here,
half of what the worker spends sending it. Verification is unchanged (the reference library).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qs

import httptools
import orjson
from standardwebhooks import Webhook

from hub.bench.bare import wait_for_stop

__all__ = ["Receiver", "listening", "main", "serve"]


@dataclass
class Receiver:
    """What the receiver has seen since the last reset (the secret survives resets)."""

    webhook: Webhook | None = None
    verified: int = 0
    invalid: int = 0
    ids: set[str] = field(default_factory=set)
    receipts: dict[str, float] = field(default_factory=dict)
    last: float = 0.0

    def hook(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        try:
            if self.webhook is None:
                raise ValueError("no secret configured")
            self.webhook.verify(body, headers, json_parse=False)
        except Exception:
            self.invalid += 1
            return 401, b"bad signature"
        now = time.monotonic()
        self.verified += 1
        self.ids.add(headers.get("webhook-id", ""))
        self.last = now
        event = orjson.loads(body)
        if event.get("type") == "order.created":
            order = (event.get("data") or {}).get("order") or {}
            self.receipts.setdefault(str(order.get("external_id")), now)
        return 200, b"ok"

    def config(self, body: bytes) -> tuple[int, bytes]:
        self.webhook = Webhook(orjson.loads(body)["secret"])
        return 200, b'{"ok":true}'

    def reset(self) -> tuple[int, bytes]:
        self.verified = self.invalid = 0
        self.ids, self.receipts, self.last = set(), {}, 0.0
        return 200, b'{"ok":true}'

    def stats(self, query: str) -> tuple[int, bytes]:
        out: dict[str, Any] = {
            "verified": self.verified,
            "invalid": self.invalid,
            "unique": len(self.ids),
            "last": self.last,
        }
        if parse_qs(query).get("receipts"):
            out["receipts"] = self.receipts
        return 200, orjson.dumps(out)

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        path, _, query = target.partition("?")
        try:
            if (method, path) == ("POST", "/hook"):
                return self.hook(body, headers)
            if (method, path) == ("POST", "/config"):
                return self.config(body)
            if (method, path) == ("POST", "/reset"):
                return self.reset()
            if (method, path) == ("GET", "/stats"):
                return self.stats(query)
        except (ValueError, KeyError, TypeError) as exc:  # a bad /config body: the runner's mistake, said plainly
            return 400, str(exc).encode()
        return 404, b"not found"


class _Connection(asyncio.Protocol):
    """One client connection: requests parsed by httptools, answered in order, kept alive."""

    def __init__(self, receiver: Receiver, open_: set[_Connection]) -> None:
        self._receiver, self._open = receiver, open_
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._open.discard(self)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._write(400, b"bad request", keep_alive=False)

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method, target = self._parser.get_method().decode("latin-1"), self._url.decode("latin-1")
        status, payload = self._receiver.answer(method, target, self._headers, b"".join(self._body))
        self._write(status, payload, keep_alive=self._parser.should_keep_alive())

    def _write(self, status: int, payload: bytes, *, keep_alive: bool) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        kind = "application/json" if payload.startswith(b"{") else "text/plain"
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(payload)}\r\n{'' if keep_alive else 'Connection: close' + chr(13) + chr(10)}\r\n"
        )
        self._transport.write(head.encode("latin-1") + payload)
        if not keep_alive:
            self._transport.close()


@contextlib.asynccontextmanager
async def listening(port: int, receiver: Receiver) -> AsyncIterator[None]:
    """``receiver`` answering on 127.0.0.1:``port`` inside the block."""
    connections: set[_Connection] = set()
    server = await asyncio.get_running_loop().create_server(
        lambda: _Connection(receiver, connections), "127.0.0.1", port
    )
    try:
        yield
    finally:
        server.close()
        for connection in list(connections):  # kept-alive clients would hold wait_closed() open
            connection.close()
        await server.wait_closed()


async def serve(port: int) -> None:
    """Listen on 127.0.0.1:``port`` until SIGTERM or SIGINT."""
    async with listening(port, Receiver()):
        await wait_for_stop()


def main() -> None:
    """``python -m hub.bench.receiver --port N``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    try:
        import uvloop

        uvloop.run(serve(port))
    except ImportError:  # pragma: no cover - uvloop is not on every platform
        asyncio.run(serve(port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

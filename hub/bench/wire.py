"""The load generator's HTTP/1.1 client: kept-alive connections, requests serialized up front.

On a 2-core machine the load generator shares the cores with what it measures, so every
microsecond it spends per request is taken from the hub (and from the ceilings). aiohttp's client
costs about 0.3 ms of CPU per request here (request and response objects, header multidicts,
timers, the connector's bookkeeping), as much as the hub's API spends serving it. This client
writes a request that is one ``bytes`` object, parses the answer with ``httptools`` (the C parser
uvicorn uses) and hands back the status code: what a load generator needs, nothing more.
"""

from __future__ import annotations

import asyncio
import functools
from typing import cast
from urllib.parse import urlsplit

import httptools

__all__ = ["Connection", "ConnectionPool", "WireError", "serialize"]


class WireError(Exception):
    """The connection failed or closed before a complete answer."""


@functools.lru_cache(maxsize=64)
def _target(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return target, parts.netloc


def serialize(method: str, url: str, headers: dict[str, str], body: bytes | None) -> bytes:
    """One HTTP/1.1 request, kept alive, as bytes ready to write."""
    target, host = _target(url)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() not in ("host", "content-length")]
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


class Connection(asyncio.Protocol):
    """One kept-alive connection; one request at a time (no pipelining, like a platform's client)."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[int] | None = None
        self.closed = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass, but is one

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(WireError(f"unparsable response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(WireError(f"connection lost: {exc!r}" if exc else "connection closed"))

    # -- httptools callbacks
    def on_message_complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        if not self._parser.should_keep_alive():
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(self._parser.get_status_code())

    # -- API
    async def request(self, raw: bytes) -> int:
        """Send ``raw`` (see :func:`serialize`) and return the answer's status once it is complete."""
        if self.closed or self._transport is None:
            raise WireError("connection closed")
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self._transport.write(raw)
        return await waiter

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class ConnectionPool:
    """Idle connections to one host, opened on demand up to ``limit`` at once; a request taking over
    ``timeout`` seconds fails with ``TimeoutError`` (and its connection is closed)."""

    def __init__(self, url: str, *, limit: int, timeout: float) -> None:
        parts = urlsplit(url)
        self._timeout = timeout
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._idle: list[Connection] = []
        self._slots = asyncio.Semaphore(limit)
        self._all: set[Connection] = set()

    async def request(self, raw: bytes) -> int:
        """Send ``raw`` on an idle (or a new) connection; raises :class:`WireError` or ``TimeoutError``."""
        async with self._slots:
            conn = self._take_idle() or await self._open()
            try:
                async with asyncio.timeout(self._timeout):
                    status = await conn.request(raw)
            except BaseException:
                conn.close()
                self._all.discard(conn)
                raise
            if conn.closed:
                self._all.discard(conn)
            else:
                self._idle.append(conn)
            return status

    def _take_idle(self) -> Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:  # the server may have closed it while it was idle
                return conn
            self._all.discard(conn)
        return None

    async def _open(self) -> Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(Connection, self._host, self._port)
        except OSError as exc:
            raise WireError(f"cannot connect: {exc}") from exc
        self._all.add(conn)
        return conn

    def close(self) -> None:
        for conn in self._all:
            conn.close()
        self._all.clear()
        self._idle.clear()

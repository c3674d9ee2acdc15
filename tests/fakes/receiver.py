"""A merchant's webhook receiver on a real 127.0.0.1 port: records what it gets, misbehaves on demand.

Every request to any path is recorded (headers, exact body bytes, arrival time) before it is
answered. What it answers is set per path: a default reply, and a queue of replies for the next
requests (:meth:`Receiver.next`), so "fail three times, then recover" is one line. Replies can be a
status with body and headers (2xx, 3xx, 4xx, 5xx, ``Retry-After``), :data:`HANG` (never answers until
the receiver closes) or :data:`GARBAGE` (bytes that are not HTTP, then the connection drops).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: ``status``/``body``/``headers`` after ``delay`` seconds, or ``hang``/``garbage``."""

    status: int = 200
    body: bytes = b'{"ok":true}'
    headers: tuple[tuple[str, str], ...] = ()
    hang: bool = False
    garbage: bool = False
    delay: float = 0.0


OK = Reply()
HANG = Reply(hang=True)
GARBAGE = Reply(garbage=True)


def status(code: int, *, body: bytes = b"nope", retry_after: str | None = None) -> Reply:
    """An HTTP answer with ``code`` (and a ``Retry-After`` header if given)."""
    headers = (("Retry-After", retry_after),) if retry_after is not None else ()
    return Reply(status=code, body=body, headers=headers)


def redirect(location: str, code: int = 302) -> Reply:
    """A redirect the hub must not follow."""
    return Reply(status=code, body=b"", headers=(("Location", location),))


@dataclass(frozen=True, slots=True)
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()


@dataclass
class Receiver:
    """The fake receiver; use as ``async with Receiver() as receiver``."""

    received: list[Received] = field(default_factory=list)
    _defaults: dict[str, Reply] = field(default_factory=dict)
    _queued: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    _runner: web.AppRunner | None = None
    _port: int = 0
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: The most requests to one path that were being answered at the same time.
    max_concurrent: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        addresses = self._runner.addresses
        self._port = int(addresses[0][1])
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "/hook", *, host: str = "127.0.0.1") -> str:
        """The URL of ``path`` on this receiver."""
        return f"http://{host}:{self._port}{path}"

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return self._port

    def always(self, path: str, reply: Reply) -> None:
        """Answer ``path`` with ``reply`` from now on (after any queued replies)."""
        self._defaults[path] = reply

    def next(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to ``path`` with ``replies``, in order, then the default again."""
        self._queued[path].extend(replies)

    def requests(self, path: str | None = None) -> list[Received]:
        """What arrived (at ``path``, or anywhere), oldest first."""
        return [r for r in self.received if path is None or r.path == path]

    async def wait_for(self, count: int, path: str | None = None, *, within: float = 10.0) -> list[Received]:
        """Wait until ``count`` requests arrived (at ``path``); fail after ``within`` seconds."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests(path)) >= count)
        return self.requests(path)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(
            Received(request.path, {k.lower(): v for k, v in request.headers.items()}, body, time.monotonic())
        )
        async with self._arrived:
            self._arrived.notify_all()
        queued = self._queued[request.path]
        reply = queued.popleft() if queued else self._defaults.get(request.path, OK)
        self._in_flight[request.path] += 1
        self.max_concurrent[request.path] = max(self.max_concurrent[request.path], self._in_flight[request.path])
        try:
            return await self._answer(request, reply)
        finally:
            self._in_flight[request.path] -= 1

    async def _answer(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.hang:
            await self._released.wait()
            raise web.HTTPServiceUnavailable()
        if reply.garbage:
            transport = request.transport
            assert transport is not None
            transport.write(b"\x00\x01 this is not HTTP at all \xff\r\n\r\n")
            transport.close()
            return web.Response(status=500)  # never reaches the client: the connection is gone
        return web.Response(status=reply.status, body=reply.body, headers=dict(reply.headers))

"""The platform side of a fault test: signed generic webhooks, a tenant set up over the API, a subscriber."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp import web

from tests.faults.harness import STATUSES, T0, Hub, free_port

# ---- the platform: signed generic webhooks --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One platform event: version ``version`` of order ``external_id``."""

    msg_id: str
    external_id: str
    version: int
    body: bytes


def order_state(version: int) -> dict[str, Any]:
    """What version ``version`` of an order says (the newest version must win)."""
    return {
        "status": STATUSES[min(version, len(STATUSES) - 1)],
        "notes": f"v{version}",
        "total_amount": f"{100 + version}.50",
    }


def make_event(run: str, order: int, version: int) -> Event:
    """A ``generic`` envelope carrying the full order at ``version`` (clock = T0 + version minutes)."""
    external_id = f"{run}-{order:05d}"
    msg_id = f"msg_{run}_{order}_{version}"
    state = order_state(version)
    updated = T0 + timedelta(minutes=version)
    payload = {
        "id": msg_id,
        "type": "order.created" if version == 0 else "order.updated",
        "created": updated.isoformat(),
        "data": {
            "order": {
                "external_id": external_id,
                "source_updated_at": updated.isoformat(),
                "customer_name": f"Customer {order}",
                "customer_phone": "+966501234567",
                "currency": "SAR",
                "products": [{"name": "Thing", "sku": f"SKU-{order}", "quantity": 1, "price": "100.00"}],
                "subtotal": "100.00",
                "delivery_fee": f"{version}.50",
                **state,
            }
        },
    }
    return Event(msg_id, external_id, version, json.dumps(payload).encode())


def events_for(run: str, orders: int, versions: int) -> list[Event]:
    """``orders`` × ``versions`` events, version by version (each order's clock increases)."""
    return [make_event(run, o, v) for v in range(versions) for o in range(orders)]


def sign(secret: str, msg_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """Standard Webhooks headers for ``body``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    ts = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
        "content-type": "application/json",
    }


@dataclass
class SendLog:
    """What the platform saw: every answer's status, and the inbound ids of its 200s."""

    statuses: Counter[int] = field(default_factory=Counter)
    accepted: dict[str, str] = field(default_factory=dict)  # msg_id -> inbound event id
    first_503_at: float | None = None
    last_503_at: float | None = None
    sent: int = 0

    @property
    def server_errors(self) -> dict[int, int]:
        return {s: n for s, n in self.statuses.items() if s >= 500}


@dataclass
class Platform:
    """Posts events to one connection, like a platform: bounded concurrency, retries on 5xx/errors."""

    base_url: str
    connection_id: str
    secret: str
    log: SendLog = field(default_factory=SendLog)
    retry_5xx: bool = False
    give_up_after: float = 90.0

    async def send_all(
        self,
        events: Sequence[Event],
        *,
        concurrency: int = 32,
        on_progress: Callable[[int], Awaitable[None]] | None = None,
    ) -> SendLog:
        """Send every event (each once, or until 200 with ``retry_5xx``); ``on_progress(n)`` after each."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        for event in events:
            queue.put_nowait(event)
        done = 0
        connector = aiohttp.TCPConnector(limit=concurrency)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def one_sender() -> None:
                nonlocal done
                while True:
                    try:
                        event = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    await self._send(session, event)
                    done += 1
                    if on_progress is not None:
                        await on_progress(done)

            await asyncio.gather(*(one_sender() for _ in range(concurrency)))
        return self.log

    async def _send(self, session: aiohttp.ClientSession, event: Event) -> None:
        url = f"{self.base_url}/hooks/generic/{self.connection_id}"
        deadline = time.monotonic() + self.give_up_after
        while True:
            status = 0
            try:
                headers = sign(self.secret, event.msg_id, event.body)
                async with session.post(url, data=event.body, headers=headers) as resp:
                    status = resp.status
                    body = await resp.read()
            except (aiohttp.ClientError, OSError, TimeoutError):
                status = 0  # connection refused/reset: no answer at all
            self.log.sent += 1
            self.log.statuses[status] += 1
            if status == 200:
                self.log.accepted[event.msg_id] = json.loads(body)["data"]["id"]
                return
            if status == 503:
                now = time.monotonic()
                self.log.first_503_at = self.log.first_503_at or now
                self.log.last_503_at = now
            retryable = status == 0 or (status >= 500 and self.retry_5xx)
            if not retryable or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.2 + random.random() * 0.3)  # noqa: S311 - jitter, not crypto


# ---- setting up a tenant over the API -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tenant:
    """An organization's generic connection and its webhook endpoint."""

    connection_id: str
    secret: str
    endpoint_id: str
    organization_id: str


async def setup_tenant(hub: Hub, receiver_url: str) -> Tenant:
    """A generic connection and an ``order.*`` endpoint pointing at ``receiver_url``, through the API."""
    headers = {"Authorization": f"Bearer {hub.key}"}
    async with aiohttp.ClientSession(base_url=hub.base_url, headers=headers) as session:
        async with session.post("/api/v1/connections", json={"source": "generic", "name": "faults"}) as resp:
            assert resp.status == 201, await resp.text()
            connection = (await resp.json())["data"]
        async with session.post("/api/v1/webhooks", json={"url": receiver_url, "event_types": ["order.*"]}) as resp:
            assert resp.status == 201, await resp.text()
            endpoint = (await resp.json())["data"]
    conn = await hub.connect()
    try:
        org = await conn.fetchval("SELECT organization_id FROM connections WHERE id = $1", connection["id"])
    finally:
        await conn.close()
    return Tenant(connection["id"], connection["secret"], endpoint["id"], org)


# ---- a subscriber that can go away ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook as the subscriber got it."""

    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Subscriber:
    """A merchant's endpoint on a fixed loopback port that can be taken down (connection refused) and back."""

    port: int = field(default_factory=free_port)
    received: list[Delivery] = field(default_factory=list)
    delay: float = 0.0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Delivery({k.lower(): v for k, v in request.headers.items()}, body, time.monotonic()))
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=204)

    def requests(self, path: str = "/hook") -> list[Delivery]:
        return list(self.received)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

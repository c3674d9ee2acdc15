"""The load generator: an HTTP client in its own process, driven by a JSON spec on stdin.

It runs in a separate process so its CPU use never shares an event loop with what it measures, and
by default sends through :mod:`hub.bench.wire` (requests serialized up front, answers parsed by
``httptools``), which costs a fraction of aiohttp's client per request, so the cores it shares
with the hub go to the hub. ``"client": "aiohttp"`` sends through aiohttp's client instead: the
"bare aiohttp client" ceiling of the delivery figure is exactly that.
Two shapes of load, both bounded by a count *and* a time:

* ``burst``: closed loop, ``concurrency`` requests in flight on kept-alive connections, as fast as
  the server answers (throughput).
* ``rate``: open loop, one request every ``1/rate`` seconds whatever the server does; latency is
  measured from each request's *scheduled* send time, so a stalled server cannot hide its stall
  by slowing the generator down (coordinated omission).

The result (one JSON object) goes to stdout. Times are ``time.monotonic()``, which on Linux is the
system-wide ``CLOCK_MONOTONIC``, so the runner can compare them with the receiver's.

Usage: ``echo '{"mode": "burst", ...}' | python -m hub.bench.loadgen``
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import math
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from hub.bench.dataset import salla_headers, salla_template
from hub.bench.wire import ConnectionPool, WireError, serialize

Request = tuple[str, str, bytes | None, dict[str, str]]


@dataclass
class Spec:
    """What to send, how, and for how long (see the module docstring)."""

    mode: str
    url: str
    kind: str = "salla"  # salla | webhook | get
    count: int = 1000
    seconds: float = 10.0
    concurrency: int = 32
    rate: float = 1000.0
    secret: str = ""
    first_id: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    ok_status: list[int] = field(default_factory=lambda: [200, 201, 202, 204])
    record_sends: bool = False
    warmup: int = 0
    client: str = "wire"  # wire | aiohttp


@dataclass
class Result:
    """What happened, as the runner reads it."""

    sent: int = 0
    ok: int = 0
    elapsed: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    sends: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "sent": self.sent,
            "ok": self.ok,
            "elapsed": self.elapsed,
            "rate": self.ok / self.elapsed if self.elapsed > 0 else 0.0,
            "p50_ms": percentile(lat, 50) * 1000 if lat else None,
            "p99_ms": percentile(lat, 99) * 1000 if lat else None,
            "max_ms": lat[-1] * 1000 if lat else None,
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "sends": self.sends,
        }


def percentile(ordered: list[float], pct: float) -> float:
    """The nearest-rank percentile of an already sorted, non-empty list."""
    rank = math.ceil(pct / 100 * len(ordered))
    return ordered[max(0, min(len(ordered), rank) - 1)]


def webhook_body(n: int) -> bytes:
    """A delivery-sized Standard Webhooks body (an ``order.updated`` envelope with a full order)."""
    line = {"product_id": None, "sku": "SH-001", "name": "Cotton shirt", "quantity": 2, "price": 100, "total": 200}
    order = {
        "id": f"ord_bench{n:017d}",
        "organization_id": "org_bench",
        "source": "salla",
        "external_id": str(n),
        "reference": str(n),
        "created_by": "webhook",
        "contact_id": None,
        "customer_name": "Mohammed Ali",
        "customer_email": "mohammed.ali@example.com",
        "customer_phone": "+966501806978",
        "shipping_address": {"city": "Jeddah", "country": "SA", "line1": "Abu Umayyah Al-Damri St"},
        "products": [line, {**line, "sku": "HT-002", "name": "Summer hat", "quantity": 1, "price": 50, "total": 50}],
        "subtotal": 250,
        "discount": 25,
        "tax": 33.75,
        "delivery_fee": 25,
        "total_amount": 283.75,
        "currency": "SAR",
        "status": "pending",
        "payment_status": "pending",
        "fulfillment_status": "unfulfilled",
        "notes": None,
        "cancellation_reason": None,
        "status_history": [{"status": "pending", "at": "2024-03-10T11:05:11Z", "by": "salla:webhook"}],
        "source_updated_at": "2024-03-10T11:05:13Z",
        "created": "2024-03-10T11:05:11Z",
        "updated": "2024-03-10T11:05:13Z",
        "is_duplicate": False,
    }
    envelope = {"id": f"evt_bench{n:017d}", "type": "order.updated", "created": "2024-03-10T11:05:13Z"}
    return orjson.dumps({**envelope, "data": {"order": order}})


def standard_webhook_headers(secret: str, msg_id: str, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers: ``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    timestamp = str(int(time.time()))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def request_factory(spec: Spec) -> Callable[[int], Request]:
    """Request number ``i`` of the run (bodies differ so no request is a provider retry)."""
    if spec.kind == "salla":
        template = salla_template()

        def salla(i: int) -> Request:
            body = template.body(spec.first_id + i)
            return "POST", spec.url, body, {**salla_headers(spec.secret, body), **spec.headers}

        return salla
    if spec.kind == "webhook":

        def webhook(i: int) -> Request:
            n = spec.first_id + i
            body = webhook_body(n)
            return "POST", spec.url, body, standard_webhook_headers(spec.secret, f"evt_bench{n:017d}", body)

        return webhook
    if spec.kind == "get":
        return lambda i: ("GET", spec.url, None, spec.headers)
    raise ValueError(f"unknown kind {spec.kind!r}")


Send = Callable[[Request], Awaitable[int]]
#: What a request may take before it counts as failed (``TimeoutError``).
TIMEOUT = 30.0


async def _one(send: Send, spec: Spec, request: Request, started: float, result: Result) -> None:
    result.sent += 1
    try:
        status = await send(request)
    except (aiohttp.ClientError, WireError, OSError, TimeoutError) as exc:
        result.errors[type(exc).__name__] += 1
        return
    result.latencies.append(time.monotonic() - started)
    result.statuses[str(status)] += 1
    if status in spec.ok_status:
        result.ok += 1


async def burst(send: Send, spec: Spec, make: Callable[[int], Request]) -> Result:
    """Closed loop: ``concurrency`` in flight until ``count`` are sent or ``seconds`` pass."""
    result = Result()
    start = time.monotonic()
    deadline = start + spec.seconds
    counter = iter(range(spec.count))

    async def lane() -> None:
        for i in counter:
            if time.monotonic() >= deadline:
                return
            request = make(i)
            await _one(send, spec, request, time.monotonic(), result)

    await asyncio.gather(*(lane() for _ in range(spec.concurrency)))
    result.elapsed = time.monotonic() - start
    return result


async def open_loop(send: Send, spec: Spec, make: Callable[[int], Request]) -> Result:
    """Open loop: request ``i`` is due at ``start + i / rate``; latency counts from that moment."""
    result = Result()
    count = min(spec.count, int(spec.rate * spec.seconds))
    tasks: set[asyncio.Task[None]] = set()
    start = time.monotonic() + 0.05
    for i in range(count):
        due = start + i / spec.rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        request = make(i)
        if spec.record_sends:
            result.sends[str(spec.first_id + i)] = due
        task = asyncio.create_task(_one(send, spec, request, due, result))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    result.elapsed = time.monotonic() - start
    return result


@contextlib.asynccontextmanager
async def sender(spec: Spec) -> AsyncIterator[Send]:
    """A way to send ``spec``'s requests on kept-alive connections, and close them after."""
    limit = spec.concurrency if spec.mode == "burst" else 512
    if spec.client == "aiohttp":
        connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, force_close=False)
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:

            async def via_aiohttp(request: Request) -> int:
                method, url, body, headers = request
                async with session.request(method, url, data=body, headers=headers) as response:
                    await response.read()
                    return response.status

            yield via_aiohttp
        return
    if spec.client != "wire":
        raise ValueError(f"unknown client {spec.client!r}")
    pool = ConnectionPool(spec.url, limit=limit, timeout=TIMEOUT)

    async def via_wire(request: Request) -> int:
        method, url, body, headers = request
        return await pool.request(serialize(method, url, headers, body))

    try:
        yield via_wire
    finally:
        pool.close()


async def run(spec: Spec) -> Result:
    """Run ``spec`` on kept-alive connections (after ``warmup`` uncounted requests)."""
    if spec.mode not in ("burst", "rate"):
        raise ValueError(f"unknown mode {spec.mode!r}")
    async with sender(spec) as send:
        make = request_factory(spec)
        if spec.warmup:
            # open the connections and warm the server's caches; ids far from the measured ones
            warm = Spec(**{**spec.__dict__, "mode": "burst", "count": spec.warmup, "seconds": 30.0, "warmup": 0})
            warm.first_id += 50_000_000
            await burst(send, warm, request_factory(warm))
        if spec.mode == "burst":
            return await burst(send, spec, make)
        return await open_loop(send, spec, make)


async def run_all(specs: list[Spec]) -> list[Result]:
    """Run the specs one after the other."""
    return [await run(spec) for spec in specs]


def main() -> None:
    """Read a spec (or a list of specs) from stdin, run it, write the result(s) to stdout."""
    raw = orjson.loads(sys.stdin.buffer.read())
    specs = [Spec(**item) for item in (raw if isinstance(raw, list) else [raw])]
    try:
        import uvloop

        results = uvloop.run(run_all(specs))
    except ImportError:  # pragma: no cover - uvloop is not on every platform
        results = asyncio.run(run_all(specs))
    out = [r.as_json() for r in results]
    sys.stdout.buffer.write(orjson.dumps(out if isinstance(raw, list) else out[0]) + b"\n")


if __name__ == "__main__":
    main()

"""Signed ``generic`` webhook traffic to a running hub, and the exactly-once check of what it became.

Shared by ``scale_out.py`` (APIs on loopback ports) and ``smoke.py`` (the compose stack behind
nginx on 127.0.0.1:8080). Every request goes to 127.0.0.1; bursts are bounded by the caller.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from hub.delivery.signing import headers as signed_headers

LOOPBACK = "127.0.0.1"


class TrafficError(RuntimeError):
    """The hub answered something a run cannot go on from; the message says what."""


MAX_EVENTS = 20_000


@dataclass
class Round:
    """The figures of one burst with a given number of workers."""

    workers: int
    events: int
    accepted: int = 0
    rejected: int = 0
    processed: int = 0
    duplicates: int = 0
    missing: int = 0
    ingest_per_s: float = 0.0
    end_to_end_per_s: float = 0.0
    processing_per_s: float = 0.0
    seconds: float = 0.0
    machine_cpu_pct: float = 0.0
    api_cpu_s: float = 0.0
    worker_cpu_s: float = 0.0
    other_cpu_s: float = 0.0  # Postgres, Redis, this script and anything else on the machine
    errors: list[str] = field(default_factory=list)

    @property
    def exactly_once(self) -> bool:
        """Every event of the burst is one order, none missing, none doubled."""
        return self.processed == self.events and not self.duplicates and not self.missing and not self.rejected


# ---- HTTP ----------------------------------------------------------------------------------------


async def _json(response: aiohttp.ClientResponse) -> Any:
    text = await response.text()
    try:
        return json.loads(text)
    except ValueError:
        return {"raw": text[:300]}


async def create_connection(port: int, key: str, secret: str, run_id: str) -> str:
    """A ``generic`` connection for this run; its id."""
    body = {"source": "generic", "name": f"scale-out {run_id}", "secret": secret}
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http,
        http.post(f"http://{LOOPBACK}:{port}/api/v1/connections", json=body) as response,
    ):
        payload = await _json(response)
    if response.status == 404:
        raise TrafficError(
            "POST /api/v1/connections answered 404: this hub has no connections API yet "
            "(the ingestion pipeline is not in this build)"
        )
    if response.status != 201:
        raise TrafficError(f"POST /api/v1/connections answered {response.status}: {payload}")
    connection_id: str = payload["data"]["id"]
    return connection_id


def order_body(source: str, external_id: str, i: int) -> dict[str, Any]:
    """The ``i``-th order of a burst, in the generic format's order shape."""
    now = datetime.now(UTC).isoformat()
    price = f"{10 + i % 90}.50"
    return {
        "source": source,
        "external_id": external_id,
        "customer_name": f"Scale Out {i}",
        "customer_phone": f"+96650{i % 10_000_000:07d}",
        "products": [{"sku": f"SKU-{i % 50}", "name": "Scale-out item", "quantity": 1, "price": price}],
        "subtotal": price,
        "total_amount": price,
        "currency": "SAR",
        "status": "confirmed",
        "payment_status": "paid",
        "created": now,
        "source_updated_at": now,
    }


def webhook_body(msg_id: str, order: dict[str, Any]) -> bytes:
    """An ``order.created`` event in the generic format (the hub's own envelope)."""
    envelope = {
        "id": msg_id,
        "type": "order.created",
        "created": datetime.now(UTC).isoformat(),
        "data": {"order": order},
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


async def _post_hook(
    http: aiohttp.ClientSession, url: str, secret: str, msg_id: str, order: dict[str, Any], result: Round
) -> None:
    body = webhook_body(msg_id, order)
    for attempt in range(6):
        # the same body and webhook-id on every attempt (the hub dedupes on it), signed with a fresh timestamp
        sent = signed_headers(msg_id=msg_id, timestamp=int(time.time()), body=body, secrets=[secret])
        try:
            async with http.post(url, data=body, headers=sent) as response:
                if response.status in (200, 202):
                    result.accepted += 1
                    return
                text = (await response.text())[:200]
                if response.status in (429, 503) and attempt < 5:
                    await asyncio.sleep(min(5.0, float(response.headers.get("Retry-After", "0.5") or 0.5)))
                    continue
        except (aiohttp.ClientError, TimeoutError) as exc:
            text = repr(exc)
            if attempt < 5:
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
        result.rejected += 1
        if len(result.errors) < 5:
            result.errors.append(f"{msg_id}: {text}")
        return


async def _list(
    http: aiohttp.ClientSession, base: str, path: str, params: dict[str, str]
) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
    """One page of a list endpoint: (HTTP status, data, meta)."""
    async with http.get(f"{base}{path}", params=params) as response:
        payload = await _json(response)
    if response.status != 200:
        return response.status, [], {"error": payload}
    return 200, payload["data"], payload["meta"]


async def _all(http: aiohttp.ClientSession, base: str, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every item of a list endpoint (100 a page); :class:`TrafficError` on any non-200."""
    items: list[dict[str, Any]] = []
    for page in range(1, MAX_EVENTS // 100 + 2):
        status, data, meta = await _list(http, base, path, {**params, "per_page": "100", "page": str(page)})
        if status != 200:
            raise TrafficError(f"GET {path} page {page} answered {status}: {meta['error']}")
        items.extend(data)
        if not meta.get("has_next"):
            break
    return items


async def _inbound_total(http: aiohttp.ClientSession, base: str, connection_id: str, status: str) -> int:
    params = {"connection_id": connection_id, "status": status, "per_page": "1"}
    code, _, meta = await _list(http, base, "/api/v1/inbound-events", params)
    if code != 200:
        raise TrafficError(f"GET /api/v1/inbound-events answered {code}: {meta['error']}")
    total: int = meta["total"]
    return total


async def _wait_processed(
    api: aiohttp.ClientSession,
    base: str,
    connection_id: str,
    result: Round,
    started: float,
    within: float,
    stall: float,
) -> None:
    """Until every accepted event of the round's connection is processed, one fails, or time runs out."""
    seen, progressed = 0, time.perf_counter()
    while seen < result.accepted:
        await asyncio.sleep(0.1)
        count = await _inbound_total(api, base, connection_id, "processed")
        now = time.perf_counter()
        if count > seen:
            seen, progressed = count, now
            continue
        failed = await _inbound_total(api, base, connection_id, "failed")
        if failed:
            status, data, _ = await _list(
                api, base, "/api/v1/inbound-events", {"connection_id": connection_id, "status": "failed"}
            )
            result.errors.append(f"{failed} inbound events failed, e.g. {data[0]['error'] if data else status}")
            return
        if now > started + within or now - progressed > stall:
            result.errors.append(
                f"{seen}/{result.accepted} processed after {now - started:.0f} s: are the workers consuming jobs? "
                "(--keep-logs shows their output)"
            )
            return


async def _check_exactly_once(
    api: aiohttp.ClientSession, base: str, connection_id: str, source: str, expected: list[str], result: Round
) -> None:
    """Count distinct, doubled and missing orders of the round; the processing rate from the events."""
    events = await _all(api, base, "/api/v1/inbound-events", {"connection_id": connection_id, "status": "processed"})
    # Events are marked processed a batch at a time: the rate is what was processed after the first
    # batch's commit, over the time from that commit to the last one.
    stamps = sorted(datetime.fromisoformat(e["processed_at"]) for e in events if e.get("processed_at"))
    if len(stamps) > 1 and stamps[-1] > stamps[0]:
        after_first = sum(1 for stamp in stamps if stamp > stamps[0])
        result.processing_per_s = after_first / (stamps[-1] - stamps[0]).total_seconds()
    status, _, _ = await _list(api, base, "/api/v1/orders", {"source": source, "per_page": "1"})
    if status == 200:
        ids = [o["external_id"] for o in await _all(api, base, "/api/v1/orders", {"source": source})]
        result.missing = len(set(expected) - set(ids))
    else:  # no orders API in this build: each processed event must name its own, distinct order
        ids = [order_id for e in events for order_id in e.get("order_ids", [])]
        result.missing = result.events - len(set(ids))
        result.errors.append(f"GET /api/v1/orders answered {status}: checked the inbound events' order_ids instead")
    result.processed = len(set(ids))
    result.duplicates = len(ids) - len(set(ids))


@dataclass(frozen=True)
class Burst:
    """Where one round's webhooks go and what they must become."""

    ports: list[int]
    key: str
    secret: str
    connection_id: str
    source: str  # the generic format names its platform; one per round, so orders are counted per round
    expected: list[str]  # external ids

    @property
    def base(self) -> str:
        """The first API, for the REST calls."""
        return f"http://{LOOPBACK}:{self.ports[0]}"

    def api(self) -> aiohttp.ClientSession:
        """A client session that authenticates to ``/api/v1``."""
        return aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.key}"})


async def push(burst: Burst, result: Round, *, concurrency: int) -> None:
    """POST every webhook of the burst, spread over the APIs, ``concurrency`` in flight."""
    hooks = [f"http://{LOOPBACK}:{port}/hooks/generic/{burst.connection_id}" for port in burst.ports]
    gate = asyncio.Semaphore(concurrency)
    limits = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=limits, timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def one(i: int) -> None:
            external_id = burst.expected[i]
            async with gate:
                order = order_body(burst.source, external_id, i)
                await _post_hook(http, hooks[i % len(hooks)], burst.secret, f"msg_{external_id}", order, result)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(len(burst.expected))))
        result.ingest_per_s = result.accepted / max(time.perf_counter() - started, 1e-9)


async def drain(burst: Burst, result: Round, *, started: float, within: float, stall: float) -> None:
    """Wait until every accepted webhook of the burst is processed (or one fails, or time runs out)."""
    async with burst.api() as api:
        await _wait_processed(api, burst.base, burst.connection_id, result, started, within, stall)
    result.seconds = time.perf_counter() - started


async def verify(burst: Burst, result: Round) -> None:
    """Check that each webhook of the burst became exactly one order."""
    async with burst.api() as api:
        await _check_exactly_once(api, burst.base, burst.connection_id, burst.source, burst.expected, result)


async def salla_order(base: str, key: str, payload: dict[str, Any]) -> str:
    """A Salla connection, ``payload`` (an order.created body) Salla-signed to its inbound URL, then the order."""
    secret = secrets.token_hex(16)
    auth = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        body = {"source": "salla", "name": "smoke salla", "secret": secret}
        async with http.post(f"{base}/api/v1/connections", json=body, headers=auth) as response:
            if response.status != 201:
                raise TrafficError(f"POST /api/v1/connections: {response.status} {await response.text()}")
            connection = (await response.json())["data"]
        path = "/" + connection["inbound_url"].split("://", 1)[1].split("/", 1)[1]
        raw = json.dumps(payload).encode()
        signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Salla-Signature": signature}
        async with http.post(f"{base}{path}", data=raw, headers=headers) as response:
            if response.status not in (200, 202):
                raise TrafficError(f"signed Salla webhook: {response.status} {await response.text()}")
            acknowledged = response.status
        external_id = str(payload["data"]["id"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            params = {"source": "salla", "per_page": "10"}
            async with http.get(f"{base}/api/v1/orders", params=params, headers=auth) as response:
                orders = (await response.json()).get("data", [])
            if [o for o in orders if o.get("external_id") == external_id]:
                return f"signed Salla order.created -> order {external_id} (webhook answered {acknowledged})"
            await asyncio.sleep(0.5)
    raise TrafficError(f"the Salla order {external_id} did not appear within 60 s")

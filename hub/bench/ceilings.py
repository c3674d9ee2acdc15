"""Ceilings: the raw limits of the hub's own parts, measured in the same run on the same machine.

Each hub figure is divided by (or divides) the ceiling of the part that bounds it, so a noisy or
slow machine moves both and the ratio holds:

==========================  ===========================================================================
figure                      ceiling
==========================  ===========================================================================
ingest_rate                 bare aiohttp handler that parses the same JSON and LPUSHes it to Redis
ingest_ack_p50/p99_ms       the same handler under the same open-loop 1,000/s schedule
processing_rate             raw asyncpg batched upserts of order rows (one connection, batch_size rows)
delivery_rate               bare aiohttp client POSTing Standard-Webhooks-signed bodies to the receiver
e2e_p50/p99_ms              bare relay: handler LPUSH -> BRPOP -> signed POST to the receiver (no DB)
api_first_page_p99_ms       raw asyncpg query of the same page (measured in the API phase)
==========================  ===========================================================================

Also measured for context: a handler that only parses (no Redis), single-row asyncpg upserts and
arq running no-op jobs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from hub.bench.bare import CEILING_LIST
from hub.bench.dataset import ORDER_COLUMNS, order_rows
from hub.bench.procs import Proc, Processes, free_port, loadgen, loadgen_series, run_json, wait_http
from hub.settings import asyncpg_dsn

_UPSERT = (
    f"INSERT INTO bench_upserts ({', '.join(ORDER_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i + 1}' for i in range(len(ORDER_COLUMNS)))}) "
    "ON CONFLICT (organization_id, source, external_id) DO UPDATE SET status = EXCLUDED.status, "
    "payment_status = EXCLUDED.payment_status, products = EXCLUDED.products, "
    "total_amount = EXCLUDED.total_amount, status_history = EXCLUDED.status_history, updated = EXCLUDED.updated"
)


@dataclass
class Ceilings:
    """Every ceiling measured so far (None until measured)."""

    values: dict[str, float] = field(default_factory=dict)

    def get(self, name: str) -> float | None:
        return self.values.get(name)

    def set(self, name: str, value: float | None) -> None:
        if value is not None:
            self.values[name] = value


@dataclass(frozen=True)
class Load:
    """How hard and how long the ceiling runs push (scaled with the run)."""

    seconds: float
    count: int
    concurrency: int
    ack_rate: float
    ack_seconds: float
    e2e_rate: float
    e2e_seconds: float
    delivery_concurrency: int
    upsert_rows: int
    batch_size: int
    arq_jobs: int


async def http_ceilings(
    procs: Processes, ceilings: Ceilings, load: Load, *, redis_url: str, receiver_url: str, secret: str
) -> None:
    """Bare aiohttp (with and without Redis) under the ingest load, and the bare relay's latency."""
    port = free_port()
    server = procs.spawn("bare-http", "hub.bench.bare", "http", "--port", str(port), "--redis", redis_url)
    relay: Proc | None = None
    try:
        await wait_http(server, f"http://127.0.0.1:{port}/healthz")
        base = f"http://127.0.0.1:{port}"
        salla = {"kind": "salla", "secret": "bench", "concurrency": load.concurrency, "warmup": 200}
        burst = {**salla, "mode": "burst", "count": load.count, "seconds": load.seconds}
        parse, push, fixed = await loadgen_series(
            [
                {**burst, "url": f"{base}/parse/hooks/salla/bench"},
                {**burst, "url": f"{base}/redis/hooks/salla/bench", "first_id": 5_000_000},
                {
                    **salla,
                    "mode": "rate",
                    "url": f"{base}/redis/hooks/salla/bench",
                    "rate": load.ack_rate,
                    "seconds": load.ack_seconds,
                    "count": int(load.ack_rate * load.ack_seconds),
                    "first_id": 10_000_000,
                },
            ]
        )
        ceilings.set("aiohttp_parse_rate", parse["rate"])
        ceilings.set("aiohttp_redis_rate", push["rate"])
        ceilings.set("aiohttp_redis_ack_p50_ms", fixed["p50_ms"])
        ceilings.set("aiohttp_redis_ack_p99_ms", fixed["p99_ms"])
        await _forget_pushed(redis_url)
        relay = procs.spawn(
            "bare-relay", "hub.bench.bare", "relay", "--redis", redis_url, "--target", receiver_url, "--secret", secret
        )
        await asyncio.sleep(1.0)  # the relay's start-up: it pops nothing until it runs
        latencies = await timed_receipts(
            receiver_url,
            {
                **salla,
                "warmup": 0,
                "mode": "rate",
                "url": f"{base}/redis/hooks/salla/bench",
                "rate": load.e2e_rate,
                "seconds": load.e2e_seconds,
                "count": int(load.e2e_rate * load.e2e_seconds),
                "first_id": 20_000_000,
                "record_sends": True,
            },
            wait=5.0,
        )
        ceilings.set("relay_e2e_p50_ms", latencies.get("p50_ms"))
        ceilings.set("relay_e2e_p99_ms", latencies.get("p99_ms"))
    finally:
        if relay is not None:
            procs.stop(relay)
        procs.stop(server)


async def _forget_pushed(redis_url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        await client.delete(CEILING_LIST)
    finally:
        await client.aclose()


async def signed_client_ceiling(ceilings: Ceilings, load: Load, *, receiver_url: str, secret: str) -> None:
    """A bare aiohttp client posting Standard-Webhooks-signed bodies to the same receiver."""
    out = await loadgen(
        {
            "mode": "burst",
            "kind": "webhook",
            "url": receiver_url,
            "secret": secret,
            "count": load.count,
            "seconds": load.seconds,
            "concurrency": load.delivery_concurrency,
            "warmup": 200,
            "client": "aiohttp",  # the ceiling is aiohttp's client, as the hub's sender uses it
        }
    )
    ceilings.set("signed_client_rate", out["rate"])


async def arq_ceiling(ceilings: Ceilings, load: Load, *, redis_url: str) -> None:
    """arq draining no-op jobs in one burst worker."""
    out = await run_json("hub.bench.bare", "arq", "--redis", redis_url, "--jobs", str(load.arq_jobs))
    ceilings.set("arq_noop_jobs_rate", out["rate"])


async def upsert_ceilings(ceilings: Ceilings, load: Load, *, database_url: str) -> None:
    """Raw asyncpg upserts of order rows into a copy of ``orders`` with all its indexes."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute("CREATE TABLE bench_upserts (LIKE orders INCLUDING ALL)")
        rows = list(order_rows("org_bench", 0, load.upsert_rows))
        single = rows[: load.upsert_rows // 4]
        started = time.monotonic()
        done = 0
        for row in single:
            await conn.execute(_UPSERT, *row)
            done += 1
            if time.monotonic() - started > load.seconds:
                break
        ceilings.set("asyncpg_single_upsert_rate", done / (time.monotonic() - started))
        batched = rows[len(single) :]
        started = time.monotonic()
        done = 0
        for start in range(0, len(batched), load.batch_size):
            async with conn.transaction():
                await conn.executemany(_UPSERT, batched[start : start + load.batch_size])
            done += len(batched[start : start + load.batch_size])
            if time.monotonic() - started > load.seconds:
                break
        ceilings.set("asyncpg_batched_upsert_rate", done / (time.monotonic() - started))
    finally:
        await conn.execute("DROP TABLE IF EXISTS bench_upserts")
        await conn.close()


async def timed_receipts(receiver_url: str, spec: dict[str, Any], *, wait: float) -> dict[str, Any]:
    """Send ``spec`` (open loop, sends recorded) and time each order to its verified receipt.

    An order not received within ``wait`` seconds after the last send counts as taking that long
    (a lower bound), and is reported in ``missing``.
    """
    import aiohttp

    base = receiver_url.rsplit("/", 1)[0]
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/reset") as response:
            response.raise_for_status()
        out = await loadgen(spec)
        sends: dict[str, float] = out["sends"]
        deadline = time.monotonic() + wait
        receipts: dict[str, float] = {}
        while True:
            async with session.get(f"{base}/stats", params={"receipts": "1"}) as response:
                receipts = (await response.json())["receipts"]
            if all(key in receipts for key in sends) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    end = time.monotonic()
    latencies = sorted(receipts.get(key, end) - sent for key, sent in sends.items())
    from hub.bench.loadgen import percentile

    return {
        "sent": len(sends),
        "acked": out["ok"],
        "missing": sum(1 for key in sends if key not in receipts),
        "p50_ms": percentile(latencies, 50) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 99) * 1000 if latencies else None,
    }

"""The pipeline phases: ingest, processing, delivery and end to end.

Each phase is bounded by a count and a time, reads its outcome from the database (the source of
truth, not the hub's own claims) and adds its figures to the run; a figure whose inputs are missing
is reported missing with the reason.
"""

from __future__ import annotations

import time
from itertools import cycle

import psutil

from connectors.base import body_hash
from hub import queue
from hub.bench.ceilings import timed_receipts
from hub.bench.context import E2E_RATE, Run, poll_until, statuses_note
from hub.bench.dataset import salla_headers, salla_template
from hub.bench.infra import BenchError, Unavailable
from hub.bench.procs import loadgen_series
from hub.bench.report import Figure, missing
from hub.delivery.outbox import NewEvent, record_events
from hub.ingest.store import NOTIFY_CHANNEL, InboundItem, insert_many, summarize_headers
from hub.orders.view import order_public

HEALTH_KEY = queue.QUEUE_NAME + ":health-check"


def _join(*notes: str | None) -> str | None:
    text = "; ".join(n for n in notes if n)
    return text or None


async def ingest(run: Run) -> None:
    """Signed Salla webhooks: max-rate burst (acks/s), then ack latency at a fixed 1,000/s."""
    tenant, plan = run.need_tenant(), run.plan
    base = {
        "kind": "salla",
        "url": f"{run.api_url}/hooks/salla/{tenant.connection_id}",
        "secret": tenant.connection_secret,
        "ok_status": [200],
        "concurrency": plan.concurrency,
    }
    run.log(
        f"ingest: burst of up to {plan.burst_count} signed webhooks ({plan.concurrency} in flight), "
        f"then {plan.ack_rate:g}/s open loop for {plan.ack_seconds:g} s"
    )
    api = run.need_api()
    cpu = api.cpu()
    burst, fixed = await loadgen_series(
        [
            {
                **base,
                "mode": "burst",
                "count": plan.burst_count,
                "seconds": plan.burst_seconds,
                "first_id": 100_000_000,
                "warmup": 200,
            },
            {
                **base,
                "mode": "rate",
                "rate": plan.ack_rate,
                "seconds": plan.ack_seconds,
                "count": int(plan.ack_rate * plan.ack_seconds),
                "first_id": 200_000_000,
            },
        ]
    )
    per_ack = (api.cpu() - cpu) * 1000 / max(1, 200 + burst["sent"] + fixed["sent"])
    run.add(
        Figure(
            "ingest_rate",
            burst["rate"],
            run.ceilings.get("aiohttp_redis_rate"),
            _join(
                f"{burst['ok']} acks in {burst['elapsed']:.1f} s, {plan.concurrency} in flight, no worker running",
                f"API CPU {per_ack:.2f} ms/request",
                statuses_note(burst, "200"),
            ),
        )
    )
    note = _join(f"open loop {plan.ack_rate:g}/s, from scheduled send time", statuses_note(fixed, "200"))
    run.add(Figure("ingest_ack_p50_ms", fixed["p50_ms"], run.ceilings.get("aiohttp_redis_ack_p50_ms"), note))
    run.add(Figure("ingest_ack_p99_ms", fixed["p99_ms"], run.ceilings.get("aiohttp_redis_ack_p99_ms"), note))


async def clear_queue(run: Run) -> None:
    """Forget the ingest phase's events and jobs, so the next phase measures only its own work."""
    await run.need_pool().execute("TRUNCATE inbound_events")
    await run.need_redis().flushdb()


async def start_worker(run: Run) -> None:
    """One ``hub worker`` process, ready when arq has recorded its first health check."""
    redis = run.need_redis()
    await redis.delete(HEALTH_KEY)
    run.worker = run.procs.spawn("worker", "hub", "worker")
    run.memory.watch("worker", run.worker)
    worker = run.worker

    async def ready() -> bool:
        if not worker.alive():
            raise BenchError(f"hub worker exited with {worker.popen.returncode}:\n{worker.tail()}")
        return bool(await redis.exists(HEALTH_KEY))

    if not await poll_until(ready, within=60, interval=0.1):
        raise BenchError(f"hub worker did not start within 60 s:\n{worker.tail()}")


def _processing_items(run: Run, count: int) -> list[InboundItem]:
    """A realistic mix: three new orders, then an update of one of them, and so on."""
    tenant = run.need_tenant()
    created = salla_template("order.created")
    updated = salla_template("order.updated", slug="in_progress", minute=30)
    items: list[InboundItem] = []
    for i in range(count):
        order_id = 300_000_000 + i
        body = updated.body(order_id - 2) if i % 4 == 3 else created.body(order_id)
        items.append(
            InboundItem(
                organization_id=tenant.organization_id,
                connection_id=tenant.connection_id,
                source="salla",
                delivery_key=body_hash(body),
                headers=summarize_headers(salla_headers(tenant.connection_secret, body)),
                query={},
                body=body,
            )
        )
    return items


async def processing(run: Run) -> None:
    """N raw events stored with no worker running; then one worker is woken and timed to the last."""
    pool, count = run.need_pool(), run.plan.processing_events
    items = _processing_items(run, count)
    for start in range(0, count, 500):
        async with pool.acquire() as conn, conn.transaction():
            await insert_many(conn, items[start : start + 500])
    run.log(f"processing: {count} raw events stored (3 of 4 new orders, 1 of 4 updates); waking one worker")

    async def drained() -> bool:
        left = await pool.fetchval("SELECT count(*) FROM inbound_events WHERE status = 'received'")
        return int(left) == 0

    worker = run.need_worker()
    cpu, started = worker.cpu(), time.monotonic()
    # The production wake-up of committed inbound events (what the receiver's insert sends), not an arq job:
    # a job waits for arq's poll, which would be measured as processing time.
    await pool.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    done = await poll_until(drained, within=run.plan.drain_seconds)
    elapsed, cpu = time.monotonic() - started, worker.cpu() - cpu
    rows = await pool.fetch("SELECT status, count(*) AS n FROM inbound_events GROUP BY status")
    counts = {r["status"]: int(r["n"]) for r in rows}
    finished = count - counts.get("received", 0)
    note = _join(
        f"{finished} of {count} events by 1 worker in {elapsed:.2f} s",
        f"worker CPU {cpu * 1000 / max(1, finished):.2f} ms/event",
        None if done else f"time bound ({run.plan.drain_seconds:g} s) reached first",
        f"{counts['failed']} failed" if counts.get("failed") else None,
    )
    run.add(Figure("processing_rate", finished / elapsed, run.ceilings.get("asyncpg_batched_upsert_rate"), note))


async def create_endpoint(run: Run) -> None:
    """Subscribe the receiver to ``order.*`` through the webhooks API and give it the secret."""
    tenant, http = run.need_tenant(), run.need_http()
    body = {"url": run.receiver_url, "event_types": ["order.*"], "description": "hub bench receiver"}
    async with http.post(f"{run.api_url}/api/v1/webhooks", json=body, headers=run.auth()) as response:
        if response.status in (404, 405):
            raise Unavailable("POST /api/v1/webhooks is not in this build")
        payload = await response.json()
        if response.status != 201:
            raise BenchError(f"POST /api/v1/webhooks answered {response.status}: {payload}")
    tenant.endpoint_id, tenant.endpoint_secret = payload["data"]["id"], payload["data"]["secret"]
    base = run.receiver_url.rsplit("/", 1)[0]
    async with http.post(f"{base}/config", json={"secret": tenant.endpoint_secret}) as response:
        response.raise_for_status()


async def delivery(run: Run) -> None:
    """N pending deliveries for one endpoint on the receiver; one worker is woken and timed to the last."""
    pool, redis, http, tenant = run.need_pool(), run.need_redis(), run.need_http(), run.need_tenant()
    count = run.plan.delivery_count
    await create_endpoint(run)
    rows = await pool.fetch("SELECT * FROM orders WHERE organization_id = $1 LIMIT $2", tenant.organization_id, count)
    if not rows:
        raise BenchError("no orders to deliver events for (the processing phase made none)")
    events = [
        NewEvent(tenant.organization_id, row["id"], row["source"], "order.updated", order_public(row))
        for row, _ in zip(cycle(rows), range(count), strict=False)
    ]
    delivery_ids: list[str] = []
    for start in range(0, count, 500):
        async with pool.acquire() as conn, conn.transaction():
            delivery_ids += await record_events(conn, events[start : start + 500])
    base = run.receiver_url.rsplit("/", 1)[0]
    async with http.post(f"{base}/reset") as response:
        response.raise_for_status()
    run.log(f"delivery: {count} pending deliveries to one endpoint; waking one worker")

    async def drained() -> bool:
        left = await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'pending'")
        return int(left) == 0

    worker = run.need_worker()
    cpu, started = worker.cpu(), time.monotonic()
    # The outbox's own wake-up after its commit (the worker's blocking wait), not an arq job and its poll.
    await queue.wake_deliveries(redis, delivery_ids)
    done = await poll_until(drained, within=run.plan.drain_seconds)
    elapsed, cpu = time.monotonic() - started, worker.cpu() - cpu
    succeeded = int(await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'succeeded'"))
    async with http.get(f"{base}/stats") as response:
        stats = await response.json()
    note = _join(
        f"{succeeded} of {count} succeeded by 1 worker in {elapsed:.2f} s; receiver verified {stats['unique']}",
        f"endpoint cap {run.plan.ceiling.delivery_concurrency} (the ceiling's concurrency)",
        f"worker CPU {cpu * 1000 / max(1, succeeded):.2f} ms/delivery",
        None if done else f"time bound ({run.plan.drain_seconds:g} s) reached first",
        f"{stats['invalid']} failed verification" if stats["invalid"] else None,
    )
    run.add(Figure("delivery_rate", succeeded / elapsed, run.ceilings.get("signed_client_rate"), note))


#: ``cpu_per_order_ms`` measured at commit 4d2a19a by this same method (docs/benchmarks.md).
CPU_PER_ORDER_AT_4D2A19A = 5.98


async def postgres_cpu(run: Run) -> float:
    """CPU seconds (user + system) so far of the bench's Postgres server's processes.

    ``pg_stat_activity`` lists every backend and auxiliary process of that server (and no other
    server's), so other Postgres servers on the machine are not counted.
    """
    total = 0.0
    for pid in [r["pid"] for r in await run.need_pool().fetch("SELECT pid FROM pg_stat_activity")]:
        try:
            times = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += times.user + times.system
    return total


async def e2e(run: Run) -> None:
    """Platform POST -> verified receipt of ``order.created`` at a fixed rate (200 events/s unless asked otherwise)."""
    tenant, plan = run.need_tenant(), run.plan
    if tenant.endpoint_secret is None:
        raise BenchError("no webhook endpoint (the delivery phase did not create one)")
    spec = {
        "kind": "salla",
        "mode": "rate",
        "url": f"{run.api_url}/hooks/salla/{tenant.connection_id}",
        "secret": tenant.connection_secret,
        "rate": plan.e2e_rate,
        "seconds": plan.e2e_seconds,
        "count": int(plan.e2e_rate * plan.e2e_seconds),
        "first_id": 400_000_000,
        "ok_status": [200],
        "record_sends": True,
    }
    run.log(f"e2e: {plan.e2e_rate:g} events/s for {plan.e2e_seconds:g} s through receiver, worker and sender")
    api, worker = run.need_api(), run.need_worker()
    api_cpu, worker_cpu = api.cpu(), worker.cpu()
    pg_cpu = await postgres_cpu(run)
    since = await run.need_pool().fetchval("SELECT now()")
    out = await timed_receipts(run.receiver_url, spec, wait=10.0)
    api_cpu, worker_cpu = api.cpu() - api_cpu, worker.cpu() - worker_cpu
    cpu = api_cpu + worker_cpu
    pg_cpu = await postgres_cpu(run) - pg_cpu
    stages = await _e2e_stages(run, since)
    run.log(f"e2e: {stages}")
    note = _join(
        f"{out['sent']} events, {out['acked']} acked 200",
        f"API + worker CPU {cpu * 1000 / max(1, out['sent']):.2f} ms/event",
        stages,
        f"{out['missing']} not received within 10 s (counted as 10 s)" if out["missing"] else None,
    )
    at_defined_rate = plan.e2e_rate == E2E_RATE  # the ceilings were measured at 200/s only
    if not at_defined_rate:
        note = _join(f"at {plan.e2e_rate:g}/s: no ceiling (the relay's is measured at {E2E_RATE:g}/s)", note)
    for figure, value, ceiling in (
        ("e2e_p50_ms", "p50_ms", "relay_e2e_p50_ms"),
        ("e2e_p99_ms", "p99_ms", "relay_e2e_p99_ms"),
    ):
        run.add(Figure(figure, out[value], run.ceilings.get(ceiling) if at_defined_rate else None, note))
    orders = max(1, out["sent"])
    per_order = (cpu + pg_cpu) * 1000 / orders
    cpu_note = (
        f"API {api_cpu * 1000 / orders:.2f} ms + worker {worker_cpu * 1000 / orders:.2f} ms + Postgres "
        f"{pg_cpu * 1000 / orders:.2f} ms per order at "
        f"{plan.e2e_rate:g}/s (load generator and receiver excluded); "
        + (
            "ceiling = the same figure at 4d2a19a"
            if at_defined_rate
            else f"no ceiling: the one measured at 4d2a19a is for {E2E_RATE:g}/s"
        )
    )
    run.add(Figure("cpu_per_order_ms", per_order, CPU_PER_ORDER_AT_4D2A19A if at_defined_rate else None, cpu_note))


_STAGES = """
SELECT count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ie.processed_at - ie.received_at)) AS to_worker,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.created - ie.processed_at)) AS processing,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.started_at - d.created)) AS to_send,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.completed_at - a.started_at)) AS sent
FROM inbound_events ie
JOIN order_events oe ON oe.order_id = ie.order_ids ->> 0 AND oe.type = 'order.created'
JOIN deliveries d ON d.event_id = oe.id
JOIN delivery_attempts a ON a.delivery_id = d.id AND a.attempt_no = 1
WHERE ie.received_at >= $1 AND ie.status = 'processed'
"""


async def _e2e_stages(run: Run, since: object) -> str | None:
    """Where an event's time goes, from the timestamps the hub itself stored (medians, ms)."""
    row = await run.need_pool().fetchrow(_STAGES, since)
    if row is None or not row["n"]:
        return None

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.1f}"

    return (
        f"stage p50s: received → worker {ms(row['to_worker'])} ms, processing {ms(row['processing'])} ms, "
        f"outbox → send {ms(row['to_send'])} ms, send → recorded {ms(row['sent'])} ms"
    )


def memory_figures(run: Run) -> None:
    """Peak RSS of the API and worker processes across the run, against their budgets."""
    api, worker = run.memory.peak_mb("api"), run.memory.peak_mb("worker")
    run.add(
        Figure("api_rss_mb", api, 150.0, "peak across the run (export included); ceiling = 150 MB budget")
        if api is not None
        else missing("api_rss_mb", "the API process never ran")
    )
    run.add(
        Figure("worker_rss_mb", worker, 200.0, "peak across the run; ceiling = 200 MB budget")
        if worker is not None
        else missing("worker_rss_mb", "no worker process ran")
    )

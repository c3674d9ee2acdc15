"""The backfill phase: a Shopify connection with credentials pulls a fake store's history.

The store (:mod:`hub.bench.fake_shopify`) is unthrottled and pre-serialized, so the figure is the
hub's own pull → normalize → upsert path, started by ``POST /api/v1/connections`` exactly as a merchant
starts it and run by the ``hub worker`` the earlier phases started. Its ceiling is the hub's processing
rate measured in the same run (webhook events → orders), the same writer fed by another way in.
"""

from __future__ import annotations

import asyncio
import secrets
import time

from hub.bench.context import Run
from hub.bench.fake_shopify import API_VERSION, TOKEN, FakeShopify
from hub.bench.infra import BenchError
from hub.bench.report import Figure

TIME_BOUND_SECONDS = 300.0


async def backfill(run: Run) -> None:
    """Orders per second from connection creation until the last backfilled order is stored."""
    tenant = run.need_tenant()
    count = max(500, int((4000 if run.plan.quick else 20_000) * run.plan.scale))
    store = FakeShopify(count)
    origin = await store.start()
    run.log(f"backfill: {count} orders from a fake Shopify store ({len(store.pages)} pages of 250)")
    try:
        settings = {
            "shop_domain": "bench-store.myshopify.com",
            "access_token": TOKEN,
            "api_version": API_VERSION,
            "api_base_url": origin,
        }
        body = {"source": "shopify", "name": "bench store", "secret": secrets.token_hex(24), "settings": settings}
        headers = {"Authorization": f"Bearer {tenant.key}"}
        started = time.monotonic()
        async with run.need_http().post(f"{run.api_url}/api/v1/connections", json=body, headers=headers) as resp:
            payload = await resp.json()
            if resp.status != 201:
                raise BenchError(f"POST /api/v1/connections (shopify) answered {resp.status}: {payload}")
        connection_id = payload["data"]["id"]
        stored, state = await _wait(run, tenant.organization_id, connection_id, count, started)
        elapsed = time.monotonic() - started
    finally:
        await store.stop()
    processing = run.results.figures.get("processing_rate")
    ceiling = processing.value if processing is not None else None
    note = (
        f"{stored} of {count} orders in {elapsed:.1f} s, {store.requests} requests to the store, sync {state}; "
        "ceiling = processing_rate of this run"
    )
    run.add(Figure("backfill_rate", stored / elapsed if elapsed > 0 else None, ceiling, note))


async def _wait(run: Run, organization_id: str, connection_id: str, count: int, started: float) -> tuple[int, str]:
    pool = run.need_pool()
    stored, state = 0, "?"
    while time.monotonic() - started < TIME_BOUND_SECONDS:
        stored = await pool.fetchval(
            "SELECT count(*) FROM orders WHERE organization_id = $1 AND source = 'shopify'", organization_id
        )
        state = await pool.fetchval(
            "SELECT coalesce(sync->>'state', 'idle') FROM connections WHERE id = $1", connection_id
        )
        if stored >= count:
            return stored, state
        if state in ("failed", "needs_attention"):
            error = await pool.fetchval("SELECT sync->>'last_error' FROM connections WHERE id = $1", connection_id)
            raise BenchError(f"the backfill stopped: {state}: {error}")
        await asyncio.sleep(0.02)
    return stored, state

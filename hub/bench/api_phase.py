"""The API phase: a filtered, sorted first page over a large organization, and a full CSV export.

Orders are bulk-loaded with ``COPY`` into a fresh organization (statuses, sources and payment
states spread as in a live store, a year of creation dates), then:

* ``api_first_page_p99_ms``: p99 of ``GET /api/v1/orders?status=pending&sort=-created&per_page=20``
  over a few hundred sequential requests (after a warm-up), against the p99 of the raw asyncpg
  query of the same page;
* ``export_peak_rss_mb``: the API process's peak RSS during ``GET /api/v1/orders/export?format=csv``
  minus its RSS just before; the ceiling is what the 150 MB API budget leaves above that baseline.
"""

from __future__ import annotations

import time

import aiohttp
import asyncpg

from hub import db
from hub.bench.context import Run, statuses_note
from hub.bench.dataset import ORDER_COLUMNS, order_rows
from hub.bench.infra import BenchError, Unavailable
from hub.bench.loadgen import percentile
from hub.bench.procs import MB, PeakSampler, loadgen
from hub.bench.report import Figure, missing
from hub.settings import asyncpg_dsn
from hub.tenancy.api_keys import create_key

API_BUDGET_MB = 150.0
PAGE_QUERY = "status=pending&sort=-created&per_page=20"
_RAW_PAGE = (
    "SELECT * FROM orders WHERE organization_id = $1 AND status = $2 AND deleted_at IS NULL "
    "ORDER BY created DESC, id DESC LIMIT 20"
)


async def _api_key(database_url: str) -> tuple[str, str]:
    engine = db.create_engine(database_url, pool_size=1)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            new = await create_key(session, org_name="bench-api")
    finally:
        await engine.dispose()
    return new.organization_id, new.secret


async def bulk_load(database_url: str, organization_id: str, count: int, chunk: int = 50_000) -> float:
    """COPY ``count`` realistic orders into the organization; returns seconds taken."""
    started = time.monotonic()
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for start in range(0, count, chunk):
            rows = order_rows(organization_id, start, min(chunk, count - start))
            await conn.copy_records_to_table("orders", records=rows, columns=list(ORDER_COLUMNS))
        # What autovacuum has done to a table that grew to this size over months (its insert threshold
        # vacuums it): statistics, and a visibility map, so a capped count is an index-only scan.
        await conn.execute("VACUUM (ANALYZE) orders")
    finally:
        await conn.close()
    return time.monotonic() - started


async def raw_page_p99(database_url: str, organization_id: str, requests: int) -> float:
    """p99 (ms) of the raw asyncpg query of the same first page, prepared, sequential."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        statement = await conn.prepare(_RAW_PAGE)
        for _ in range(20):
            await statement.fetch(organization_id, "pending")
        timings = []
        for _ in range(requests):
            started = time.monotonic()
            await statement.fetch(organization_id, "pending")
            timings.append(time.monotonic() - started)
    finally:
        await conn.close()
    return percentile(sorted(timings), 99) * 1000


async def api(run: Run) -> None:
    """Bulk-load, then the first-page p99 and the export's memory."""
    plan, http = run.plan, run.need_http()
    organization_id, key = await _api_key(run.infra.database_url)
    headers = {"Authorization": f"Bearer {key}"}
    async with http.get(f"{run.api_url}/api/v1/orders?per_page=1", headers=headers) as response:
        if response.status in (404, 405):
            raise Unavailable("GET /api/v1/orders is not in this build")
    scaled = "" if plan.api_orders >= 1_000_000 else f"scaled down to {plan.api_orders:,} orders (--quick); "
    run.log(f"api: loading {plan.api_orders:,} orders into one organization")
    seconds = await bulk_load(run.infra.database_url, organization_id, plan.api_orders)
    run.log(f"api: loaded in {seconds:.1f} s; {plan.api_requests} first-page requests")
    url = f"{run.api_url}/api/v1/orders?{PAGE_QUERY}"
    spec = {"mode": "burst", "kind": "get", "url": url, "headers": headers, "concurrency": 1, "seconds": 60}
    await loadgen({**spec, "count": 20})
    out = await loadgen({**spec, "count": plan.api_requests})
    ceiling = await raw_page_p99(run.infra.database_url, organization_id, plan.api_requests)
    run.ceilings.set("asyncpg_first_page_p99_ms", ceiling)
    note = f"{scaled}{out['ok']} sequential requests ?{PAGE_QUERY}; ceiling = raw asyncpg query of the same page"
    run.add(Figure("api_first_page_p99_ms", out["p99_ms"], ceiling, _with(note, statuses_note(out, "200"))))
    await export(run, headers, plan.api_orders, scaled)


def _with(note: str, extra: str | None) -> str:
    return f"{note}; {extra}" if extra else note


async def export(run: Run, headers: dict[str, str], count: int, scaled: str) -> None:
    """Stream the full CSV export while sampling the API's RSS."""
    if run.api is None:
        raise BenchError("the API process is not running")
    run.log(f"api: full CSV export of {count:,} orders")
    http = run.need_http()
    url = f"{run.api_url}/api/v1/orders/export?format=csv"
    size = lines = 0
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=600)
    with PeakSampler(run.api) as sampler:
        async with http.get(url, headers=headers, timeout=timeout) as response:
            if response.status in (404, 405):
                run.add(missing("export_peak_rss_mb", "GET /api/v1/orders/export is not available in this build"))
                return
            if response.status != 200:
                body = (await response.read())[:300]
                raise BenchError(f"export answered {response.status}: {body!r}")
            async for chunk in response.content.iter_chunked(1 << 16):
                size += len(chunk)
                lines += chunk.count(b"\n")
    elapsed = time.monotonic() - started
    baseline = sampler.baseline / MB
    growth = (sampler.peak - sampler.baseline) / MB
    note = (
        f"{scaled}{lines - 1:,} rows, {size / MB:.1f} MB CSV in {elapsed:.1f} s; baseline {baseline:.0f} MB; "
        f"ceiling = {API_BUDGET_MB:g} MB budget minus baseline"
    )
    run.add(Figure("export_peak_rss_mb", max(growth, 0.0), API_BUDGET_MB - baseline, note))

"""``hub bench``: start what the measurement needs, run the bounded phases, stop everything, report.

Order of a run (each step bounded by a count and a time, all on loopback):

1. Postgres + Redis for this run only (:mod:`hub.bench.infra`), migrated.
2. The receiver (:mod:`hub.bench.receiver`), then the ceilings (:mod:`hub.bench.ceilings`) while
   nothing of the hub runs yet.
3. ``hub serve`` as a subprocess; an organization, an API key and a Salla connection.
4. Ingest (no worker running), processing and delivery (one ``hub worker`` process), end to end,
   then the API over a bulk-loaded organization (:mod:`hub.bench.phases`, :mod:`hub.bench.api_phase`).
5. Peak RSS of the API and worker processes, sampled all along.

Every child is stopped on the way out, also on failure or Ctrl-C; the database is dropped and the
embedded servers stopped. Progress and logs go to stderr; stdout carries only the figures.
"""

from __future__ import annotations

import os
import platform
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from hub import db, queue
from hub.bench import api_phase, backfill_phase, ceilings, phases
from hub.bench.context import E2E_RATE, Plan, Results, Run, Tenant
from hub.bench.infra import BenchError, Infra, open_infra
from hub.bench.procs import MemoryWatch, Processes, free_port, wait_http
from hub.bench.report import FIGURES, complete, print_json, print_table
from hub.delivery.signing import new_secret
from hub.settings import Settings
from hub.tenancy.api_keys import create_key

STEPS = ("ceilings", "hub", "ingest", "processing", "delivery", "e2e", "backfill", "api", "memory")


def _hub_env(infra: Infra, port: int, *, endpoint_concurrency: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HUB_PUBLIC_URL", "HUB_OPS_TOKEN")}
    env.update(
        {
            "HUB_DATABASE_URL": infra.database_url,
            "HUB_REDIS_URL": infra.redis_url,
            "HUB_HOST": "127.0.0.1",
            "HUB_PORT": str(port),
            "HUB_DATA_DIR": str(infra.workdir / "hub"),
            "HUB_LOG_LEVEL": "warning",
            "HUB_LOG_FORMAT": "json",
            "HUB_WEBHOOK_ALLOW_LOOPBACK": "true",
            "HUB_TRUST_HOST_HEADER": "true",  # hub serve needs it (or HUB_PUBLIC_URL)
            # the bench measures throughput, not the limiter's policy (the limiter still runs)
            "HUB_RATE_LIMIT": "1000000/second",
            "HUB_RATE_LIMIT_BURST": "1000000",
            "HUB_HOOKS_RATE_LIMIT": "1000000/second",
            # the hub sends to the receiver as many at once as the bare client ceiling does
            "HUB_WEBHOOK_ENDPOINT_CONCURRENCY": str(endpoint_concurrency),
        }
    )
    return env


async def _describe_machine(run: Run) -> None:
    """One line for the record: what these figures were measured on."""
    postgres = await run.need_pool().fetchval("SHOW server_version")
    redis_info = await run.need_redis().info("server")
    memory = psutil.virtual_memory().total / 1024**3
    run.log(
        f"machine: {os.cpu_count()} CPUs, {memory:.0f} GB, Python {platform.python_version()}, "
        f"PostgreSQL {postgres}, Redis {redis_info.get('redis_version', '?')}"
    )


async def _start_receiver(run: Run) -> None:
    port = free_port()
    proc = run.procs.spawn("receiver", "hub.bench.receiver", "--port", str(port))
    await wait_http(proc, f"http://127.0.0.1:{port}/stats")
    run.receiver_url = f"http://127.0.0.1:{port}/hook"
    run.ceiling_secret = new_secret()
    async with run.need_http().post(f"http://127.0.0.1:{port}/config", json={"secret": run.ceiling_secret}) as r:
        r.raise_for_status()


async def _ceilings(run: Run) -> None:
    load, found = run.plan.ceiling, run.ceilings
    run.log("ceilings: bare aiohttp, aiohttp + Redis, bare relay")
    await ceilings.http_ceilings(
        run.procs, found, load, redis_url=run.infra.redis_url, receiver_url=run.receiver_url, secret=run.ceiling_secret
    )
    run.log("ceilings: signed client -> receiver, asyncpg upserts, arq no-op jobs")
    await ceilings.signed_client_ceiling(found, load, receiver_url=run.receiver_url, secret=run.ceiling_secret)
    await ceilings.upsert_ceilings(found, load, database_url=run.infra.database_url)
    await ceilings.arq_ceiling(found, load, redis_url=run.infra.redis_url)
    await run.need_redis().flushdb()


async def _start_hub(run: Run) -> None:
    port = int(run.procs.env["HUB_PORT"])
    run.api = run.procs.spawn("api", "hub", "serve")
    run.memory.watch("api", run.api)
    run.api_url = f"http://127.0.0.1:{port}"
    await wait_http(run.api, f"{run.api_url}/healthz")
    engine = db.create_engine(run.infra.database_url, pool_size=1)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            new = await create_key(session, org_name="bench")
    finally:
        await engine.dispose()
    secret = secrets.token_hex(24)
    body = {"source": "salla", "name": "bench", "secret": secret}
    headers = {"Authorization": f"Bearer {new.secret}"}
    async with run.need_http().post(f"{run.api_url}/api/v1/connections", json=body, headers=headers) as response:
        payload = await response.json()
        if response.status != 201:
            raise BenchError(f"POST /api/v1/connections answered {response.status}: {payload}")
    run.tenant = Tenant(new.organization_id, new.secret, payload["data"]["id"], secret)


async def _processing(run: Run) -> None:
    await phases.clear_queue(run)
    await phases.start_worker(run)
    await phases.processing(run)


#: Phases nothing else depends on, which ``--skip`` may leave out.
SKIPPABLE = frozenset({"ceilings", "ingest", "api"})


async def _phases(run: Run, step: Callable[[str], None], skip: frozenset[str] = frozenset()) -> None:
    run.pool = await db.create_pool(run.infra.database_url, max_size=4)
    run.redis = await queue.connect(run.infra.redis_url)
    run.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    try:
        await _describe_machine(run)
        step("ceilings")
        await _start_receiver(run)
        if "ceilings" not in skip:
            await run.guarded("ceilings", (), _ceilings)
        step("hub")
        await _start_hub(run)
        step("ingest")
        if "ingest" not in skip:
            await run.guarded("ingest", ("ingest_rate", "ingest_ack_p50_ms", "ingest_ack_p99_ms"), phases.ingest)
        step("processing")
        await run.guarded("processing", ("processing_rate",), _processing)
        step("delivery")
        await run.guarded("delivery", ("delivery_rate",), phases.delivery)
        step("e2e")
        await run.guarded("e2e", ("e2e_p50_ms", "e2e_p99_ms", "cpu_per_order_ms"), phases.e2e)
        step("backfill")
        await run.guarded("backfill", ("backfill_rate",), backfill_phase.backfill)
        step("api")
        if "api" not in skip:
            await run.guarded("api", ("api_first_page_p99_ms", "export_peak_rss_mb"), api_phase.api)
        step("memory")
        run.memory.sample()
        phases.memory_figures(run)
    finally:
        await run.http.close()
        await run.redis.aclose()
        await run.pool.close()


def _run_loop(coro: Any) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is not on every platform
        import asyncio

        asyncio.run(coro)


def run_bench(
    settings: Settings,
    *,
    quick: bool,
    json_out: bool,
    data_dir: Path | None,
    scale: float = 1.0,
    skip: frozenset[str] = frozenset(),
    e2e_rate: float = E2E_RATE,
) -> int:
    """Run the bench and print its figures; returns the exit code (1 if a phase failed).

    ``skip`` (the hidden ``--skip``, for profiling one phase quickly) leaves out independent phases:
    their figures are reported as not measured. ``e2e_rate`` (the hidden ``--e2e-rate``) runs the
    end-to-end phase at another rate with the same number of orders, to see how an order's CPU depends
    on the rate; ``cpu_per_order_ms`` then has no ceiling (that one is defined at 200/s).
    """
    err = Console(stderr=True)
    plan = Plan.make(
        quick=quick,
        scale=scale,
        batch_size=settings.batch_size,
        endpoint_concurrency=settings.webhook_endpoint_concurrency,
        e2e_rate=e2e_rate,
    )
    started = time.monotonic()
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(), console=err, transient=True
    )

    def log(message: str) -> None:
        progress.console.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim] {message}")

    results = Results()
    with progress:
        task = progress.add_task("setting up", total=len(STEPS))

        def step(name: str) -> None:
            progress.update(task, description=name, completed=STEPS.index(name))

        try:
            with open_infra(settings, data_dir=data_dir, log=log) as infra:
                with Processes(
                    infra.workdir, _hub_env(infra, free_port(), endpoint_concurrency=plan.ceiling.delivery_concurrency)
                ) as procs:
                    memory = MemoryWatch()
                    memory.start()
                    run = Run(plan=plan, infra=infra, procs=procs, memory=memory, log=log, results=results)
                    try:
                        _run_loop(_phases(run, step, skip))
                    finally:
                        memory.close()
                    log("stopping the hub, the worker and the receiver")
                log("dropping the bench database")
        except Exception as exc:  # the edge: report what was measured, and why the rest is missing
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log(f"[red]bench failed: {escape(str(exc))}[/red]")
            results.fail(f"bench failed: {type(exc).__name__}: {first}"[:300], tuple(FIGURES))
        progress.update(task, completed=len(STEPS))
    figures = complete(results.figures)
    if json_out:
        print_json(figures)
    else:
        print_table(figures, results.ceilings.values, Console())
    log(f"done in {time.monotonic() - started:.0f} s")
    return 1 if results.failures else 0

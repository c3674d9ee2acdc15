"""The worker's composition root: job registry, start-up and shutdown hooks, supervision.

A plain arq :class:`~arq.worker.Worker`, the same in production, tests and burst mode. Its start-up
hook builds every dependency (pools, HTTP client, the :class:`~hub.delivery.engine.DeliveryEngine`)
into the typed :class:`~workers.context.WorkerContext` and starts the prompt wake-ups
(:mod:`workers.wakeups`); its shutdown hook stops and closes them. arq's own loop polls only for
arq jobs (the sweeper, retries, syncs). The hook is idempotent, so :func:`supervise` can run
``worker.main()`` again after Redis went away and came back.

Job names are a wire contract (:mod:`hub.queue`): never rename one without keeping the old name registered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from arq import cron, func
from arq.worker import Worker
from redis.exceptions import RedisError

from hub import db, heap, queue
from hub.delivery.engine import DeliveryEngine
from hub.settings import Settings, asyncpg_dsn
from workers import chat_sync, deliveries, ingest, platform_sync, sweeper
from workers.context import CTX_KEY, WorkerContext
from workers.wakeups import Wakeups

log = structlog.get_logger("hub.worker")

JOBS = [
    func(ingest.ingest_events, name=queue.INGEST_JOB),
    func(deliveries.deliver_webhooks, name=queue.DELIVER_JOB),
    chat_sync.job,
    platform_sync.job,
]
#: How long :func:`supervise` waits before running the worker again after Redis was lost.
RESTART_DELAY = 1.0

#: arq ``ctx`` key of an event set once the start-up hook built the context (see :func:`started`).
READY_KEY = "hub.ready"

Hook = Callable[[dict[str, Any]], Awaitable[None]]


def _startup(settings: Settings, *, settle_heap: bool = False) -> Hook:
    async def startup(ctx: dict[str, Any]) -> None:
        if CTX_KEY in ctx:  # main() run again after Redis came back: all is built and running
            return
        assert settings.database_url is not None
        redis = ctx["redis"]
        pool = await db.create_pool(settings.database_url, max_size=10)
        engine = db.create_engine(settings.database_url, pool_size=5)
        hub = WorkerContext(
            settings=settings,
            pool=pool,
            engine=engine,
            sessions=db.session_factory(engine),
            redis=redis,
            http=aiohttp.ClientSession(auto_decompress=True),
            deliveries=DeliveryEngine.open(settings, pool, redis),
        )

        async def drain_ingest() -> int:
            return await ingest.ingest_events(ctx, [])

        hub.wakeups = Wakeups(
            dsn=asyncpg_dsn(settings.database_url), redis=redis, deliveries=hub.deliveries, drain_ingest=drain_ingest
        )
        ctx[CTX_KEY] = hub
        hub.wakeups.start()
        if settle_heap:  # a process of its own (hub worker / hub up), not a test's worker
            heap.settle()
        ready: asyncio.Event | None = ctx.get(READY_KEY)
        if ready is not None:
            ready.set()

    return startup


async def _shutdown(ctx: dict[str, Any]) -> None:
    """Stop the wake-ups and close every client; idempotent (a second call finds nothing to close)."""
    hub: WorkerContext | None = ctx.pop(CTX_KEY, None)
    if hub is None:
        return
    if hub.wakeups is not None:
        await hub.wakeups.stop()
    await hub.deliveries.close()
    await hub.http.close()
    await hub.pool.close()
    await hub.engine.dispose()


def create_worker(settings: Settings, *, burst: bool = False, settle_heap: bool = False, **overrides: Any) -> Worker:
    """A worker for ``settings`` (the same factory in production and tests).

    ``settle_heap``: freeze the start-up heap once ready (:mod:`hub.heap`); for a worker that is its
    process's only occupant, never in a test process.
    """
    assert settings.redis_url is not None
    seconds = set(range(0, 60, max(1, min(59, settings.sweep_interval_seconds))))
    options: dict[str, Any] = {
        "functions": JOBS,
        "cron_jobs": [
            cron(sweeper.sweep, second=seconds, run_at_startup=True, unique=False),
            cron(chat_sync.schedule_chat_syncs, minute=set(range(0, 60, 5)), second=0),
        ],
        "redis_settings": queue.redis_settings(settings.redis_url),
        "queue_name": queue.QUEUE_NAME,
        "on_startup": _startup(settings, settle_heap=settle_heap),
        "on_shutdown": _shutdown,
        "burst": burst,
        "poll_delay": 0.5,
        "max_jobs": 20,
        "job_timeout": 120,
        "keep_result": 0,
        "max_tries": 1000,
        "handle_signals": not burst,
        "health_check_interval": 10,
    }
    options.update(overrides)
    options.setdefault("ctx", {})[READY_KEY] = asyncio.Event()
    return Worker(**options)


async def started(worker: Worker) -> WorkerContext:
    """The worker's context, once its start-up hook has built it (for a worker of :func:`create_worker`)."""
    ready: asyncio.Event = worker.ctx[READY_KEY]
    await ready.wait()
    hub: WorkerContext = worker.ctx[CTX_KEY]
    return hub


async def supervise(worker: Worker, *, restart_delay: float = RESTART_DELAY) -> None:
    """Run ``worker.main()``, again whenever Redis is lost, until it returns (burst) or is cancelled.

    arq's loop ends on a Redis error; the database still holds every piece of work and the wake-up
    loops keep running meanwhile, so the worker just starts polling again once Redis answers.
    """
    while True:
        try:
            await worker.main()
            return
        except (RedisError, OSError) as exc:  # redis' ConnectionError is not the builtin one
            log.warning("redis_unavailable", error=repr(exc))
        await asyncio.sleep(restart_delay)


async def stop_gracefully(worker: Worker, task: asyncio.Task[None], *, grace: float = 20.0) -> None:
    """Stop taking jobs, let jobs in flight finish (up to ``grace`` seconds), then close.

    arq's own ``close()`` cancels running jobs, and a job cancelled mid-way makes it raise before
    the shutdown hook closes our clients. Whatever does not finish within the grace period is
    cancelled: its transaction rolls back or its lease expires, and the sweeper hands it to
    another worker, so nothing is lost either way.
    """
    hub: WorkerContext | None = worker.ctx.get(CTX_KEY)
    if hub is not None:
        hub.stopping.set()  # running jobs finish what they hold and claim nothing new
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    running = [t for t in worker.tasks.values() if not t.done()]
    if hub is not None:
        running += [t for t in (*hub.background, *hub.deliveries.background) if not t.done()]
    if running:
        await asyncio.wait(running, timeout=grace)
    with contextlib.suppress(Exception):
        await worker.close()
    # close() skips the shutdown hook when Redis is away (or the worker never connected)
    await _shutdown(worker.ctx)

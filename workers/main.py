"""The arq worker: job registry, start-up/shutdown, and prompt wake-ups.

arq polls its queue every ``poll_delay`` (0.5 s by default), which alone would add ~285 ms median
latency to every event. :class:`WakeWorker` keeps arq's job handling but, between polls, blocks on
a Redis list that every enqueue pushes to (``hub.queue.WAKE_KEY``), so an idle worker starts a new
job within milliseconds without spinning.

The hottest paths skip arq's per-job bookkeeping altogether: after each group commit the receiver
pushes one wake-up to ``hub.queue.INGEST_WAKE``, and every worker runs a drain loop blocked on it
that claims all due inbound events in batches (``ingest_events`` with no ids). A wake-up carries no
data; Postgres says what is due. Fresh deliveries likewise: the outbox pushes their ids to
``hub.queue.DELIVERY_WAKE`` and a loop hands them to the process's delivery pipeline; the ones a
worker's own ingest batch wrote go straight to its own pipeline, without Redis, and leased in that
batch's own transaction, without a claim (``deliveries.lease_here``). The arq jobs
stay registered too, for the sweeper, retries and the retry buttons, so a lost wake-up only delays
work until the next sweep.

Job names are a wire contract: never rename one without keeping the old name registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

import aiohttp
import structlog
from arq import cron
from arq.connections import create_pool
from arq.worker import Worker
from redis.exceptions import RedisError

from hub import db, heap, queue
from hub.settings import Settings
from workers import chat_sync, deliveries, ingest, sweeper
from workers.context import CTX_KEY, WorkerContext

log = structlog.get_logger("hub.worker")

JOBS = [ingest.ingest_events, deliveries.deliver_webhooks, chat_sync.job]


class WakeWorker(Worker):
    """An arq worker that sleeps on a Redis ``BLPOP`` instead of a fixed poll delay."""

    async def main(self) -> None:
        if self._pool is None:
            self._pool = await create_pool(
                self.redis_settings,
                job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        if not self.burst:
            hub: WorkerContext = self.ctx[CTX_KEY]
            hub.local_delivery_wake = functools.partial(deliveries.wake, self.ctx)
            hub.lease_deliveries = functools.partial(deliveries.lease_here, self.ctx)
            hub.take_deliveries = functools.partial(deliveries.take_leased, self.ctx)
            self._loops = [
                asyncio.create_task(self._drain_on_wake(queue.INGEST_WAKE, ingest.ingest_events)),
                asyncio.create_task(self._deliveries_on_wake()),
            ]
        while True:
            try:
                await self._poll_iteration()
            except (RedisError, OSError) as exc:
                # Redis restarting or away: arq's own loop would end the worker here; keep it alive and
                # poll again, the database still holds every piece of work (the sweeper re-enqueues it).
                log.warning("redis_unavailable", error=repr(exc))
                await asyncio.sleep(self.poll_delay_s)
                continue
            if self.burst:
                if 0 <= self.max_burst_jobs <= self._jobs_started():
                    await asyncio.gather(*self.tasks.values())
                    return
                if await self.pool.zcard(self.queue_name) == 0:
                    await asyncio.gather(*self.tasks.values())
                    return
            if len(self.tasks) >= self.max_jobs:
                await asyncio.sleep(0.005)
                continue
            try:
                await self.pool.blpop([queue.WAKE_KEY], timeout=self.poll_delay_s)  # type: ignore[arg-type, misc]
            except (TimeoutError, OSError, RedisError):  # redis' ConnectionError is not the builtin one
                await asyncio.sleep(self.poll_delay_s)

    async def close(self) -> None:
        for loop in getattr(self, "_loops", []):
            loop.cancel()
        await asyncio.gather(*getattr(self, "_loops", []), return_exceptions=True)
        await super().close()

    async def _drain_on_wake(self, key: str, job: Any) -> None:
        """Block on ``key``; on a wake-up, clear it and drain what is due (a wake, not a job)."""
        while True:
            try:
                # BLPOP and DELETE in one round trip: Redis runs the DELETE as soon as the BLPOP returns,
                # and wakes pushed before it are covered by the drain below (which starts after it)
                async with self.pool.pipeline(transaction=False) as pipe:
                    pipe.blpop([key], timeout=5)
                    pipe.delete(key)
                    got, _ = await pipe.execute()
                if got is None:
                    continue
                await job(self.ctx, [])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("drain_failed", key=key)
                await asyncio.sleep(0.5)

    async def _deliveries_on_wake(self) -> None:
        """Block on the deliveries' wake-up list; hand the ids to the delivery pipeline (never waits for it)."""
        key = queue.DELIVERY_WAKE
        hub: WorkerContext = self.ctx[CTX_KEY]
        while not hub.stopping.is_set():
            try:
                async with self.pool.pipeline(transaction=False) as pipe:  # one round trip for both
                    pipe.blpop([key], timeout=5)
                    pipe.lpop(key, 1000)
                    got, rest = await pipe.execute()
                if got is None:
                    continue
                ids = [i for raw in (got[1], *(rest or [])) for i in queue.wake_payload(raw)]
                deliveries.wake(self.ctx, ids)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("drain_failed", key=key)
                await asyncio.sleep(0.5)


def _startup(settings: Settings, *, settle_heap: bool = False) -> Any:
    async def startup(ctx: dict[str, Any]) -> None:
        assert settings.database_url is not None
        engine = db.create_engine(settings.database_url, pool_size=5)
        ctx[CTX_KEY] = WorkerContext(
            settings=settings,
            pool=await db.create_pool(settings.database_url, max_size=10),
            engine=engine,
            sessions=db.session_factory(engine),
            redis=ctx["redis"],
            http=aiohttp.ClientSession(auto_decompress=True),
        )
        deliveries.open_sender(ctx, settings)
        if settle_heap:  # a process of its own (hub worker / hub up), not a test's worker
            heap.settle()

    return startup


async def _shutdown(ctx: dict[str, Any]) -> None:
    deps: WorkerContext | None = ctx.get(CTX_KEY)
    await deliveries.close_sender(ctx)
    if deps is None:
        return
    await deps.http.close()
    await deps.pool.close()
    await deps.engine.dispose()


def create_worker(
    settings: Settings, *, burst: bool = False, settle_heap: bool = False, **overrides: Any
) -> WakeWorker:
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
    return WakeWorker(**options)


async def stop_gracefully(worker: WakeWorker, task: asyncio.Task[None], *, grace: float = 20.0) -> None:
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
        running += [t for t in hub.background if not t.done()]
    if running:
        await asyncio.wait(running, timeout=grace)
    with contextlib.suppress(Exception):
        await worker.close()

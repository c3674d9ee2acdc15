"""The arq worker: job registry, start-up/shutdown, and prompt wake-ups.

arq polls its queue every ``poll_delay`` (0.5 s by default), which alone would add ~285 ms median
latency to every event. :class:`WakeWorker` keeps arq's job handling but, between polls, blocks on
a Redis list that every enqueue pushes to (``hub.queue.WAKE_KEY``), so an idle worker starts a new
job within milliseconds without spinning.

The hottest paths skip arq's per-job bookkeeping altogether: each group commit of the receiver
notifies a Postgres channel in its own insert (``hub.ingest.store.NOTIFY_CHANNEL``), and
every worker listens on a connection of its own and runs a drain loop that claims all due inbound
events in batches (``ingest_events`` with no ids); a push to ``hub.queue.INGEST_WAKE`` (what APIs
before the notification sent) wakes the same loop. A wake-up carries no data; Postgres says what is
due. Fresh deliveries likewise: the outbox pushes their ids to
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

import asyncpg
import structlog
from arq import cron
from arq.connections import create_pool
from arq.worker import Worker
from redis.exceptions import RedisError

from hub import db, heap, queue
from hub.ingest.store import NOTIFY_CHANNEL
from hub.settings import Settings, asyncpg_dsn
from hub.ssrf import AddressPolicy
from hub.ssrf_http import pinned_session
from workers import chat_sync, deliveries, ingest, sweeper
from workers.context import CTX_KEY, WorkerContext

log = structlog.get_logger("hub.worker")

#: How often the notification listener checks that its connection still answers.
LISTEN_CHECK_SECONDS = 30.0

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
            self._ingest_due = asyncio.Event()
            self._loops = [
                asyncio.create_task(self._drain_ingest()),
                asyncio.create_task(self._ingest_on_notify(hub)),
                asyncio.create_task(self._ingest_on_wake()),
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

    async def _drain_ingest(self) -> None:
        """Drain the due inbound events whenever a wake-up (Postgres or Redis) says some were committed.

        One drain at a time (plus its helper while a backlog lasts); wake-ups during a drain make one
        more drain after it, so nothing committed meanwhile waits for the sweeper.
        """
        while True:
            await self._ingest_due.wait()
            self._ingest_due.clear()
            try:
                await ingest.ingest_events(self.ctx, [])
            except asyncio.CancelledError:
                raise
            except Exception:  # database away: the sweeper re-enqueues what is left once it is back
                log.exception("drain_failed", key="ingest")
                await asyncio.sleep(0.5)

    async def _ingest_on_notify(self, hub: WorkerContext) -> None:
        """Listen for committed inbound events on a connection of its own; reconnect when it is lost.

        The API's group commit notifies in its insert (:data:`hub.ingest.store.NOTIFY_CHANNEL`),
        so a wake-up costs the API no round trip and arrives only for what committed. Notifications
        sent while not listening are lost, so every (re)connection starts with a drain.
        """
        assert hub.settings.database_url is not None
        dsn = asyncpg_dsn(hub.settings.database_url)
        while True:
            try:
                await self._listen(dsn)
                log.warning("ingest_listener_lost")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Postgres away or restarting: Redis wake-ups and the sweeper still work
                log.warning("ingest_listener_unavailable", error=repr(exc))
            await asyncio.sleep(1.0)

    async def _listen(self, dsn: str) -> None:
        """Wake the ingest drain on each notification until the connection is lost."""
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._ingest_due.set())
            self._ingest_due.set()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):  # a half-open connection never says it is lost
                    async with asyncio.timeout(LISTEN_CHECK_SECONDS):
                        await lost.wait()
                if not lost.is_set():
                    await conn.execute("SELECT 1", timeout=10)
        finally:
            conn.terminate()

    async def _ingest_on_wake(self) -> None:
        """Block on the Redis wake-up list too (what an API before the notification, or a test, pushes)."""
        key = queue.INGEST_WAKE
        while True:
            try:
                # BLPOP and DELETE in one round trip: Redis runs the DELETE as soon as the BLPOP returns,
                # and wakes pushed before it are covered by the drain that follows
                async with self.pool.pipeline(transaction=False) as pipe:
                    pipe.blpop([key], timeout=5)
                    pipe.delete(key)
                    got, _ = await pipe.execute()
                if got is not None:
                    self._ingest_due.set()
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
            # The one SSRF guard of every outgoing call (hub.ssrf_http), for whatever job uses this client.
            http=pinned_session(AddressPolicy.from_settings(settings)),
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

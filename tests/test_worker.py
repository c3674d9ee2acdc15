"""The worker: a plain arq worker whose start-up hook builds the typed context; it survives Redis going away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

import asyncpg
import pytest

from hub import queue
from hub.delivery.engine import DeliveryEngine
from hub.settings import Settings
from tests.conftest import eventually, running_worker
from workers.context import CTX_KEY
from workers.main import create_worker, started, stop_gracefully, supervise


async def test_worker_starts_with_its_jobs_and_a_typed_context(settings: Settings, db: asyncpg.Connection) -> None:
    async with running_worker(settings) as worker:
        assert worker.functions.keys() >= {queue.INGEST_JOB, queue.DELIVER_JOB, queue.CHAT_SYNC_JOB}
        hub = await asyncio.wait_for(started(worker), 10)
        assert isinstance(hub.deliveries, DeliveryEngine)
        assert hub.wakeups is not None
        await asyncio.wait_for(hub.wakeups.listening.wait(), 10)
    assert CTX_KEY not in worker.ctx  # the shutdown hook closed and dropped it


async def test_a_burst_worker_runs_the_same_wiring_and_its_jobs(settings: Settings, db: asyncpg.Connection) -> None:
    redis = await queue.connect(settings.redis_url or "")
    try:
        await queue.enqueue(redis, queue.DELIVER_JOB, [], job_id="burst-deliver")
        await queue.enqueue(redis, queue.INGEST_JOB, [], job_id="burst-ingest")
    finally:
        await redis.aclose()
    worker = create_worker(settings, burst=True, poll_delay=0)
    try:
        await worker.main()
        assert isinstance(worker.ctx[CTX_KEY].deliveries, DeliveryEngine)
        assert worker.ctx[CTX_KEY].wakeups.loops  # the wake-ups run in burst mode too
        assert worker.jobs_complete >= 2
        assert worker.jobs_failed == 0
    finally:
        await worker.close()
    assert CTX_KEY not in worker.ctx


class _CuttableProxy:
    """A TCP proxy to the test Redis that can drop every connection and refuse new ones, then recover."""

    def __init__(self, redis_url: str) -> None:
        parts = urlsplit(redis_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.db = parts.path.lstrip("/") or "0"
        self.down = False
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/{self.db}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def cut(self) -> None:
        self.down = True
        for writer in list(self.writers):
            writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()
        self.writers.discard(writer)


async def test_a_supervised_worker_survives_redis_going_away_and_coming_back(
    settings: Settings, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    assert settings.redis_url is not None
    if urlsplit(settings.redis_url).scheme != "redis":
        pytest.skip("the proxy speaks TCP; this run's Redis is on a Unix socket")
    caplog.set_level(logging.INFO, logger="arq.worker")
    proxy = _CuttableProxy(settings.redis_url)
    await proxy.start()
    worker = create_worker(settings.model_copy(update={"redis_url": proxy.url}), handle_signals=False, poll_delay=0.05)
    task = asyncio.create_task(supervise(worker, restart_delay=0.05))
    try:
        hub = await asyncio.wait_for(started(worker), 10)

        def starts() -> int:
            return sum("Starting worker" in r.getMessage() for r in caplog.records)

        proxy.cut()

        async def restarted() -> bool:  # arq's loop ended on the Redis error and main() runs again
            return starts() >= 2

        await eventually(restarted, timeout=20, interval=0.01)
        proxy.down = False
        redis = await queue.connect(settings.redis_url)
        try:
            await queue.enqueue(redis, queue.DELIVER_JOB, [], job_id="after-the-outage")

            async def done() -> bool:
                return not await redis.exists("arq:job:after-the-outage")

            await eventually(done, timeout=20)
        finally:
            await redis.aclose()
        assert not task.done()
        assert worker.ctx[CTX_KEY] is hub  # the start-up hook ran once: same engine, same loops
    finally:
        await stop_gracefully(worker, task, grace=5)
        await proxy.close()

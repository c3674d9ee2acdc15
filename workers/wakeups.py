"""Prompt wake-ups: the worker's background loops, started in its start-up hook, stopped in its shutdown.

arq polls its queue every ``poll_delay``; the hot paths do not wait for that. Each loop blocks on a
real signal and wakes within milliseconds:

- ingest: a connection of its own ``LISTEN``s on :data:`hub.ingest.store.NOTIFY_CHANNEL` (the API's
  group commit notifies in its insert) and a drain loop claims all due inbound events in batches;
- deliveries: a ``BLPOP`` on :data:`hub.queue.DELIVERY_WAKE` hands committed ids to the process's
  delivery engine.

A wake-up carries no work (Postgres says what is due); a lost one costs a delay until the sweeper.
Each loop outlives its service going away: it logs, waits and reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import asyncpg
import structlog
from arq.connections import ArqRedis

from hub import queue
from hub.delivery.engine import DeliveryEngine
from hub.ingest.store import NOTIFY_CHANNEL

log = structlog.get_logger("hub.worker")

#: How often the notification listener checks that its connection still answers.
LISTEN_CHECK_SECONDS = 30.0
#: How long one ``BLPOP`` blocks before it is issued again (bounds how late a stop is noticed).
BLOCK_SECONDS = 5


class Wakeups:
    """The loops that wake ingest and deliveries; owned by the worker context, started once."""

    def __init__(
        self, *, dsn: str, redis: ArqRedis, deliveries: DeliveryEngine, drain_ingest: Callable[[], Awaitable[object]]
    ) -> None:
        self.dsn, self.redis, self.deliveries, self.drain_ingest = dsn, redis, deliveries, drain_ingest
        self.ingest_due = asyncio.Event()
        #: set while the ingest listener is connected and listening (tests wait for it)
        self.listening = asyncio.Event()
        self.loops: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the loops (idempotent: a restarted worker keeps the ones running)."""
        if self.loops:
            return
        self.loops = [
            asyncio.create_task(self._drain(), name="ingest-drain"),
            asyncio.create_task(self._on_notify(), name="ingest-listen"),
            asyncio.create_task(self._deliveries_on_wake(), name="deliveries-wake"),
        ]

    async def stop(self) -> None:
        """Cancel the loops and wait for them to end."""
        loops, self.loops = self.loops, []
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    async def _drain(self) -> None:
        """Drain the due inbound events whenever a notification says some were committed.

        One drain at a time (plus its helper while a backlog lasts); wake-ups during a drain make one
        more drain after it, so nothing committed meanwhile waits for the sweeper.
        """
        while True:
            await self.ingest_due.wait()
            self.ingest_due.clear()
            try:
                await self.drain_ingest()
            except asyncio.CancelledError:
                raise
            except Exception:  # database away: the sweeper re-enqueues what is left once it is back
                log.exception("drain_failed", key="ingest")
                await asyncio.sleep(0.5)

    async def _on_notify(self) -> None:
        """Listen for committed inbound events; reconnect when the connection is lost."""
        while True:
            try:
                await self._listen()
                log.warning("ingest_listener_lost")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Postgres away or restarting: the sweeper still works
                log.warning("ingest_listener_unavailable", error=repr(exc))
            finally:
                self.listening.clear()
            await asyncio.sleep(1.0)

    async def _listen(self) -> None:
        """Wake the drain on each notification until the connection is lost.

        Notifications sent while not listening are lost, so every (re)connection starts with a drain.
        """
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self.ingest_due.set())
            self.listening.set()
            self.ingest_due.set()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):  # a half-open connection never says it is lost
                    async with asyncio.timeout(LISTEN_CHECK_SECONDS):
                        await lost.wait()
                if not lost.is_set():
                    await conn.execute("SELECT 1", timeout=10)
        finally:
            conn.terminate()

    async def _deliveries_on_wake(self) -> None:
        """Block on the deliveries' wake-up list; hand the ids to the engine (never waits for a send)."""
        key = queue.DELIVERY_WAKE
        while not self.deliveries.stopping.is_set():
            try:
                async with self.redis.pipeline(transaction=False) as pipe:  # one round trip for both
                    pipe.blpop([key], timeout=BLOCK_SECONDS)
                    pipe.lpop(key, 1000)
                    got, rest = await pipe.execute()
                if got is None:
                    continue
                ids = [i for raw in (got[1], *(rest or [])) for i in queue.wake_payload(raw)]
                self.deliveries.wake(ids)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away or restarting: the sweeper covers the gap
                log.warning("wake_loop_failed", key=key, error=repr(exc))
                await asyncio.sleep(0.5)

"""The delivery engine: one per worker process, the only way work reaches its delivery pipeline.

Built in the worker's start-up hook (:meth:`DeliveryEngine.open`) and closed in its shutdown. Work
comes in four ways, all ending in the process's one :class:`~hub.delivery.pipeline.Pipeline`:
:meth:`run` (the ``deliver_webhooks`` job and the sweeper's re-enqueues), :meth:`wake` (ids from
the deliveries' wake-up list, no arq job), and :meth:`lease` / :meth:`take` (an ingest batch leases
the rows it writes in its own transaction, then hands them over after the commit, without a claim).
Postgres decides what is done: anything the engine drops (stopping, closed) stays due for the sweeper.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any
from uuid import uuid4

import asyncpg
import structlog
from arq.connections import ArqRedis

from hub import queue
from hub.delivery.claims import LeaseAsk, Leased, fail_orphaned, find_due, first_attempt_wait, release
from hub.delivery.pipeline import Pipeline, Shared, enqueue, held_rows, holding, lease_seconds, prefetch
from hub.delivery.sender import Sender
from hub.delivery.targets import TargetPolicy
from hub.settings import Settings

__all__ = ["MAX_RUN_SECONDS", "SWEEP_BATCHES", "DeliveryEngine", "new_sender"]

log = structlog.get_logger("hub.deliveries")

#: A run keeps claiming while work is due, but hands over to a fresh job after this long, so one
#: busy job never approaches arq's ``job_timeout`` and cancels its own in-flight sends.
MAX_RUN_SECONDS = 30.0
#: The sweeper enqueues at most this many batches per pass; the runs themselves claim beyond them.
SWEEP_BATCHES = 8


def new_sender(settings: Settings) -> Sender:
    """The webhook HTTP client for ``settings`` (SSRF policy and timeout)."""
    policy = TargetPolicy(allow_loopback=settings.webhook_allow_loopback, allow_private=settings.webhook_allow_private)
    return Sender(timeout=settings.webhook_timeout_seconds, policy=policy)


class DeliveryEngine:
    """This process's claim → send → record machinery: its sender, endpoint gates and running pipeline."""

    def __init__(self, shared: Shared, sender: Sender) -> None:
        self.shared, self.sender = shared, sender
        self.pipeline: Pipeline | None = None
        # runs started outside arq's jobs (wake-ups, fresh leases): a graceful stop waits for them too
        self.background: set[asyncio.Task[Any]] = set()

    @classmethod
    def open(cls, settings: Settings, pool: asyncpg.Pool, redis: ArqRedis) -> DeliveryEngine:
        """An engine with its own webhook client (call inside the running loop)."""
        return cls(Shared(settings=settings, pool=pool, redis=redis), new_sender(settings))

    @property
    def stopping(self) -> asyncio.Event:
        """Set when the worker is asked to stop: runs finish what they hold and claim nothing new."""
        return self.shared.stopping

    @property
    def worker_id(self) -> str:
        """The owner name of this process's leases."""
        return self.shared.worker_id

    def held(self) -> dict[str, int]:
        """Rows this process holds per endpoint (claimed or leased, not yet recorded or released)."""
        return held_rows(self.shared)

    def _open(self) -> bool:
        return not self.sender.closed and not self.shared.stopping.is_set()

    async def close(self) -> None:
        """Stop claiming and close the webhook client (runs still going drop what they hold)."""
        self.shared.stopping.set()
        await self.sender.close()

    async def run(self, delivery_ids: Sequence[str], *, max_seconds: float = MAX_RUN_SECONDS) -> int:
        """Send due deliveries, ``delivery_ids`` first; the number of attempts this call made.

        If the pipeline is running already it is handed the ids and this returns 0 at once.
        """
        return await self._run(delivery_ids, max_seconds=max_seconds, leased=None)

    def wake(self, delivery_ids: Sequence[str]) -> None:
        """Hand freshly committed ids to the running pipeline, or start one in the background."""
        if not self._open():
            return  # the rows stay due; another worker or the sweeper takes them
        current = self.pipeline
        if current is not None and current.accepting and not self.shared.settings.webhook_retry_schedule[0]:
            current.want(delivery_ids)
            return
        self._spawn(self._run(delivery_ids, max_seconds=MAX_RUN_SECONDS, leased=None))

    def lease_ask(self) -> LeaseAsk | None:
        """What a writing transaction may lease of its fresh deliveries for this process (None: nothing).

        Nothing while stopping or closed, while the process holds all it may, or when first attempts
        are delayed (the retry schedule's first value); those rows go through a claim.
        """
        settings = self.shared.settings
        if not self._open() or settings.webhook_retry_schedule[0]:
            return None
        held = self.held()
        room = holding(settings) - sum(held.values())
        if room <= 0:
            return None
        return LeaseAsk(
            owner=self.shared.worker_id,
            limit=room,
            per_endpoint=prefetch(settings),
            held=held,
            lease_seconds=lease_seconds(settings),
        )

    def take(self, leased: Leased) -> None:
        """After the commit: send what a writing statement leased (:meth:`lease_ask`), here."""
        if not self._open():
            self._spawn(release(self.shared.pool, leased.items))  # due again at once, for another worker
            return
        current = self.pipeline
        if current is not None and current.accepting:
            current.queue(leased.items, leased.started)
            return
        self._spawn(self._run([], max_seconds=MAX_RUN_SECONDS, leased=leased))

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _run(self, delivery_ids: Sequence[str], *, max_seconds: float, leased: Leased | None) -> int:
        shared = self.shared
        if self.sender.closed:
            # Shutdown has begun: claim nothing we could not send; the rows stay due for the sweeper.
            if leased is not None:
                await release(shared.pool, leased.items)
            return 0
        first_delay = float(shared.settings.webhook_retry_schedule[0])
        wait = await first_attempt_wait(shared.pool, delivery_ids, first_delay=first_delay)
        if wait:
            # The schedule's first value delays first attempts; wake up then rather than at the next sweep.
            await enqueue(shared, list(delivery_ids), job_id=f"first:{delivery_ids[0]}", defer=wait)
        current = self.pipeline
        if current is not None and current.accepting:
            if leased is not None:
                current.queue(leased.items, leased.started)
            current.want(delivery_ids)  # one pipeline per process: it claims these next
            return 0
        pipeline = self.pipeline = Pipeline(shared, self.sender, first_delay)
        if leased is not None:
            pipeline.queue(leased.items, leased.started)
        try:
            return await pipeline.run(list(delivery_ids), max_seconds=max_seconds, claim_first=leased is None)
        finally:
            if self.pipeline is pipeline:
                self.pipeline = None

    async def sweep(self) -> int:
        """Re-enqueue due deliveries no run is working on, under fresh job ids; how many were found.

        Also fails pending deliveries whose endpoint was disabled or deleted in a race with their writing.
        """
        settings = self.shared.settings
        orphaned = await fail_orphaned(self.shared.pool)
        if orphaned:
            log.info("deliveries_orphaned", count=orphaned)
        ids = await find_due(
            self.shared.pool,
            grace=settings.sweep_after_seconds,
            limit=settings.batch_size * SWEEP_BATCHES,
            first_delay=float(settings.webhook_retry_schedule[0]),
        )
        for start in range(0, len(ids), settings.batch_size):
            chunk = ids[start : start + settings.batch_size]
            await queue.enqueue(self.shared.redis, queue.DELIVER_JOB, chunk, job_id=f"sweep:{uuid4().hex}")
        return len(ids)

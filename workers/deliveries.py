"""Delivery jobs: send due webhook deliveries, and the sweeper's backstop for lost wake-ups.

``deliver_webhooks(ctx, delivery_ids)`` is a wake-up, not a unit of work: it claims a batch of due
rows (the given ids first, then any other due ones), sends them concurrently, records each attempt
as soon as it completes, and claims again until nothing is due or it has run for
:data:`MAX_JOB_SECONDS` (then it hands over to a fresh job). Postgres decides what is done; a job
that is lost, duplicated or killed costs at most a delay until the lease expires or the sweeper
looks. Job names are wire contracts (the outbox and the sweeper call them): never rename them.

Isolation between endpoints: every request has a total timeout, attempts are recorded as they
finish, in groups (a hanging endpoint in the same batch does not hold back the others' results), and an
endpoint never has more than ``webhook_endpoint_concurrency`` deliveries in flight across all
workers (enforced by the claim, see :mod:`hub.services.delivery_claims`), so it can occupy at most
that many job slots while it hangs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg
import structlog

from hub import queue, signing
from hub.sender import Sender
from hub.services.delivery_claims import Claimed, claim, fail_orphaned, find_due, first_attempt_wait
from hub.services.delivery_policy import Outcome, envelope_body
from hub.services.delivery_records import Attempt, Recorded, record_attempts
from hub.services.delivery_targets import TargetPolicy
from hub.services.outbox import DELIVER_JOB
from hub.settings import Settings
from workers.context import WorkerContext, deps

__all__ = [
    "MAX_JOB_SECONDS",
    "close_sender",
    "deliver_webhooks",
    "lease_seconds",
    "open_sender",
    "run_deliveries",
    "sweep_deliveries",
]

log = structlog.get_logger("hub.deliveries")

#: A job keeps claiming while work is due, but hands over to a fresh job after this long, so one
#: busy job never approaches arq's ``job_timeout`` and cancels its own in-flight sends.
MAX_JOB_SECONDS = 30.0
#: The sweeper enqueues at most this many batches per pass; the jobs themselves claim beyond them.
SWEEP_BATCHES = 8
_SENDER_KEY = "hub.webhook_sender"


def lease_seconds(settings: Settings) -> float:
    """How long a claim holds a row: the setting, but always well past one request's timeout."""
    return max(float(settings.delivery_lease_seconds), settings.webhook_timeout_seconds + 15.0)


def _new_sender(settings: Settings) -> Sender:
    policy = TargetPolicy(allow_loopback=settings.webhook_allow_loopback, allow_private=settings.webhook_allow_private)
    return Sender(timeout=settings.webhook_timeout_seconds, policy=policy)


def open_sender(ctx: dict[str, Any], settings: Settings) -> None:
    """Create the worker's webhook HTTP client (call from the worker's start-up).

    It must live in the worker's base ``ctx``: arq hands each job a shallow copy of it, so a client
    created inside a job would be a new connection pool per job.
    """
    ctx[_SENDER_KEY] = _new_sender(settings)


async def close_sender(ctx: dict[str, Any]) -> None:
    """Close the worker's webhook HTTP client (call from the worker's shutdown)."""
    sender: Sender | None = ctx.get(_SENDER_KEY)
    if sender is not None:
        await sender.close()


async def deliver_webhooks(ctx: dict[str, Any], delivery_ids: list[str]) -> int:
    """Send due deliveries, ``delivery_ids`` first; return how many attempts were made."""
    hub = deps(ctx)
    sender: Sender | None = ctx.get(_SENDER_KEY)
    if sender is not None:
        return await run_deliveries(hub, sender, delivery_ids)
    own = _new_sender(hub.settings)  # a worker built without open_sender(): one client for this job
    try:
        return await run_deliveries(hub, own, delivery_ids)
    finally:
        await own.close()


async def run_deliveries(
    hub: WorkerContext, sender: Sender, delivery_ids: Sequence[str], *, max_seconds: float = MAX_JOB_SECONDS
) -> int:
    """The body of :func:`deliver_webhooks`, with the sender injected (tests pass their own)."""
    settings = hub.settings
    if sender.closed:
        # Shutdown has begun: claim nothing we could not send; the rows stay due for the sweeper.
        return 0
    first_delay = float(settings.webhook_retry_schedule[0])
    wait = await first_attempt_wait(hub.pool, delivery_ids, first_delay=first_delay)
    if wait:
        # The schedule's first value delays first attempts; wake up then rather than at the next sweep.
        await _enqueue(hub, list(delivery_ids), job_id=f"first:{delivery_ids[0]}", defer=wait)
    return await _Pipeline(hub, sender, first_delay).run(list(delivery_ids), max_seconds=max_seconds)


class _Pipeline:
    """One job's claim → send → record loop, kept full: capacity freed by a recorded group is refilled.

    Attempts are recorded in groups as they finish (whatever finished while the previous group was
    being written: group commit), so a burst costs few transactions, a hanging endpoint's attempt
    never holds back the others', and the job keeps claiming other endpoints' work meanwhile.
    """

    def __init__(self, hub: WorkerContext, sender: Sender, first_delay: float) -> None:
        self.hub, self.sender, self.first_delay = hub, sender, first_delay
        self.finished: asyncio.Queue[Attempt] = asyncio.Queue()
        self.tasks: set[asyncio.Task[None]] = set()
        self.in_flight = 0

    async def _claim(self, wanted: list[str]) -> int:
        settings = self.hub.settings
        batch = await claim(
            self.hub.pool,
            wanted=wanted,
            limit=settings.batch_size - self.in_flight,
            per_endpoint=settings.webhook_endpoint_concurrency,
            lease_seconds=lease_seconds(settings),
            first_delay=self.first_delay,
        )
        for item in batch:
            task = asyncio.create_task(_attempt(self.sender, item, self.finished))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        self.in_flight += len(batch)
        return len(batch)

    async def run(self, wanted: list[str], *, max_seconds: float) -> int:
        deadline = time.monotonic() + max_seconds
        attempts = last = 0
        try:
            while True:
                claiming = time.monotonic() < deadline and not self.sender.closed and not self.hub.stopping.is_set()
                if claiming and self.in_flight < self.hub.settings.batch_size:
                    last = await self._claim(wanted)
                    attempts += last
                    wanted = []
                if not self.in_flight:
                    break
                group = [await self.finished.get()]
                while not self.finished.empty():
                    group.append(self.finished.get_nowait())
                self.in_flight -= len(group)
                await _record(self.hub, group)
        finally:
            for task in self.tasks:
                task.cancel()  # only reached with tasks left if this job itself is cancelled
        if last and (time.monotonic() >= deadline or self.hub.stopping.is_set()):
            await _enqueue(self.hub, [], job_id=f"more:{uuid4().hex}")  # hand over, more may be due
        return attempts


async def _attempt(sender: Sender, item: Claimed, finished: asyncio.Queue[Attempt]) -> None:
    """Sign and send one delivery; always reports an :class:`Attempt` (a crash is a failed attempt)."""
    started_at = datetime.now(UTC)
    headers: dict[str, str] | None = None
    try:
        body = envelope_body(item.payload)
        # webhook-id is the event id: the same on every retry and for every endpoint, so receivers dedupe.
        headers = signing.headers(msg_id=item.event_id, timestamp=int(time.time()), body=body, secrets=item.secrets)
        outcome = await sender.send(item.url, body, headers)
    except Exception as exc:  # e.g. an unusable stored secret: recorded, retried, visible to the owner
        log.exception("delivery_attempt_crashed", delivery_id=item.id, endpoint_id=item.endpoint_id)
        outcome = Outcome(status_code=None, latency_ms=0.0, error=f"internal error: {type(exc).__name__}")
    finished.put_nowait(Attempt(item, outcome, started_at, headers))


async def _record(hub: WorkerContext, group: Sequence[Attempt]) -> None:
    """Record a group of attempts (retrying a deadlock), then wake the worker for each retry."""
    settings = hub.settings
    results: list[Recorded] | None = None
    for retry in range(3):
        try:
            results = await record_attempts(
                hub.pool,
                group,
                schedule=settings.webhook_retry_schedule,
                disable_after=settings.webhook_disable_after_seconds,
            )
            break
        except asyncpg.DeadlockDetectedError:
            log.warning("delivery_record_deadlock", count=len(group), retry=retry)
        except Exception:
            log.exception("delivery_record_failed", count=len(group))
            break
    if results is None:
        return  # the leases expire and the rows are tried again: at-least-once, never lost
    disabled: dict[str, str] = {}
    for attempt, result in zip(group, results, strict=True):
        if result.disabled_reason is not None:
            disabled[attempt.item.endpoint_id] = result.disabled_reason
        if result.lease_lost:
            log.warning("delivery_lease_lost", delivery_id=attempt.item.id, attempt=result.attempt_no)
        elif result.retry_in is not None:
            job_id = f"dlv:{attempt.item.id}:{result.attempt_no}"
            await _enqueue(hub, [attempt.item.id], job_id=job_id, defer=result.retry_in)
    for endpoint_id, reason in disabled.items():
        log.warning("endpoint_disabled", endpoint_id=endpoint_id, reason=reason)


async def _enqueue(hub: WorkerContext, ids: list[str], *, job_id: str, defer: float = 0) -> None:
    """Best effort: if Redis is unavailable the sweeper finds the due rows anyway."""
    try:
        await queue.enqueue(hub.redis, DELIVER_JOB, ids, job_id=job_id, defer=defer)
    except Exception:
        log.warning("delivery_enqueue_failed", job_id=job_id, exc_info=True)


async def sweep_deliveries(hub: WorkerContext) -> int:
    """Re-enqueue due deliveries no job is working on, under fresh job ids; return how many were found.

    Also fails pending deliveries whose endpoint was disabled or deleted in a race with their writing.
    """
    settings = hub.settings
    orphaned = await fail_orphaned(hub.pool)
    if orphaned:
        log.info("deliveries_orphaned", count=orphaned)
    ids = await find_due(
        hub.pool,
        grace=settings.sweep_after_seconds,
        limit=settings.batch_size * SWEEP_BATCHES,
        first_delay=float(settings.webhook_retry_schedule[0]),
    )
    for start in range(0, len(ids), settings.batch_size):
        chunk = ids[start : start + settings.batch_size]
        await queue.enqueue(hub.redis, DELIVER_JOB, chunk, job_id=f"sweep:{uuid4().hex}")
    return len(ids)

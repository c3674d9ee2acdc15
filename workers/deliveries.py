"""Delivery jobs: send due webhook deliveries, and the sweeper's backstop for lost wake-ups.

``deliver_webhooks(ctx, delivery_ids)`` is a wake-up, not a unit of work: it hands the ids to the
process's delivery pipeline (:mod:`workers.delivery_pipeline`), which claims due rows (the given ids
first, then any other due ones), sends them, records each attempt soon after it completes, and claims
again until nothing is due or it has run for :data:`MAX_JOB_SECONDS` (then it hands over to a fresh
job). Postgres decides what is done; a job that is lost, duplicated or killed costs at most a delay
until the lease expires or the sweeper looks. Job names are wire contracts (the outbox and the sweeper
call them): never rename them.

Fresh deliveries take shorter ways in: :func:`wake` hands ids to the running pipeline without an arq
job, and :func:`lease_here` / :func:`take_leased` let an ingest batch lease what it writes, so those
rows are sent without a claim.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

import structlog

from hub import queue
from hub.db import Conn
from hub.delivery.claims import Leased, fail_orphaned, find_due, first_attempt_wait, lease_fresh, release
from hub.delivery.outbox import DELIVER_JOB
from hub.delivery.sender import Sender
from hub.delivery.targets import TargetPolicy
from hub.settings import Settings
from workers.context import WorkerContext, deps
from workers.delivery_pipeline import (
    Pipeline,
    claim_was_full,
    enqueue,
    held_rows,
    holding,
    lease_seconds,
    prefetch,
)

__all__ = [
    "MAX_JOB_SECONDS",
    "claim_was_full",
    "close_sender",
    "deliver_webhooks",
    "lease_here",
    "lease_seconds",
    "open_sender",
    "prefetch",
    "run_deliveries",
    "wake",
    "sweep_deliveries",
    "take_leased",
]

log = structlog.get_logger("hub.deliveries")

#: A job keeps claiming while work is due, but hands over to a fresh job after this long, so one
#: busy job never approaches arq's ``job_timeout`` and cancels its own in-flight sends.
MAX_JOB_SECONDS = 30.0
#: The sweeper enqueues at most this many batches per pass; the jobs themselves claim beyond them.
SWEEP_BATCHES = 8
_SENDER_KEY = "hub.webhook_sender"


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


def wake(ctx: dict[str, Any], delivery_ids: Sequence[str]) -> None:
    """Hand freshly committed ids to this process's running pipeline, or start one in the background.

    What the worker's wake-up loop calls (no arq job: the hottest path skips its bookkeeping).
    """
    hub = deps(ctx)
    sender: Sender | None = ctx.get(_SENDER_KEY)
    if sender is None or sender.closed or hub.stopping.is_set():
        return  # the rows stay due; another worker or the sweeper takes them
    current = hub.delivery_pipeline
    if isinstance(current, Pipeline) and current.accepting and not hub.settings.webhook_retry_schedule[0]:
        current.want(delivery_ids)
        return
    _spawn(hub, run_deliveries(hub, sender, delivery_ids))


async def lease_here(ctx: dict[str, Any], conn: Conn, delivery_ids: list[str], started: float) -> Leased | None:
    """In the transaction that wrote ``delivery_ids`` (an ingest batch): lease them for this process.

    What a running worker's ingest calls before it commits; :func:`take_leased` hands the result
    to the pipeline after the commit. Nothing is leased while the process is stopping, has no open
    sender, holds all it may, or when first attempts are delayed (the schedule's first value).
    """
    hub = deps(ctx)
    settings = hub.settings
    sender: Sender | None = ctx.get(_SENDER_KEY)
    if sender is None or sender.closed or hub.stopping.is_set() or settings.webhook_retry_schedule[0]:
        return None
    held = held_rows(hub)
    items = await lease_fresh(
        conn,
        owner=hub.worker_id,
        ids=delivery_ids,
        limit=min(len(delivery_ids), holding(settings) - sum(held.values())),
        per_endpoint=prefetch(settings),
        held=held,
        lease_seconds=lease_seconds(settings),
    )
    return Leased(items, started) if items else None


def take_leased(ctx: dict[str, Any], leased: Leased) -> None:
    """After the commit: send what :func:`lease_here` leased, in the running pipeline or a new one."""
    hub = deps(ctx)
    sender: Sender | None = ctx.get(_SENDER_KEY)
    if sender is None or sender.closed or hub.stopping.is_set():
        _spawn(hub, release(hub.pool, leased.items))  # due again at once, for another worker
        return
    current = hub.delivery_pipeline
    if isinstance(current, Pipeline) and current.accepting:
        current.queue(leased.items, leased.started)
        return
    _spawn(hub, run_deliveries(hub, sender, [], leased=leased))


def _spawn(hub: WorkerContext, work: Any) -> None:
    task = asyncio.create_task(work)
    hub.background.add(task)
    task.add_done_callback(hub.background.discard)


async def run_deliveries(
    hub: WorkerContext,
    sender: Sender,
    delivery_ids: Sequence[str],
    *,
    max_seconds: float = MAX_JOB_SECONDS,
    leased: Leased | None = None,
) -> int:
    """The body of :func:`deliver_webhooks`, with the sender injected (tests pass their own).

    ``leased``: rows already leased for this process (:func:`take_leased`), sent before any claim.
    """
    settings = hub.settings
    if sender.closed:
        # Shutdown has begun: claim nothing we could not send; the rows stay due for the sweeper.
        if leased is not None:
            await release(hub.pool, leased.items)
        return 0
    first_delay = float(settings.webhook_retry_schedule[0])
    wait = await first_attempt_wait(hub.pool, delivery_ids, first_delay=first_delay)
    if wait:
        # The schedule's first value delays first attempts; wake up then rather than at the next sweep.
        await enqueue(hub, list(delivery_ids), job_id=f"first:{delivery_ids[0]}", defer=wait)
    current = hub.delivery_pipeline
    if isinstance(current, Pipeline) and current.accepting:
        if leased is not None:
            current.queue(leased.items, leased.started)
        current.want(delivery_ids)  # one pipeline per process: it claims these next
        return 0
    pipeline = hub.delivery_pipeline = Pipeline(hub, sender, first_delay)
    if leased is not None:
        pipeline.queue(leased.items, leased.started)
    try:
        return await pipeline.run(list(delivery_ids), max_seconds=max_seconds, claim_first=leased is None)
    finally:
        if hub.delivery_pipeline is pipeline:
            hub.delivery_pipeline = None


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

"""Delivery jobs: send due webhook deliveries, and the sweeper's backstop for lost wake-ups.

``deliver_webhooks(ctx, delivery_ids)`` is a wake-up, not a unit of work: it claims due rows (the
given ids first, then any other due ones), sends them, records each attempt soon after it completes,
and claims again until nothing is due or it has run for :data:`MAX_JOB_SECONDS` (then it hands over
to a fresh job). Postgres decides what is done; a job that is lost, duplicated or killed costs at
most a delay until the lease expires or the sweeper looks. Job names are wire contracts (the outbox
and the sweeper call them): never rename them.

Claims run ahead of sending: a claim leases up to :func:`prefetch` rows per endpoint for this
process, and each endpoint's rows are sent from this process's queue through a gate of
``webhook_endpoint_concurrency`` slots shared by all of its jobs. One claim (one statement) thus
feeds many requests, and an endpoint is never left idle while the hub talks to Postgres. The cap
holds across processes because only the process holding an endpoint's live leases may claim it
(:mod:`hub.services.delivery_claims`).

A claimed row is sent only while its lease has at least the request timeout plus
:data:`START_MARGIN` left, so a request always ends before the lease it runs under; rows not sent in
time, rows of an endpoint disabled, deleted, re-pointed or re-keyed meanwhile (checked at least every
:data:`STALE_CHECK_SECONDS`), and rows still queued when the job stops are released at once, never
sent late.

Isolation between endpoints: every request has a total timeout, attempts are recorded as they
finish, in groups (a hanging endpoint in the same batch does not hold back the others' results), and
a hanging endpoint occupies only its own gate and the rows queued behind it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg
import structlog

from hub import queue, signing
from hub.db import Conn
from hub.sender import Sender
from hub.services.delivery_claims import (
    Claimed,
    Leased,
    claim,
    fail_orphaned,
    find_due,
    first_attempt_wait,
    lease_fresh,
    release,
    stale_endpoints,
)
from hub.services.delivery_policy import Outcome, envelope_body
from hub.services.delivery_records import Attempt, Recorded, record_attempts
from hub.services.delivery_targets import TargetPolicy
from hub.services.outbox import DELIVER_JOB
from hub.settings import Settings
from workers.context import EndpointGate, WorkerContext, deps

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
#: A claimed row is sent only while its lease has the request timeout plus this much left.
START_MARGIN = 5.0
#: How many rows per endpoint a process claims ahead, as a multiple of the endpoint's cap.
PREFETCH_FACTOR = 16
#: A process holds at most this many batches of claimed rows (queued, sending, or being recorded), so
#: the next claim can start before the last batch's attempts are all written.
HOLD_BATCHES = 2
#: A running job claims again at least this often (more often while its queue runs low).
CLAIM_EVERY = 0.025
#: ... backing off to this while its claims find nothing.
MAX_CLAIM_EVERY = 0.5
#: Queued rows of an endpoint changed meanwhile (disabled, deleted, new URL or secret) are dropped within this.
STALE_CHECK_SECONDS = 1.0


def lease_seconds(settings: Settings) -> float:
    """How long a claim holds a row: the setting, but always well past one request's timeout."""
    return max(float(settings.delivery_lease_seconds), settings.webhook_timeout_seconds + 15.0)


def holding(settings: Settings) -> int:
    """Rows a process may hold at once, over all endpoints (claimed, not yet recorded or released)."""
    return settings.batch_size * HOLD_BATCHES


def prefetch(settings: Settings) -> int:
    """Rows of one endpoint a process may hold (claimed, not yet recorded): enough to keep its gate busy."""
    cap = settings.webhook_endpoint_concurrency
    return max(cap, min(holding(settings), cap * PREFETCH_FACTOR))


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
    if isinstance(current, _Pipeline) and current.accepting and not hub.settings.webhook_retry_schedule[0]:
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
    held = {e: g.held for e, g in hub.delivery_gates.items() if g.held}
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
    if isinstance(current, _Pipeline) and current.accepting:
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
        await _enqueue(hub, list(delivery_ids), job_id=f"first:{delivery_ids[0]}", defer=wait)
    current = hub.delivery_pipeline
    if isinstance(current, _Pipeline) and current.accepting:
        if leased is not None:
            current.queue(leased.items, leased.started)
        current.want(delivery_ids)  # one pipeline per process: it claims these next
        return 0
    pipeline = hub.delivery_pipeline = _Pipeline(hub, sender, first_delay)
    if leased is not None:
        pipeline.queue(leased.items, leased.started)
    try:
        return await pipeline.run(list(delivery_ids), max_seconds=max_seconds, claim_first=leased is None)
    finally:
        if hub.delivery_pipeline is pipeline:
            hub.delivery_pipeline = None


def claim_was_full(batch: Sequence[Claimed], *, limit: int, per_endpoint: int, held: Mapping[str, int]) -> bool:
    """Whether a claim took all it was allowed, overall or of some endpoint, so more may still be due.

    An endpoint whose whole share was already held (room 0) counts as full: that claim could not
    take any of its rows, however many are due.
    """
    if len(batch) >= limit:
        return True
    counts = Counter(item.endpoint_id for item in batch)
    return any(counts.get(e, 0) >= per_endpoint - held.get(e, 0) for e in counts.keys() | held.keys())


class _Send:
    """One claimed row in this job: queued at its endpoint's gate, then sending, then settled."""

    __slots__ = ("gate", "item", "settled", "started", "task")

    def __init__(self, item: Claimed, gate: EndpointGate) -> None:
        self.item, self.gate = item, gate
        self.started = self.settled = False
        self.task: asyncio.Task[None] | None = None


class _Pipeline:
    """The process's claim → send → record loop, run by one job at a time; later jobs hand it their ids.

    Sends run as tasks, each waiting for a slot at its endpoint's gate; attempts are recorded in
    groups as they finish (whatever finished while the previous group was being written: group
    commit), so a burst costs few transactions, and the loop keeps claiming meanwhile. One loop per
    process means one claimer and one recorder, not one per wake-up job competing for the claim lock.
    """

    def __init__(self, hub: WorkerContext, sender: Sender, first_delay: float) -> None:
        self.hub, self.sender, self.first_delay = hub, sender, first_delay
        # finished sends, or None: "wanted ids arrived, claim now"
        self.finished: asyncio.Queue[tuple[_Send, Attempt | None] | None] = asyncio.Queue()
        self.wanted: list[str] = []
        self.accepting = True
        self.queued: dict[str, _Send] = {}  # claimed by this job and not yet settled, by delivery id
        self.attempts = 0
        self.more = False  # the last claim was full: more may be due
        self.lease = lease_seconds(hub.settings)
        self.stale_checked = time.monotonic()

    def _gate(self, endpoint_id: str) -> EndpointGate:
        gates = self.hub.delivery_gates
        gate = gates.get(endpoint_id)
        if gate is None:
            gate = gates[endpoint_id] = EndpointGate(asyncio.Semaphore(self.hub.settings.webhook_endpoint_concurrency))
        return gate

    def want(self, ids: Sequence[str]) -> None:
        """Claim these (a later job's wake-up) next."""
        self.wanted.extend(ids)
        self.finished.put_nowait(None)

    async def _claim(self) -> int:
        settings = self.hub.settings
        wanted, self.wanted = self.wanted, []
        started = time.monotonic()  # before the claim's transaction: its lease starts later, never earlier
        limit = min(settings.batch_size, holding(settings) - len(self.queued))
        per_endpoint = prefetch(settings)
        held = {e: g.held for e, g in self.hub.delivery_gates.items() if g.held}
        batch = await claim(
            self.hub.pool,
            owner=self.hub.worker_id,
            wanted=wanted,
            limit=limit,
            per_endpoint=per_endpoint,
            held=held,
            lease_seconds=self.lease,
            first_delay=self.first_delay,
        )
        self.more = claim_was_full(batch, limit=limit, per_endpoint=per_endpoint, held=held)
        self.queue(batch, started)
        return len(batch)

    def queue(self, batch: Sequence[Claimed], started: float) -> None:
        """Queue rows leased for this process (by a claim begun at monotonic ``started``) at their gates."""
        start_by = started + self.lease - self.hub.settings.webhook_timeout_seconds - START_MARGIN
        for item in batch:
            if item.id in self.queued:
                continue
            send = _Send(item, self._gate(item.endpoint_id))
            send.gate.held += 1
            send.task = asyncio.create_task(self._send(send, start_by))
            self.queued[item.id] = send

    async def _send(self, send: _Send, start_by: float) -> None:
        async with send.gate.slots:
            if time.monotonic() > start_by:  # the lease could end before this request did
                self.finished.put_nowait((send, None))
                return
            send.started = True
            attempt = await _attempt(self.sender, send.item)
        self.finished.put_nowait((send, attempt))

    def _unsent(self) -> int:
        """Queued rows not yet handed to the wire: the runway before the gates run dry."""
        return sum(1 for send in self.queued.values() if not send.started)

    def _settle(self, send: _Send) -> bool:
        if send.settled:
            return False
        send.settled = True
        self.queued.pop(send.item.id, None)
        send.gate.held -= 1
        if send.gate.held <= 0 and self.hub.delivery_gates.get(send.item.endpoint_id) is send.gate:
            del self.hub.delivery_gates[send.item.endpoint_id]
        return True

    async def _drop(self, endpoints: set[str] | None = None) -> None:
        """Cancel queued (not yet sending) rows, of ``endpoints`` or all, and end their leases now."""
        dropped = [
            s
            for s in self.queued.values()
            if not s.started and not s.settled and (endpoints is None or s.item.endpoint_id in endpoints)
        ]
        for send in dropped:
            if send.task is not None:
                send.task.cancel()
        await self._release([send for send in dropped if self._settle(send)])

    async def _release(self, sends: list[_Send]) -> None:
        if not sends:
            return
        try:
            await release(self.hub.pool, [s.item for s in sends])
        except Exception:  # the leases then just expire: a delay, never a loss
            log.warning("delivery_release_failed", count=len(sends), exc_info=True)

    async def _next_group(self, within: float | None) -> list[tuple[_Send, Attempt | None] | None]:
        if self.finished.empty():
            try:
                async with asyncio.timeout(within):
                    first = await self.finished.get()
            except TimeoutError:
                return []
            group = [first]
        else:
            group = []
        while not self.finished.empty():
            group.append(self.finished.get_nowait())
        return group

    async def _record_group(self, group: list[tuple[_Send, Attempt | None]]) -> None:
        live = [(send, attempt) for send, attempt in group if not send.settled]
        if not live:
            return
        attempts = [attempt for _, attempt in live if attempt is not None]
        late = [send for send, attempt in live if attempt is None]
        self.attempts += len(attempts)
        disabled = await _record(self.hub, attempts) if attempts else set()
        for send, _ in live:
            self._settle(send)
        await self._release(late)
        if disabled:
            await self._drop(disabled)
            await _fail_orphaned(self.hub)

    async def _check_stale(self) -> None:
        now = time.monotonic()
        if now - self.stale_checked < STALE_CHECK_SECONDS:
            return
        self.stale_checked = now
        waiting = [s.item for s in self.queued.values() if not s.started and not s.settled]
        try:
            stale = await stale_endpoints(self.hub.pool, waiting)
        except Exception:
            log.warning("delivery_stale_check_failed", exc_info=True)
            return
        if stale:
            log.info("delivery_targets_changed", endpoints=sorted(stale))
            await self._drop(stale)
            await _fail_orphaned(self.hub)

    def _claiming(self, deadline: float) -> bool:
        return time.monotonic() < deadline and not self.sender.closed and not self.hub.stopping.is_set()

    async def run(self, wanted: list[str], *, max_seconds: float, claim_first: bool = True) -> int:
        """Claim, send and record until nothing is queued or due; ``claim_first=False``: rows were
        queued already (leased where they were written), so the first claim waits its turn."""
        settings = self.hub.settings
        deadline = time.monotonic() + max_seconds
        low_water = prefetch(settings) // 2
        self.wanted.extend(wanted)
        last = 0
        next_claim, every = time.monotonic() + (0 if claim_first else CLAIM_EVERY), CLAIM_EVERY
        try:
            while True:
                claiming = self.accepting = self._claiming(deadline)
                room = len(self.queued) < holding(settings)
                # refill before the gates run dry while claims come back full (counting only rows not
                # yet sent: sent ones waiting to be recorded are no runway); a claim that was not full
                # found all that was due (fresh rows come with a wake-up), so no empty claim follows
                running_low = self.more and self._unsent() <= low_water
                if claiming and room and (time.monotonic() >= next_claim or running_low or self.wanted):
                    last = await self._claim()
                    # nothing due: back off (new work comes with a wake-up job, which pokes this loop)
                    every = CLAIM_EVERY if last or self.more else min(MAX_CLAIM_EVERY, every * 2)
                    next_claim = time.monotonic() + every
                elif not claiming:
                    await self._drop()
                if not self.queued and not (claiming and (self.wanted or self.more)):
                    self.accepting = False  # no await between this and the exit: no wake-up is lost
                    break
                timeout = max(0.0, next_claim - time.monotonic()) if claiming else None
                group = await self._next_group(timeout)
                await self._record_group([entry for entry in group if entry is not None])
                await self._check_stale()
        finally:
            self.accepting = False
            for send in self.queued.values():
                if send.task is not None:
                    send.task.cancel()  # only reached with rows left if this job itself is cancelled
        if self.wanted or (last and (time.monotonic() >= deadline or self.hub.stopping.is_set())):
            # hand over to a fresh job: more may be due
            await _enqueue(self.hub, self.wanted, job_id=f"more:{uuid4().hex}")
        return self.attempts


async def _attempt(sender: Sender, item: Claimed) -> Attempt:
    """Sign and send one delivery; always an :class:`Attempt` (a crash is a failed attempt)."""
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
    return Attempt(item, outcome, started_at, headers)


async def _fail_orphaned(hub: WorkerContext) -> None:
    try:
        await fail_orphaned(hub.pool)
    except Exception:  # the sweeper does it again
        log.warning("delivery_orphans_failed", exc_info=True)


async def _record(hub: WorkerContext, group: Sequence[Attempt]) -> set[str]:
    """Record a group of attempts (retrying a deadlock), wake the worker for each retry; return endpoints disabled."""
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
        return set()  # the leases expire and the rows are tried again: at-least-once, never lost
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
    return set(disabled)


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

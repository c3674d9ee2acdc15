"""The delivery pipeline: one claim → send → record loop per worker process (run by :mod:`hub.delivery.engine`).

A claim leases up to :func:`prefetch` rows per endpoint ahead of sending; each endpoint's rows go out
through a gate of ``webhook_endpoint_concurrency`` slots shared by the whole process, and attempts
are recorded in groups as they finish. The cap holds across processes because only the holder of an
endpoint's live leases may claim it (:mod:`hub.delivery.claims`). A row is sent only while its lease
has the request timeout plus :data:`START_MARGIN` left; rows not sent in time, rows of an endpoint
changed meanwhile, and rows queued when the loop stops are released at once, never sent late.
Design notes: ``docs/webhooks.md``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
import structlog
from arq.connections import ArqRedis

from hub import queue
from hub.delivery import signing
from hub.delivery.claims import Claimed, claim, fail_orphaned, release, stale_endpoints
from hub.delivery.groups import next_group
from hub.delivery.policy import Outcome, envelope_body
from hub.delivery.records import Attempt, Recorded, record_attempts
from hub.delivery.sender import Sender
from hub.settings import Settings

__all__ = [
    "EndpointGate",
    "Pipeline",
    "Shared",
    "claim_was_full",
    "enqueue",
    "held_rows",
    "holding",
    "lease_seconds",
    "prefetch",
]

log = structlog.get_logger("hub.deliveries")

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


@dataclass(eq=False)
class EndpointGate:
    """This process's hold on one webhook endpoint: its send slots and how many claimed rows it holds."""

    slots: asyncio.Semaphore
    held: int = 0


@dataclass(eq=False)
class Shared:
    """What every pipeline of one process shares: its clients, its lease owner id and its endpoint gates."""

    settings: Settings
    pool: asyncpg.Pool
    redis: ArqRedis
    # names this process as the owner of the delivery leases it takes (see hub.delivery.claims)
    worker_id: str = field(default_factory=lambda: uuid4().hex)
    # per endpoint, shared by every run of this process: the cap on requests in flight
    gates: dict[str, EndpointGate] = field(default_factory=dict)
    # set when the worker is asked to stop: runs finish what they hold and claim nothing new
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


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


def held_rows(hub: Shared) -> dict[str, int]:
    """Rows this process holds per endpoint (claimed or leased, not yet recorded or released)."""
    return {endpoint: gate.held for endpoint, gate in hub.gates.items() if gate.held}


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


class Pipeline:
    """The process's claim → send → record loop, run by one run at a time; later wake-ups hand it their ids.

    Sends run as tasks, each waiting for a slot at its endpoint's gate; attempts are recorded in
    groups as they finish (whatever finished while the previous group was being written: group
    commit), so a burst costs few transactions, and the loop keeps claiming meanwhile. One loop per
    process means one claimer and one recorder, not one per wake-up job competing for the claim lock.
    """

    def __init__(self, hub: Shared, sender: Sender, first_delay: float) -> None:
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
        gates = self.hub.gates
        gate = gates.get(endpoint_id)
        if gate is None:
            gate = gates[endpoint_id] = EndpointGate(asyncio.Semaphore(self.hub.settings.webhook_endpoint_concurrency))
        return gate

    def want(self, ids: Sequence[str]) -> None:
        """Claim these (a later wake-up) next."""
        self.wanted.extend(ids)
        self.finished.put_nowait(None)

    async def _claim(self) -> int:
        settings = self.hub.settings
        wanted, self.wanted = self.wanted, []
        started = time.monotonic()  # before the claim's transaction: its lease starts later, never earlier
        limit = min(settings.batch_size, holding(settings) - len(self.queued))
        per_endpoint = prefetch(settings)
        held = held_rows(self.hub)
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
        if send.gate.held <= 0 and self.hub.gates.get(send.item.endpoint_id) is send.gate:
            del self.hub.gates[send.item.endpoint_id]
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
        """Finished sends to record (a short wait for more at low rates: not while a backlog is being
        claimed, the last claim having been full, nor when stopping)."""
        return await next_group(
            self.finished, within, may_linger=lambda: not self.more and not self.hub.stopping.is_set()
        )

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
            # Rows left here (this job cancelled, or a claim that failed, say while Postgres was away) are
            # given up: their sends cancelled and their hold on the endpoint's gate returned, or the
            # process's later claims would count them forever and take nothing more of that endpoint.
            # Their leases run out and they are claimed again.
            for send in list(self.queued.values()):
                if send.task is not None:
                    send.task.cancel()
                self._settle(send)
        if self.wanted or (last and (time.monotonic() >= deadline or self.hub.stopping.is_set())):
            # hand over to a fresh job: more may be due
            await enqueue(self.hub, self.wanted, job_id=f"more:{uuid4().hex}")
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


async def _fail_orphaned(hub: Shared) -> None:
    try:
        await fail_orphaned(hub.pool)
    except Exception:  # the sweeper does it again
        log.warning("delivery_orphans_failed", exc_info=True)


async def _record(hub: Shared, group: Sequence[Attempt]) -> set[str]:
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
            await enqueue(hub, [attempt.item.id], job_id=job_id, defer=result.retry_in)
    for endpoint_id, reason in disabled.items():
        log.warning("endpoint_disabled", endpoint_id=endpoint_id, reason=reason)
    return set(disabled)


async def enqueue(hub: Shared, ids: list[str], *, job_id: str, defer: float = 0) -> None:
    """Best effort: if Redis is unavailable the sweeper finds the due rows anyway."""
    await queue.wake_job(hub.redis, queue.DELIVER_JOB, ids, job_id=job_id, defer=defer)

"""Ingestion: turn stored raw inbound events into upserted orders and outbox events.

``ingest_events`` is a wake-up, not one job per event: it claims a batch of ``received`` events
(the ids it was given first, then any others due) with ``FOR UPDATE SKIP LOCKED``, so several
workers share the load without ever processing the same event twice at once, and processes the
whole batch in one transaction; while a backlog lasts (a batch came back full) a second batch runs
beside it in the same process. If the worker dies mid-batch the transaction rolls back and the
rows are ``received`` again; the sweeper re-enqueues them. An event a connector cannot read is
marked ``failed`` with the reason (nothing is dropped); a topic the hub does not handle is marked
``ignored``.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import structlog

from connectors import get_connector
from connectors.base import ConnectorError, NormalizedOrder, RawRequest
from hub import queue
from hub.db import Conn, dumps, generic_plan_transaction
from hub.delivery.claims import Claimed, LeaseAsk, Leased
from hub.delivery.outbox import Writes
from hub.ops.metrics import BAD_PAYLOAD, record_reject
from hub.orders.rules import refusal
from hub.orders.upsert import DEFAULT_CLOCK_SKEW, delete_orders, is_deletion, upsert_orders
from workers.context import WorkerContext, deps

log = structlog.get_logger("hub.ingest")

# The claim also reads the organizations' enabled endpoints, which the outbox needs (one round trip
# fewer per batch); like any read in the batch's transaction, it sees endpoints committed before it.
_CLAIM = """
WITH claimed AS (
    SELECT e.id, e.organization_id, e.source, e.headers, e.query, e.body, e.received_at, o.default_currency
    FROM inbound_events e JOIN organizations o ON o.id = e.organization_id
    WHERE e.status = 'received' AND {where}
    ORDER BY e.received_at, e.id
    LIMIT $1
    FOR UPDATE OF e SKIP LOCKED
),
endpoints AS (
    SELECT w.organization_id,
           jsonb_agg(jsonb_build_object('id', w.id, 'organization_id', w.organization_id,
                                        'event_types', w.event_types, 'source', w.source)) AS endpoints
    FROM webhook_endpoints w
    WHERE w.organization_id IN (SELECT organization_id FROM claimed) AND w.enabled AND w.deleted_at IS NULL
    GROUP BY w.organization_id
)
SELECT c.*, coalesce(n.endpoints, '[]'::jsonb) AS endpoints FROM claimed c LEFT JOIN endpoints n USING (organization_id)
"""


def _db_text(text: str | None) -> str | None:
    """Text Postgres can store: no NUL, no lone surrogates (payload-derived topics and errors may have them)."""
    if text is None:
        return None
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")[:2000]


@dataclass
class _Outcome:
    status: str
    topic: str | None = None
    error: str | None = None
    orders: list[NormalizedOrder] = field(default_factory=list)
    deletions: list[bool] = field(default_factory=list)
    order_ids: list[str] = field(default_factory=list)
    notes: list[str | None] = field(default_factory=list)  # per order: why it changed nothing


def _parse(row: asyncpg.Record) -> _Outcome:
    """Run the event's connector over the stored raw request (pure; never raises)."""
    connector = get_connector(row["source"])
    if connector is None:
        return _Outcome("failed", error=f"no connector for source {row['source']!r}")
    request = RawRequest(
        body=bytes(row["body"]), headers=row["headers"], query=row["query"], received_at=row["received_at"]
    )
    try:
        events = connector.parse(request)
    except ConnectorError as exc:
        return _Outcome("failed", error=str(exc)[:2000] or type(exc).__name__)
    except Exception as exc:  # a connector bug must not lose the event: keep it failed with the reason
        log.exception("connector_crashed", event_id=row["id"], source=row["source"])
        return _Outcome("failed", error=f"connector error: {type(exc).__name__}: {exc}"[:2000])
    topics = ",".join(e.topic for e in events) or None
    handled = [e for e in events if e.order is not None]
    if not handled:
        reasons = "; ".join(e.ignored_reason or "ignored" for e in events) or "no events in request"
        return _Outcome("ignored", topic=topics, error=reasons[:2000])
    # The API's safety rules hold for ingest too: beyond them the whole event fails, nothing is stored.
    refused = next((why for e in handled if e.order is not None and (why := refusal(e.order))), None)
    if refused is not None:
        return _Outcome("failed", topic=topics, error=refused)
    return _Outcome(
        "processed",
        topic=topics,
        orders=[e.order for e in handled if e.order is not None],
        deletions=[is_deletion(e.topic) for e in handled],
    )


async def _claim(conn: Conn, ids: list[str], limit: int) -> list[asyncpg.Record]:
    rows = list(await conn.fetch(_CLAIM.format(where="e.id = ANY($2::text[])"), limit, ids)) if ids else []
    if len(rows) < limit:
        rows += await conn.fetch(_CLAIM.format(where="TRUE"), limit - len(rows))
    seen: set[str] = set()
    unique = [r for r in rows if not (r["id"] in seen or seen.add(r["id"]))]  # type: ignore[func-returns-value]
    return sorted(unique, key=lambda r: (r["received_at"], r["id"]))


@dataclass
class _Batch:
    """What a processed batch leaves to do after its commit."""

    delivery_ids: list[str] = field(default_factory=list)
    bad_payload_sources: list[str] = field(default_factory=list)
    leased: list[Claimed] = field(default_factory=list)  # leased for this process's own pipeline


# The events' outcomes, one row per event (``order_ids`` as JSON text: see ``hub.orders.rows.unnest_rows``).
_OUTCOMES = (
    "UPDATE inbound_events e SET status = v.status, topic = v.topic, error = v.error, order_ids = v.order_ids::jsonb, "
    "attempts = e.attempts + 1, processed_at = now() "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS v(id, status, topic, error, order_ids) "
    "WHERE e.id = v.id"
)


async def _process(
    conn: Conn,
    rows: list[asyncpg.Record],
    skew: timedelta = DEFAULT_CLOCK_SKEW,
    lease: LeaseAsk | None = None,
) -> _Batch:
    """Process claimed rows in the current transaction (source clocks capped at receipt + ``skew``).

    Everything the batch writes (orders, events, deliveries, the events' outcomes) goes in one
    statement at the end, which also leases the fresh deliveries for ``lease``.
    """
    writes = Writes()
    outcomes = {row["id"]: _parse(row) for row in rows}
    received = {row["id"]: row["received_at"] for row in rows}
    by_org: dict[str, list[tuple[str, NormalizedOrder, bool]]] = defaultdict(list)
    currency: dict[str, str] = {}
    endpoints: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        currency[row["organization_id"]] = row["default_currency"]
        endpoints[row["organization_id"]] = row["endpoints"]
        outcome = outcomes[row["id"]]
        for order, deletion in zip(outcome.orders, outcome.deletions, strict=True):
            by_org[row["organization_id"]].append((row["id"], order, deletion))
    delivery_ids: list[str] = []
    for org_id, items in by_org.items():
        result = await upsert_orders(
            conn,
            organization_id=org_id,
            orders=[o for _, o, _ in items],
            default_currency=currency[org_id],
            endpoints=endpoints[org_id],
            received_at=[received[event_id] for event_id, _, _ in items],
            clock_skew=skew,
            writes=writes,
        )
        delivery_ids += result.delivery_ids
        deleted: list[str] = []
        for (event_id, _, deletion), order_id, note in zip(items, result.order_ids, result.notes, strict=True):
            outcomes[event_id].order_ids.append(order_id)
            outcomes[event_id].notes.append(note)
            if deletion:
                deleted.append(order_id)
        if deleted:
            delivery_ids += await delete_orders(
                conn, organization_id=org_id, order_ids=deleted, endpoints=endpoints[org_id], writes=writes
            )
    for outcome in outcomes.values():  # "processed" that changed nothing says why (stale, with both clocks)
        if outcome.status == "processed" and outcome.notes and all(outcome.notes):
            outcome.error = "; ".join(dict.fromkeys(n for n in outcome.notes if n))
    done = list(outcomes.items())
    writes.add(
        _OUTCOMES,
        [i for i, _ in done],
        [o.status for _, o in done],
        [_db_text(o.topic) for _, o in done],
        [_db_text(o.error) for _, o in done],
        [dumps(sorted(set(o.order_ids))) for _, o in done],
    )
    leased = await writes.run(conn, lease=lease)
    bad = [row["source"] for row in rows if outcomes[row["id"]].status == "failed"]
    return _Batch(delivery_ids=delivery_ids, bad_payload_sources=bad, leased=leased)


def _skew(hub: WorkerContext) -> timedelta:
    return timedelta(seconds=hub.settings.source_clock_skew_seconds)


async def _process_one_by_one(hub: WorkerContext, ids: list[str]) -> _Batch:
    """Fallback after a batch failed unexpectedly: isolate the event that breaks it."""
    done = _Batch()
    for event_id in ids:
        try:
            async with hub.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(_CLAIM.format(where="e.id = ANY($2::text[])"), 1, [event_id])
                if rows:
                    one = await _process(conn, list(rows), _skew(hub))
                    done.delivery_ids += one.delivery_ids
                    done.bad_payload_sources += one.bad_payload_sources
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
            raise
        except Exception as exc:
            log.exception("ingest_event_failed", event_id=event_id)
            await hub.pool.execute(
                "UPDATE inbound_events SET status = 'failed', error = $2, attempts = attempts + 1, "
                "processed_at = now() WHERE id = $1 AND status = 'received'",
                event_id,
                _db_text(f"internal error: {type(exc).__name__}: {exc}"),
            )
    return done


async def ingest_events(ctx: dict[str, Any], event_ids: list[str]) -> int:
    """Claim and process batches of received events (these ids first) until none is left."""
    hub = deps(ctx)
    async with hub.ingest_slots:
        return await _drain(hub, list(event_ids))


def _help_drain(hub: WorkerContext) -> None:
    """A full batch means a backlog: drain it with a second batch in flight, so parsing one overlaps
    the other's database round trips (as two workers would; batches never share an event)."""
    if hub.ingest_helper is not None or hub.stopping.is_set():
        return

    async def helper() -> int:
        try:
            async with hub.ingest_slots:
                return await _drain(hub, [])
        except Exception as exc:  # database away: the main drain meets it too; the sweeper is the backstop
            log.warning("ingest_helper_failed", error=repr(exc))
            return 0
        finally:
            hub.ingest_helper = None

    task = hub.ingest_helper = asyncio.create_task(helper())
    hub.background.add(task)
    task.add_done_callback(hub.background.discard)


async def _drain(hub: WorkerContext, ids: list[str]) -> int:
    limit = hub.settings.batch_size
    done = 0
    while True:
        claimed: list[str] = []
        started = time.monotonic()  # before the transaction: the leases it writes start later, never earlier
        try:
            async with hub.pool.acquire() as conn, generic_plan_transaction(conn):
                rows = await _claim(conn, ids, limit)
                claimed = [r["id"] for r in rows]
                batch = await _process(conn, rows, _skew(hub), hub.deliveries.lease_ask()) if rows else _Batch()
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
            raise  # database away: arq retries the job; the sweeper is the backstop
        except Exception:
            log.exception("ingest_batch_failed", size=len(claimed))
            batch = await _process_one_by_one(hub, claimed)
        if not claimed:
            return done
        done += len(claimed)
        if len(claimed) >= limit:
            _help_drain(hub)
        await _after_commit(hub, batch, started)
        ids = []
        if len(claimed) < limit or hub.stopping.is_set():
            return done


async def _after_commit(hub: WorkerContext, batch: _Batch, started: float) -> None:
    """Hand the batch's deliveries to this process's engine and count unreadable payloads per source.

    Both best effort (already committed). The worker sends what it wrote itself, with no Redis round
    trip on the way to the subscriber: the rows the batch leased go straight to the pipeline, any
    others through a claim. Other workers still find those rows if this one dies (leases expire,
    the sweeper looks).
    """
    try:
        fresh = batch.delivery_ids
        if batch.leased:
            hub.deliveries.take(Leased(batch.leased, started))
            leased = {item.id for item in batch.leased}
            fresh = [i for i in fresh if i not in leased]
        if fresh:
            hub.deliveries.wake(fresh)
        for source in batch.bad_payload_sources:
            await record_reject(hub.redis, source, BAD_PAYLOAD)
    except Exception as exc:  # the sweeper finds the deliveries; a lost count is only a metric
        log.warning("after_commit_failed", deliveries=len(batch.delivery_ids), error=repr(exc))


async def sweep_inbound(hub: WorkerContext) -> int:
    """Re-enqueue events still ``received`` after ``sweep_after_seconds`` (lost job, dead worker)."""
    rows = await hub.pool.fetch(
        "SELECT id FROM inbound_events WHERE status = 'received' "
        "AND received_at < now() - make_interval(secs => $1) ORDER BY received_at LIMIT $2",
        hub.settings.sweep_after_seconds,
        hub.settings.batch_size * 5,
    )
    ids = [r["id"] for r in rows]
    for start in range(0, len(ids), hub.settings.batch_size):
        chunk = ids[start : start + hub.settings.batch_size]
        await queue.enqueue(hub.redis, queue.INGEST_JOB, chunk, job_id=f"sweep:{chunk[0]}:{time.time_ns()}")
    return len(ids)

"""Raw inbound events as the ops team sees them: list, inspect (payload and error), and retry.

A retry (:func:`retry_inbound_event`, the REST endpoint's and the ops button's) puts the event back
to ``received`` and wakes the ingest worker with its id; the worker, not this module, decides what
happens next, and the sweeper re-enqueues it should that wake-up be lost. Credentials a platform
sends with a request (Salla's ``Authorization`` token, Zid's ``?token=``) are part of what was
stored, but never part of what is shown.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Literal

import asyncpg
import structlog
from arq.connections import ArqRedis
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub import queue
from hub.errors import NotFound
from hub.models import InboundEvent
from hub.queue import Retried

log = structlog.get_logger("hub.inbound")

EventStatus = Literal["received", "processed", "failed", "ignored"]
REDACTED = "[redacted]"
# Header and query names whose values are secrets rather than facts about the delivery.
_SECRET_HEADERS = frozenset({"authorization", "cookie", "x-api-key", "proxy-authorization"})
_SECRET_QUERY = frozenset({"token", "secret", "key", "api_key"})


class InboundEventFilters(BaseModel):
    """Query filters of ``GET /api/v1/inbound-events`` (besides ``page``/``per_page``)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    source: str | None = None
    status: EventStatus | None = None
    connection_id: str | None = None


class InboundEventSummary(BaseModel):
    """A list item: everything but the payload and the request's headers."""

    id: str
    connection_id: str
    source: str
    topic: str | None
    status: str
    error: str | None
    attempts: int
    order_ids: list[str]
    size: int
    received_at: datetime
    processed_at: datetime | None


class InboundEventOut(InboundEventSummary):
    """One event in full: the raw payload as text and the request's headers and query."""

    delivery_key: str
    headers: dict[str, Any]
    query: dict[str, Any]
    payload: str


def _redact(values: dict[str, Any], secret_names: frozenset[str]) -> dict[str, Any]:
    return {k: REDACTED if k.lower() in secret_names else v for k, v in values.items()}


def event_summary(event: InboundEvent) -> InboundEventSummary:
    """The list view of an event row."""
    return InboundEventSummary(
        id=event.id,
        connection_id=event.connection_id,
        source=event.source,
        topic=event.topic,
        status=event.status,
        error=event.error,
        attempts=event.attempts,
        order_ids=list(event.order_ids or []),
        size=len(event.body),
        received_at=event.received_at,
        processed_at=event.processed_at,
    )


def event_out(event: InboundEvent) -> InboundEventOut:
    """The full view: the body decoded as UTF-8 (undecodable bytes become U+FFFD), secrets redacted."""
    return InboundEventOut(
        **event_summary(event).model_dump(),
        delivery_key=event.delivery_key,
        headers=_redact(event.headers or {}, _SECRET_HEADERS),
        query=_redact(event.query or {}, _SECRET_QUERY),
        payload=bytes(event.body).decode("utf-8", "replace"),
    )


async def list_events(
    session: AsyncSession, *, organization_id: str, filters: InboundEventFilters, offset: int, limit: int
) -> tuple[list[InboundEvent], int]:
    """A page of the organization's events, newest first, and the total matching the filters."""
    where = [col(InboundEvent.organization_id) == organization_id]
    if filters.source:
        where.append(col(InboundEvent.source) == filters.source)
    if filters.status:
        where.append(col(InboundEvent.status) == filters.status)
    if filters.connection_id:
        where.append(col(InboundEvent.connection_id) == filters.connection_id)
    total = (await session.execute(select(func.count()).select_from(InboundEvent).where(*where))).scalar_one()
    rows = await session.execute(
        select(InboundEvent)
        .where(*where)
        .order_by(col(InboundEvent.received_at).desc(), col(InboundEvent.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows.scalars()), total


async def get_event(session: AsyncSession, *, organization_id: str, event_id: str) -> InboundEvent:
    """The organization's event, or 404 (also for another organization's id)."""
    event = await session.get(InboundEvent, event_id)
    if event is None or event.organization_id != organization_id:
        raise NotFound("Inbound event not found", details={"id": event_id})
    return event


async def retry_inbound_event(
    pool: asyncpg.Pool,
    redis: ArqRedis | None,
    *,
    event_id: str,
    organization_id: str | None = None,
    origin: str = "ops-retry",
) -> Retried:
    """Put an inbound event back to ``received`` (error and processed time cleared) and wake ingestion.

    The one retry of an inbound event, behind the REST endpoint and the ops button. Any status may
    be retried: re-running a processed event is harmless (the order upsert ignores what is not
    newer), and it is how an event is replayed after a connector fix. ``organization_id`` scopes the
    lookup (another organization's id is a 404); ``origin`` names the caller in the job id. The
    wake-up is enqueued only after the commit, so the worker never sees the old status.
    """
    scoped = "" if organization_id is None else " AND organization_id = $2"
    async with pool.acquire() as conn, conn.transaction():
        previous = await conn.fetchval(
            f"SELECT status FROM inbound_events WHERE id = $1{scoped} FOR UPDATE",
            event_id,
            *([] if organization_id is None else [organization_id]),
        )
        if previous is None:
            raise NotFound("Inbound event not found", details={"id": event_id})
        reset = await conn.fetchrow(
            "UPDATE inbound_events SET status = 'received', error = NULL, processed_at = NULL "
            "WHERE id = $1 RETURNING *",
            event_id,
        )
    # a fresh job id per retry: arq drops a job whose id it still holds
    job_id = f"{origin}:{event_id}:{int(time.time() * 1000)}"
    enqueued = await queue.wake_job(redis, queue.INGEST_JOB, [event_id], job_id=job_id) if redis else False
    log.info("inbound_event_retried", id=event_id, previous=previous, enqueued=enqueued)
    return Retried(id=event_id, previous_status=previous, enqueued=enqueued, row=dict(reset or {}))

"""The delivery ledger: list, inspect with attempts, retry one (REST and ops), recover many.

A retry keeps the delivery (and so its ``webhook-id``, the event id): receivers dedupe on it. A
retried delivery whose schedule is already used up gets exactly one more attempt; one that failed
early (its endpoint was disabled) resumes its schedule. :func:`retry_delivery` wakes a worker
itself; after :func:`recover_deliveries` the caller does (:func:`hub.queue.wake_deliveries`, after
the commit). The sweeper covers a lost wake-up.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Literal

import asyncpg
import structlog
from arq.connections import ArqRedis
from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub import queue
from hub.delivery.endpoints import get_webhook
from hub.errors import Conflict, NotFound
from hub.models import Delivery, DeliveryAttempt, OrderEvent, WebhookEndpoint
from hub.queue import Retried

__all__ = [
    "STATUSES",
    "AttemptOut",
    "DeliveryDetail",
    "DeliveryFilters",
    "DeliveryOut",
    "RecoverRequest",
    "RecoverResult",
    "Retried",
    "delivery_out",
    "get_delivery",
    "list_deliveries",
    "recover_deliveries",
    "retry_delivery",
]

log = structlog.get_logger("hub.deliveries")

STATUSES = ("pending", "succeeded", "failed")
DeliveryStatus = Literal["pending", "succeeded", "failed"]


class DeliveryFilters(BaseModel):
    """Query filters of ``GET /webhooks/{id}/deliveries`` (besides ``page``/``per_page``)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    status: DeliveryStatus | None = None
    event_type: str | None = None


class DeliveryOut(BaseModel):
    """One event to one endpoint; ``event_id`` is the ``webhook-id`` header of every attempt."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created: datetime
    updated: datetime
    completed_at: datetime | None


class AttemptOut(BaseModel):
    """One HTTP try."""

    attempt_no: int
    started_at: datetime
    succeeded: bool
    status_code: int | None
    latency_ms: float | None
    response_excerpt: str | None
    error: str | None


class DeliveryDetail(DeliveryOut):
    """A delivery with the body it sends and every attempt, oldest first."""

    payload: dict[str, Any]
    attempts: list[AttemptOut]


class RecoverRequest(BaseModel):
    """Body of ``POST /webhooks/{id}/recover``: re-send failed deliveries created in ``[since, until)``."""

    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime
    until: AwareDatetime | None = None


class RecoverResult(BaseModel):
    """How many failed deliveries were queued again."""

    count: int


def delivery_out(delivery: Delivery) -> DeliveryOut:
    """The public view of a delivery row."""
    return DeliveryOut.model_validate(delivery, from_attributes=True)


async def list_deliveries(
    session: AsyncSession,
    *,
    organization_id: str,
    webhook_id: str,
    offset: int,
    limit: int,
    filters: DeliveryFilters | None = None,
) -> tuple[list[Delivery], int]:
    """A page of the endpoint's deliveries (newest first) and the total."""
    await get_webhook(session, organization_id=organization_id, webhook_id=webhook_id)
    where: list[Any] = [col(Delivery.endpoint_id) == webhook_id, col(Delivery.organization_id) == organization_id]
    if filters is not None and filters.status is not None:
        where.append(col(Delivery.status) == filters.status)
    if filters is not None and filters.event_type:
        where.append(col(Delivery.event_type) == filters.event_type)
    total = (await session.execute(select(func.count()).select_from(Delivery).where(*where))).scalar_one()
    rows = await session.execute(
        select(Delivery)
        .where(*where)
        .order_by(col(Delivery.created).desc(), col(Delivery.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows.scalars()), total


async def _owned(session: AsyncSession, organization_id: str, delivery_id: str) -> Delivery:
    delivery = await session.get(Delivery, delivery_id)
    if delivery is None or delivery.organization_id != organization_id:
        raise NotFound("Delivery not found", details={"id": delivery_id})
    return delivery


async def get_delivery(session: AsyncSession, *, organization_id: str, delivery_id: str) -> DeliveryDetail:
    """The delivery with its payload and attempts; 404 for another organization's id."""
    delivery = await _owned(session, organization_id, delivery_id)
    event = await session.get(OrderEvent, delivery.event_id)
    attempts = await session.execute(
        select(DeliveryAttempt)
        .where(col(DeliveryAttempt.delivery_id) == delivery_id)
        .order_by(col(DeliveryAttempt.attempt_no), col(DeliveryAttempt.id))
    )
    return DeliveryDetail.model_validate(
        {
            **delivery_out(delivery).model_dump(),
            "payload": event.payload if event is not None else {},
            "attempts": [AttemptOut.model_validate(a, from_attributes=True) for a in attempts.scalars()],
        }
    )


async def _require_enabled(session: AsyncSession, endpoint_id: str) -> None:
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.deleted_at is not None:
        raise Conflict("The webhook of this delivery was deleted", details={"endpoint_id": endpoint_id})
    if not endpoint.enabled:
        raise Conflict(
            "Webhook is disabled; enable it before retrying",
            details={"endpoint_id": endpoint_id, "disabled_reason": endpoint.disabled_reason},
        )


async def retry_delivery(
    pool: asyncpg.Pool,
    redis: ArqRedis | None,
    *,
    delivery_id: str,
    organization_id: str | None = None,
    origin: str = "ops-retry",
) -> Retried:
    """Make a delivery due now (``pending``, lease cleared) and wake the delivery worker after the commit.

    The one retry of a delivery, behind the REST endpoint and the ops button. ``organization_id``
    scopes the lookup (REST API: another organization's id is a 404); ``None`` is the ops view's
    cluster-wide reach; ``origin`` names the caller in the wake-up's job id. 409 if it succeeded, is
    being sent right now (a live lease), or its endpoint is deleted or disabled. The attempt count is
    kept: the next failure is one more attempt.
    """
    scoped = "" if organization_id is None else " AND d.organization_id = $2"
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT d.status, d.endpoint_id, d.leased_until > now() AS leased, e.enabled, "
            "e.deleted_at IS NOT NULL AS deleted, e.disabled_reason "
            "FROM deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id "
            f"WHERE d.id = $1{scoped} FOR UPDATE OF d",
            delivery_id,
            *([] if organization_id is None else [organization_id]),
        )
        if row is None:
            raise NotFound("Delivery not found", details={"id": delivery_id})
        if row["status"] == "succeeded":
            raise Conflict("Delivery already succeeded", details={"status": "succeeded"})
        if row["status"] == "pending" and row["leased"]:
            raise Conflict("Delivery is being sent right now", details={"status": "in_flight"})
        if row["deleted"]:
            raise Conflict("The webhook of this delivery was deleted", details={"endpoint_id": row["endpoint_id"]})
        if not row["enabled"]:
            reason = row["disabled_reason"] or "disabled"
            raise Conflict("Endpoint is disabled: re-enable it first", details={"endpoint": reason})
        reset = await conn.fetchrow(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = now(), leased_until = NULL, "
            "completed_at = NULL, updated = now() WHERE id = $1 RETURNING *",
            delivery_id,
        )
    # a fresh job id per retry: arq drops a job whose id it still holds
    job_id = f"{origin}:{delivery_id}:{int(time.time() * 1000)}"
    enqueued = await queue.wake_job(redis, queue.DELIVER_JOB, [delivery_id], job_id=job_id) if redis else False
    log.info("delivery_retried", id=delivery_id, previous=row["status"], enqueued=enqueued)
    return Retried(id=delivery_id, previous_status=row["status"], enqueued=enqueued, row=dict(reset or {}))


async def recover_deliveries(
    session: AsyncSession, *, organization_id: str, webhook_id: str, since: datetime, until: datetime | None = None
) -> list[str]:
    """Make every failed delivery of the endpoint created in ``[since, until)`` due now; return their ids."""
    endpoint = await get_webhook(session, organization_id=organization_id, webhook_id=webhook_id)
    await _require_enabled(session, endpoint.id)
    where: list[Any] = [
        col(Delivery.endpoint_id) == endpoint.id,
        col(Delivery.organization_id) == organization_id,
        col(Delivery.status) == "failed",
        col(Delivery.created) >= since,
    ]
    if until is not None:
        where.append(col(Delivery.created) < until)
    result = await session.execute(
        update(Delivery)
        .where(*where)
        .values(status="pending", next_attempt_at=func.now(), completed_at=None, updated=func.now())
        .returning(col(Delivery.id))
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars())

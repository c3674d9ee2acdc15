"""Merchant webhook endpoints and the delivery ledger: one delivery per endpoint, one attempt per try."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Identity, Index, text
from sqlmodel import Field, SQLModel

from hub.models._columns import jsonb_column, ts_column, utcnow


class WebhookEndpoint(SQLModel, table=True):
    """A subscriber URL with its event types, optional source filter and signing secrets."""

    __tablename__ = "webhook_endpoints"

    id: str = Field(primary_key=True)
    organization_id: str = Field(foreign_key="organizations.id", index=True)
    url: str
    event_types: list[str] = Field(sa_column=jsonb_column(nullable=False))
    source: str | None = None
    description: str | None = None
    enabled: bool = True
    secret: str
    previous_secret: str | None = None
    previous_secret_expires_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    disabled_reason: str | None = None
    disabled_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    failing_since: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    created: datetime = Field(default_factory=utcnow, sa_column=ts_column())
    updated: datetime = Field(default_factory=utcnow, sa_column=ts_column())
    deleted_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))


class Delivery(SQLModel, table=True):
    """One event to one endpoint. ``webhook-id`` is the event id, stable across retries."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        Index("ix_deliveries_endpoint_created", "endpoint_id", "created"),
        Index("ix_deliveries_event", "event_id"),
        # Per-endpoint claims and the cross-process in-flight count (migration 0003).
        Index(
            "ix_deliveries_endpoint_pending",
            "endpoint_id",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        # Live leases of an endpoint held by another process (migrations 0003, 0007).
        Index("ix_deliveries_leased", "endpoint_id", "leased_until", postgresql_where=text("leased_until IS NOT NULL")),
    )

    id: str = Field(primary_key=True)
    organization_id: str = Field(foreign_key="organizations.id")
    endpoint_id: str = Field(foreign_key="webhook_endpoints.id")
    event_id: str = Field(foreign_key="order_events.id")
    event_type: str
    status: str = "pending"  # pending | succeeded | failed
    attempt_count: int = 0
    next_attempt_at: datetime | None = Field(default_factory=utcnow, sa_column=ts_column(nullable=True))
    leased_until: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    lease_owner: str | None = None  # the worker process holding the lease (migration 0005)
    last_status_code: int | None = None
    last_error: str | None = None
    created: datetime = Field(default_factory=utcnow, sa_column=ts_column())
    updated: datetime = Field(default_factory=utcnow, sa_column=ts_column())
    completed_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))


class DeliveryAttempt(SQLModel, table=True):
    """One HTTP try of a delivery: status code, latency, response excerpt or error."""

    __tablename__ = "delivery_attempts"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    delivery_id: str = Field(foreign_key="deliveries.id", index=True)
    attempt_no: int
    started_at: datetime = Field(default_factory=utcnow, sa_column=ts_column())
    status_code: int | None = None
    latency_ms: float | None = None
    response_excerpt: str | None = None
    error: str | None = None
    succeeded: bool = False
    request_headers: dict[str, Any] | None = Field(default=None, sa_column=jsonb_column())

"""Connections to sources and the raw inbound events they push (kept before anything else)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from hub.models._columns import jsonb_column, ts_column, utcnow


class Connection(SQLModel, table=True):
    """An organization's link to one source, with the secret the platform signs with."""

    __tablename__ = "connections"

    id: str = Field(primary_key=True)
    organization_id: str = Field(foreign_key="organizations.id", index=True)
    source: str
    name: str
    secret: str
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=jsonb_column(nullable=False))
    last_synced_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    created: datetime = Field(default_factory=utcnow, sa_column=ts_column())
    deleted_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    # platform pull sync (migration 0009): credentials present, state, subscriptions, next reconcile
    pull: bool = False
    sync: dict[str, Any] = Field(default_factory=dict, sa_column=jsonb_column(nullable=False))
    subscriptions: list[dict[str, Any]] = Field(default_factory=list, sa_column=jsonb_column(nullable=False))
    sync_next_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))


class InboundEvent(SQLModel, table=True):
    """A raw request as received: stored once per platform delivery, then processed by a worker."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("connection_id", "delivery_key", name="uq_inbound_delivery"),
        Index("ix_inbound_pending", "received_at", postgresql_where=text("status = 'received'")),
        Index("ix_inbound_org_received", "organization_id", "received_at"),
    )

    id: str = Field(primary_key=True)
    organization_id: str = Field(foreign_key="organizations.id")
    connection_id: str = Field(foreign_key="connections.id")
    source: str
    delivery_key: str
    headers: dict[str, Any] = Field(default_factory=dict, sa_column=jsonb_column(nullable=False))
    query: dict[str, Any] = Field(default_factory=dict, sa_column=jsonb_column(nullable=False))
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = "received"  # received | processed | failed | ignored
    topic: str | None = None
    error: str | None = None
    attempts: int = 0
    order_ids: list[str] = Field(default_factory=list, sa_column=jsonb_column(nullable=False))
    received_at: datetime = Field(default_factory=utcnow, sa_column=ts_column())
    processed_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))

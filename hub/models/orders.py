"""Orders, their outbox of events, and stored idempotent responses."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, Index, Integer, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from hub.models._columns import jsonb_column, money_column, ts_column, utcnow

_LIVE = text("deleted_at IS NULL")


class Order(SQLModel, table=True):
    """The unified order (DESIGN "Unified order"). Lines and history live in JSONB on the row."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("organization_id", "source", "external_id", name="uq_orders_source_external"),
        Index("ix_orders_org_created", "organization_id", "created", "id", postgresql_where=_LIVE),
        Index("ix_orders_org_status_created", "organization_id", "status", "created", "id", postgresql_where=_LIVE),
        Index("ix_orders_org_source_created", "organization_id", "source", "created", "id", postgresql_where=_LIVE),
        Index("ix_orders_org_updated", "organization_id", "updated", "id", postgresql_where=_LIVE),
        Index("ix_orders_org_total", "organization_id", "total_amount", "id", postgresql_where=_LIVE),
        Index(
            "ix_orders_org_contact", "organization_id", "contact_id", postgresql_where=text("contact_id IS NOT NULL")
        ),
        Index("ix_orders_fingerprint", "organization_id", "fingerprint", "created"),
    )

    id: str = Field(primary_key=True)
    organization_id: str = Field(foreign_key="organizations.id")
    source: str
    external_id: str | None = None
    reference: str | None = None
    created_by: str
    contact_id: str | None = None
    customer_name: str | None = None
    customer_email: str | None = None
    customer_phone: str | None = None
    shipping_address: Any = Field(default=None, sa_column=jsonb_column())
    products: list[dict[str, Any]] = Field(default_factory=list, sa_column=jsonb_column(nullable=False))
    subtotal: Decimal = Field(sa_column=money_column())
    discount: Decimal = Field(sa_column=money_column())
    tax: Decimal = Field(sa_column=money_column())
    delivery_fee: Decimal = Field(sa_column=money_column())
    total_amount: Decimal = Field(sa_column=money_column())
    currency: str
    status: str
    payment_status: str
    fulfillment_status: str
    notes: str | None = None
    cancellation_reason: str | None = None
    status_history: list[dict[str, Any]] = Field(default_factory=list, sa_column=jsonb_column(nullable=False))
    fingerprint: str | None = None
    source_updated_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    created: datetime = Field(default_factory=utcnow, sa_column=ts_column())
    updated: datetime = Field(default_factory=utcnow, sa_column=ts_column())
    deleted_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    version: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default=text("1")))
    anomalies: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    )


class OrderEvent(SQLModel, table=True):
    """The outbox: one row per ``order.*`` event, its envelope stored once as it will be sent."""

    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_org_created", "organization_id", "created"),)

    id: str = Field(primary_key=True)
    organization_id: str = Field(foreign_key="organizations.id")
    order_id: str = Field(index=True)
    type: str
    source: str
    payload: dict[str, Any] = Field(sa_column=jsonb_column(nullable=False))
    created: datetime = Field(default_factory=utcnow, sa_column=ts_column())


class IdempotencyKey(SQLModel, table=True):
    """A stored response for an ``Idempotency-Key`` header (same key + body → same response)."""

    __tablename__ = "idempotency_keys"

    organization_id: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    request_hash: str
    status_code: int
    response: str = Field(sa_column=Column(Text, nullable=False))
    created: datetime = Field(default_factory=utcnow, sa_column=ts_column())

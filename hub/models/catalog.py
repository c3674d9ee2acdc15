"""Contacts and products of an organization."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from hub.models._columns import money_column, ts_column, utcnow


class Contact(SQLModel, table=True):
    """A customer an order can refer to by ``contact_id``."""

    __tablename__ = "contacts"

    id: str = Field(primary_key=True)
    organization_id: str = Field(foreign_key="organizations.id", index=True)
    name: str
    phone: str | None = None
    email: str | None = None
    created: datetime = Field(default_factory=utcnow, sa_column=ts_column())
    updated: datetime = Field(default_factory=utcnow, sa_column=ts_column())


class Product(SQLModel, table=True):
    """A catalog product with stock; deleting one is soft so old orders keep their lines."""

    __tablename__ = "products"
    __table_args__ = (
        Index(
            "ix_products_org_created", "organization_id", "created", "id", postgresql_where=text("deleted_at IS NULL")
        ),
    )

    id: str = Field(primary_key=True)
    organization_id: str = Field(foreign_key="organizations.id")
    name: str
    description: str | None = None
    sku: str | None = None
    category: str | None = None
    price: Decimal = Field(sa_column=money_column())
    currency: str
    stock_quantity: int = 0
    created: datetime = Field(default_factory=utcnow, sa_column=ts_column())
    updated: datetime = Field(default_factory=utcnow, sa_column=ts_column())
    deleted_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))

"""Organizations and their API keys (stored only as hashes)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.models._columns import ts_column, utcnow


class Organization(SQLModel, table=True):
    """A tenant. A test twin (``is_test``) holds the data reached with ``sk_test_`` keys."""

    __tablename__ = "organizations"
    __table_args__ = (UniqueConstraint("name", "is_test", name="uq_organizations_name_mode"),)

    id: str = Field(primary_key=True)
    name: str
    is_test: bool = False
    live_id: str | None = Field(default=None, foreign_key="organizations.id")
    default_currency: str = "SAR"
    created: datetime = Field(default_factory=utcnow, sa_column=ts_column())


class ApiKey(SQLModel, table=True):
    """An API key: only its SHA-256 is stored; ``prefix`` is what lists show."""

    __tablename__ = "api_keys"

    id: str = Field(primary_key=True)
    organization_id: str = Field(foreign_key="organizations.id", index=True)
    key_hash: str = Field(unique=True)
    prefix: str
    mode: str  # live | test
    name: str | None = None
    created: datetime = Field(default_factory=utcnow, sa_column=ts_column())
    last_used_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))

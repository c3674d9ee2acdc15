"""Column helpers shared by the table modules: UTC timestamps, exact money, JSONB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Numeric
from sqlalchemy.dialects.postgresql import JSONB


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def ts_column(*, nullable: bool = False, index: bool = False) -> Any:
    """A ``timestamptz`` column."""
    return Column(DateTime(timezone=True), nullable=nullable, index=index)


def money_column(*, nullable: bool = False) -> Any:
    """An exact ``numeric(20, 4)`` money column (never float)."""
    return Column(Numeric(20, 4), nullable=nullable)


def jsonb_column(*, nullable: bool = True) -> Any:
    """A ``jsonb`` column."""
    return Column(JSONB, nullable=nullable)

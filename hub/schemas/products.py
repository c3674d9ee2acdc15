"""Request and response models of ``/api/v1/products`` (seed 000's product object)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hub.schemas._fields import Currency, Money, Name, Text

_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True)
MAX_STOCK = 1_000_000_000


class ProductCreate(BaseModel):
    """Body of ``POST /api/v1/products``; ``currency`` defaults to the organization's (SAR)."""

    model_config = _STRICT

    name: Name
    description: Text | None = None
    sku: str | None = Field(default=None, min_length=1, max_length=100)
    category: str | None = Field(default=None, min_length=1, max_length=100)
    price: Money
    currency: Currency | None = None
    stock_quantity: int = Field(default=0, ge=0, le=MAX_STOCK, strict=True)


class ProductUpdate(BaseModel):
    """Body of ``PUT /api/v1/products/{id}``: merges (omitted fields keep their values).

    ``stock_quantity`` sets the count on hand; read-only fields (``id``, ``in_stock``, …) are
    accepted and ignored so a client may send back what it read.
    """

    model_config = _STRICT

    name: Name | None = None
    description: Text | None = None
    sku: str | None = Field(default=None, max_length=100)
    category: str | None = Field(default=None, max_length=100)
    price: Money | None = None
    currency: Currency | None = None
    stock_quantity: int | None = Field(default=None, ge=0, le=MAX_STOCK, strict=True)
    id: Any = None
    in_stock: Any = None
    created: Any = None
    updated: Any = None


class ProductOut(BaseModel):
    """A product as returned; ``in_stock`` is ``stock_quantity > 0``."""

    id: str
    name: str
    description: str | None
    sku: str | None
    category: str | None
    price: float
    currency: str
    stock_quantity: int
    in_stock: bool
    created: datetime
    updated: datetime


class ProductQuery(BaseModel):
    """Filters of ``GET /api/v1/products`` (pagination: ``page``, ``per_page``/``limit``)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    page: int | None = Field(default=None, ge=1)
    per_page: int | None = Field(default=None, ge=1, le=100)
    limit: int | None = Field(default=None, ge=1, le=100)
    search: str | None = Field(default=None, max_length=200, description="name, SKU or category (substring)")
    category: str | None = Field(default=None, max_length=100, description="exact category, any case")
    in_stock: bool | None = None

"""Request bodies of ``/api/v1/orders`` (seed 004's names; seed 000's ``items`` and field names accepted).

Unknown fields are refused (422 naming them) so a typo never passes silently; read-only fields of an
order (``id``, ``created``, …) are accepted on ``PUT`` and ignored, so a client may send back what it
read.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, RootModel

from hub.schemas._fields import (
    CreatedBy,
    Currency,
    Email,
    FulfillmentStatus,
    Money,
    Name,
    PaymentStatus,
    Phone,
    Quantity,
    Ref,
    Source,
    Status,
    Text,
)

MAX_LINES = 500
MAX_BULK = 1000

_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)


class LineIn(BaseModel):
    """One order line: a catalog line (``product_id`` + ``quantity``, priced from the catalog) or an
    explicit line (``name`` + ``price`` [+ ``sku``]; its ``product_id`` is an opaque reference)."""

    model_config = _STRICT

    product_id: Ref | None = None
    quantity: Quantity
    name: Name | None = Field(default=None, validation_alias=AliasChoices("name", "product_name"))
    sku: str | None = Field(default=None, max_length=100, validation_alias=AliasChoices("sku", "product_sku"))
    price: Money | None = Field(default=None, validation_alias=AliasChoices("price", "unit_price"))
    total: Money | None = Field(default=None, validation_alias=AliasChoices("total", "total_price"))


class _OrderFields(BaseModel):
    """Fields shared by create and update."""

    model_config = _STRICT

    source: Source | None = None
    external_id: Ref | None = None
    reference: str | None = Field(default=None, max_length=200)
    created_by: CreatedBy | None = None
    contact_id: Ref | None = None
    customer_name: Name | None = None
    customer_email: Email = None
    customer_phone: Phone = None
    shipping_address: str | dict[str, Any] | None = None
    products: list[LineIn] | None = Field(default=None, max_length=MAX_LINES)
    items: list[LineIn] | None = Field(default=None, max_length=MAX_LINES, description="Seed 000's name for products")
    subtotal: Money | None = None
    discount: Money | None = None
    tax: Money | None = None
    delivery_fee: Money | None = None
    total_amount: Money | None = Field(default=None, validation_alias=AliasChoices("total_amount", "total"))
    currency: Currency | None = None
    status: Status | None = None
    payment_status: PaymentStatus | None = None
    fulfillment_status: FulfillmentStatus | None = None
    notes: Text | None = None
    cancellation_reason: Text | None = None

    def lines(self) -> tuple[str, list[LineIn] | None]:
        """The line items and the name the client used for them (``products`` or seed 000's ``items``)."""
        if self.items is not None and self.products is None:
            return "items", self.items
        return "products", self.products


class OrderCreate(_OrderFields):
    """Body of ``POST /api/v1/orders`` (one element of ``POST /api/v1/orders/bulk``)."""


class OrderUpdate(_OrderFields):
    """Body of ``PUT /api/v1/orders/{id}``: merges, omitted fields keep their values.

    ``products``/``items`` are accepted only unchanged (line items change through
    ``PUT /api/v1/orders/{id}/items``); the read-only fields below are accepted and ignored.
    """

    id: Any = None
    organization_id: Any = None
    status_history: Any = None
    is_duplicate: Any = None
    source_updated_at: Any = None
    created: Any = None
    updated: Any = None
    version: Any = None
    anomalies: Any = None


class StatusChange(BaseModel):
    """Body of ``PATCH /api/v1/orders/{id}/status``: each status optional, at least one given."""

    model_config = _STRICT

    status: Status | None = None
    payment_status: PaymentStatus | None = None
    fulfillment_status: FulfillmentStatus | None = None
    cancellation_reason: Text | None = Field(
        default=None, validation_alias=AliasChoices("cancellation_reason", "reason")
    )


class CancelRequest(BaseModel):
    """Body of ``POST /api/v1/orders/{id}/cancel``."""

    model_config = _STRICT

    reason: Text = Field(min_length=1, validation_alias=AliasChoices("reason", "cancellation_reason"))


class ItemsReplace(BaseModel):
    """Body of ``PUT /api/v1/orders/{id}/items`` (``items`` as in seed 000, or ``products``)."""

    model_config = _STRICT

    items: list[LineIn] | None = Field(default=None, max_length=MAX_LINES)
    products: list[LineIn] | None = Field(default=None, max_length=MAX_LINES)

    def lines(self) -> tuple[str, list[LineIn] | None]:
        """The new line items and the name the client used for them."""
        if self.products is not None and self.items is None:
            return "products", self.products
        return "items", self.items


class BulkCreate(RootModel[list[OrderCreate]]):
    """Body of ``POST /api/v1/orders/bulk``: an array of orders as for a single create (max 1,000).

    The array is checked first (:class:`BulkEnvelope`), then each element on its own as
    :class:`OrderCreate`, so one bad order fails alone (``errors`` by index).
    """


class BulkEnvelope(BaseModel):
    """The shape of a bulk create before its elements are validated one by one."""

    model_config = _STRICT

    orders: list[Any] = Field(min_length=1, max_length=MAX_BULK)


class BulkStatusItem(StatusChange):
    """One element of ``PATCH /api/v1/orders/bulk/status``."""

    id: Ref


class BulkStatus(BaseModel):
    """Body of ``PATCH /api/v1/orders/bulk/status`` (each update validated on its own, errors by id)."""

    model_config = _STRICT

    updates: list[BulkStatusItem] = Field(min_length=1, max_length=MAX_BULK)


class BulkStatusEnvelope(BaseModel):
    """The shape of a bulk status update before its elements are validated one by one."""

    model_config = _STRICT

    updates: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BULK)


class BulkDelete(BaseModel):
    """Body of ``DELETE /api/v1/orders/bulk``."""

    model_config = _STRICT

    ids: list[Ref] = Field(min_length=1, max_length=MAX_BULK)

"""The list/export query of ``/api/v1/orders`` and the response shapes (documented in OpenAPI).

The query accepts both seeds' names: ``per_page``/``limit``, ``date_from``/``created_from``,
``date_to``/``created_to``. A date-only upper bound (``2024-01-15``) includes that whole UTC day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from hub.orders.transitions import FULFILLMENT_STATUSES, PAYMENT_STATUSES, STATUS_ALIASES, STATUSES, canonical_status
from hub.schemas._fields import CREATED_BY

SORTS = ("created", "updated", "total_amount", "status")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _listed(allowed: tuple[str, ...], *, canonical: Any = None) -> Any:
    """A comma-separated list of allowed values (``status=pending,confirmed``)."""

    def check(value: Any) -> tuple[str, ...] | None:
        if value is None or value == "":
            return None
        parts = [p.strip().lower() for p in str(value).split(",") if p.strip()]
        out: list[str] = []
        for part in parts:
            name = canonical(part) if canonical else (part if part in allowed else None)
            if name is None:
                raise PydanticCustomError("choice", "must be one of " + ", ".join(allowed) + " (comma-separated)")
            out.append(name)
        return tuple(dict.fromkeys(out)) or None

    return check


def _timestamp(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    try:
        parse_bound(text)
    except ValueError as exc:
        raise PydanticCustomError("date", "must be a date (YYYY-MM-DD) or an ISO 8601 timestamp") from exc
    return text


def parse_bound(text: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 timestamp (naive means UTC)."""
    if _DATE_ONLY.match(text):
        return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+") if "T" in text else text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _sources(value: Any) -> tuple[str, ...] | None:
    if not value:
        return None
    return tuple(p.strip().lower() for p in str(value).split(",") if p.strip()) or None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


_CSV = {"type": ["string", "null"], "description": "one value or several, comma-separated"}
Statuses = Annotated[
    tuple[str, ...] | None,
    BeforeValidator(_listed((*STATUSES, *STATUS_ALIASES), canonical=canonical_status)),
    WithJsonSchema({**_CSV, "examples": ["pending", "pending,confirmed"]}),
]
PaymentStatuses = Annotated[tuple[str, ...] | None, BeforeValidator(_listed(PAYMENT_STATUSES)), WithJsonSchema(_CSV)]
FulfillmentStatuses = Annotated[
    tuple[str, ...] | None, BeforeValidator(_listed(FULFILLMENT_STATUSES)), WithJsonSchema(_CSV)
]
CreatedBys = Annotated[tuple[str, ...] | None, BeforeValidator(_listed(CREATED_BY)), WithJsonSchema(_CSV)]
Sources = Annotated[
    tuple[str, ...] | None,
    BeforeValidator(_sources),
    WithJsonSchema(_CSV),
]
Bound = Annotated[
    str | None,
    BeforeValidator(_timestamp),
    WithJsonSchema({"type": ["string", "null"], "description": "YYYY-MM-DD or an ISO 8601 timestamp"}),
]
# the length applies to the text only: on `str | None` it would be applied to None too (a TypeError, a 500)
Word = Annotated[Annotated[str, Field(max_length=200)] | None, BeforeValidator(_text)]


@dataclass(frozen=True, slots=True)
class OrderFilters:
    """What a list or export selects; bounds are ``created >= created_from`` and ``created < created_before``."""

    statuses: tuple[str, ...] | None = None
    payment_statuses: tuple[str, ...] | None = None
    fulfillment_statuses: tuple[str, ...] | None = None
    sources: tuple[str, ...] | None = None
    created_bys: tuple[str, ...] | None = None
    external_id: str | None = None
    contact_id: str | None = None
    search: str | None = None
    created_from: datetime | None = None
    created_before: datetime | None = None
    sort: str = "-created"


class OrderQuery(BaseModel):
    """Filters of ``GET /api/v1/orders`` and its export (pagination: ``page``, ``per_page``/``limit``)."""

    model_config = ConfigDict(extra="ignore")

    page: int | None = Field(default=None, ge=1, description="page number, from 1")
    per_page: int | None = Field(default=None, ge=1, le=100, description="page size (default 20, max 100)")
    limit: int | None = Field(default=None, ge=1, le=100, description="alias of per_page (seed 004)")
    status: Statuses = None
    payment_status: PaymentStatuses = None
    fulfillment_status: FulfillmentStatuses = None
    source: Sources = None
    created_by: CreatedBys = None
    external_id: Word = None
    contact_id: Word = None
    search: Word = Field(default=None, description="customer name, email, phone or external id (substring)")
    date_from: Bound = None
    date_to: Bound = Field(default=None, description="inclusive; a date alone includes that whole UTC day")
    created_from: Bound = Field(default=None, description="alias of date_from (seed 004)")
    created_to: Bound = Field(default=None, description="alias of date_to (seed 004)")
    sort: Literal[
        "created", "-created", "updated", "-updated", "total_amount", "-total_amount", "status", "-status"
    ] = "-created"
    count: Literal["auto", "exact"] = Field(
        default="auto", description="auto: exact up to 1,000 matches, then an estimate; exact: always count"
    )

    def filters(self) -> OrderFilters:
        """The selection as the services take it (aliases resolved, the upper bound made exclusive)."""
        lower = self.date_from or self.created_from
        upper = self.date_to or self.created_to
        before: datetime | None = None
        if upper is not None:
            bound = parse_bound(upper)
            # A date alone means the whole day; a timestamp is inclusive to the microsecond.
            before = bound + (timedelta(days=1) if _DATE_ONLY.match(upper) else timedelta(microseconds=1))
        return OrderFilters(
            statuses=self.status,
            payment_statuses=self.payment_status,
            fulfillment_statuses=self.fulfillment_status,
            sources=self.source,
            created_bys=self.created_by,
            external_id=self.external_id,
            contact_id=self.contact_id,
            search=self.search,
            created_from=parse_bound(lower) if lower else None,
            created_before=before,
            sort=self.sort,
        )


class ExportQuery(OrderQuery):
    """``GET /api/v1/orders/export``: the list filters plus ``format``; no pagination (everything matching)."""

    format: Literal["csv", "ndjson"] = "csv"


class OrderLineOut(BaseModel):
    """A line of an order as returned."""

    product_id: str | None
    sku: str | None
    name: str | None
    quantity: int
    price: float
    total: float


class StatusHistoryEntry(BaseModel):
    """One status change: the status, when, and the API key (or ``source:webhook``) that made it."""

    status: str
    at: str
    by: str | None


class OrderAnomaly(BaseModel):
    """One flag on an order."""

    code: str = Field(description="negative_amount or source_clock_capped")
    detail: str
    at: str


class OrderOut(BaseModel):
    """The unified order (DESIGN "Unified order"): what every order endpoint returns in ``data``."""

    id: str
    organization_id: str
    source: str
    external_id: str | None
    reference: str | None
    created_by: str
    contact_id: str | None
    customer_name: str | None
    customer_email: str | None
    customer_phone: str | None
    shipping_address: str | dict[str, Any] | None
    products: list[OrderLineOut]
    subtotal: float
    discount: float
    tax: float
    delivery_fee: float
    total_amount: float
    currency: str
    status: str
    payment_status: str
    fulfillment_status: str
    notes: str | None
    cancellation_reason: str | None
    status_history: list[StatusHistoryEntry]
    source_updated_at: str | None
    created: str
    updated: str
    version: int = Field(description="1 on creation, +1 on every stored change: receivers keep the higher version")
    anomalies: list[OrderAnomaly] = Field(
        description="What the hub noticed in a source's data without refusing it (negative totals, capped clocks)"
    )
    is_duplicate: bool = Field(description="true when POST returned an existing identical order (200)")


class BulkResult(BaseModel):
    """Every bulk operation's answer: counts, and the reason of each failure by id (or index for creates)."""

    succeeded: int
    failed: int
    errors: dict[str, str]
    ids: dict[str, str] = Field(default_factory=dict, description="bulk create: index -> id of each stored order")

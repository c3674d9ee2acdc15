"""Bulk create, status update and delete: every item in its own transaction, results per item.

One bad item never fails the others: each runs in its own short transaction (so row and stock locks
are held for one order at a time, not for a thousand), and its failure is reported by id — or by
index for creates — in ``errors``. An id given twice is processed once, at its first occurrence;
each repeat is a failed item (``errors`` names it). Deliveries of every committed item are collected
for one wake-up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from hub.db import Conn
from hub.errors import HubError, NotFound, ValidationFailed
from hub.orders.changes import change_status, delete_order
from hub.orders.create import create_order
from hub.orders.write import Written
from hub.schemas.orders import BulkStatusItem, OrderCreate

#: Item outcomes the API reports per item instead of failing the request.
_ITEM_ERRORS = (HubError, asyncpg.IntegrityConstraintViolationError, asyncpg.DataError)


@dataclass
class BulkOutcome:
    """``{succeeded, failed, errors}`` plus, for creates, the id stored for each index."""

    succeeded: int = 0
    failed: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    delivery_ids: list[str] = field(default_factory=list)

    def fail(self, key: str, reason: str) -> None:
        """Record a failed item."""
        self.failed += 1
        self.errors[key] = reason

    def repeat(self, key: str, index: int) -> None:
        """Record an id given again after its first occurrence (the key stays unique in ``errors``)."""
        self.fail(key if key not in self.errors else f"{key}[{index}]", f"item {index} repeats an id given earlier")

    def as_data(self) -> dict[str, Any]:
        """The response ``data``."""
        data: dict[str, Any] = {"succeeded": self.succeeded, "failed": self.failed, "errors": self.errors}
        if self.ids:
            data["ids"] = self.ids
        return data


def reason(exc: BaseException) -> str:
    """One line saying why an item failed (``Order not found``, ``Invalid status transition: …``)."""
    if isinstance(exc, NotFound):
        return exc.error
    if isinstance(exc, HubError):
        details = "; ".join(f"{k}: {v}" for k, v in exc.details.items())
        if exc.error == ValidationFailed.error and details:
            return details
        return f"{exc.error}: {details}" if details else exc.error
    return f"could not be stored: {type(exc).__name__}"


async def _each(conn: Conn, outcome: BulkOutcome, key: str, work: Callable[[], Awaitable[Written]]) -> Written | None:
    try:
        async with conn.transaction():
            written = await work()
    except _ITEM_ERRORS as exc:
        outcome.fail(key, reason(exc))
        return None
    outcome.succeeded += 1
    outcome.delivery_ids.extend(written.delivery_ids)
    return written


async def bulk_create(
    conn: Conn,
    *,
    organization_id: str,
    items: Sequence[OrderCreate | HubError],
    actor: str,
    phone_region: str = "SA",
) -> BulkOutcome:
    """Create (or upsert) each order; an item given as an error failed validation already."""
    outcome = BulkOutcome()
    for index, item in enumerate(items):
        key = str(index)
        if isinstance(item, HubError):
            outcome.fail(key, reason(item))
            continue

        async def work(data: OrderCreate = item) -> Written:
            return await create_order(
                conn, organization_id=organization_id, data=data, actor=actor, phone_region=phone_region
            )

        written = await _each(conn, outcome, key, work)
        if written is not None:
            outcome.ids[key] = written.order["id"]
    return outcome


async def bulk_status(
    conn: Conn,
    *,
    organization_id: str,
    items: Sequence[tuple[str, BulkStatusItem | HubError]],
    actor: str,
) -> BulkOutcome:
    """Apply each ``(key, update)``: status through the transition table, payment/fulfillment freely."""
    outcome = BulkOutcome()
    seen: set[str] = set()
    for index, (key, item) in enumerate(items):
        if isinstance(item, HubError):
            outcome.fail(key, reason(item))
            continue
        if item.id in seen:
            outcome.repeat(key, index)
            continue
        seen.add(item.id)

        async def work(update: BulkStatusItem = item) -> Written:
            return await change_status(
                conn, organization_id=organization_id, order_id=update.id, data=update, actor=actor
            )

        await _each(conn, outcome, key, work)
    return outcome


async def bulk_delete(conn: Conn, *, organization_id: str, ids: Sequence[str]) -> BulkOutcome:
    """Soft-delete each order (stock of non-final orders given back, ``order.deleted`` emitted)."""
    outcome = BulkOutcome()
    seen: set[str] = set()
    for index, order_id in enumerate(ids):
        if order_id in seen:
            outcome.repeat(order_id, index)
            continue
        seen.add(order_id)

        async def work(target: str = order_id) -> Written:
            return await delete_order(conn, organization_id=organization_id, order_id=target)

        await _each(conn, outcome, order_id, work)
    return outcome

"""Order rows, shared by every writer (API create/changes and ingest upsert): build, lock, insert, update.

:func:`new_row` is the one place a complete row is built (defaults, ``version`` 1), :func:`stamp`
the one timestamp format stored in JSONB (``…Z``), :func:`lock_key` the one advisory-lock key
(an API upsert and a webhook for the same source order take the same lock), :func:`update` the one
place ``version`` grows. Writers use a raw asyncpg connection (JSONB codecs, see
``hub.db.create_pool``) inside the caller's transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.dialects import postgresql

from hub.db import Conn, dumps
from hub.errors import NotFound
from hub.ids import new_id
from hub.models import Order
from hub.money import quantize
from hub.orders.view import order_public

Row = dict[str, Any]

#: Every column an order row has, in insert order (the table definition is the one source).
COLUMNS: tuple[str, ...] = tuple(Order.__table__.columns.keys())  # type: ignore[attr-defined]
INSERT_SQL = f"INSERT INTO orders ({', '.join(COLUMNS)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(COLUMNS)))})"
_TYPES = {c.name: c.type.compile(dialect=postgresql.dialect()).split("(")[0] for c in Order.__table__.columns}  # type: ignore[attr-defined,no-untyped-call]
_JSON = frozenset(name for name, kind in _TYPES.items() if kind == "JSONB")
_IMMUTABLE = frozenset({"id", "organization_id", "created", "version"})
#: Columns whose change alone is not a change of the order (no new ``version``).
_BOOKKEEPING = frozenset({"updated", "version"})
_ZERO = Decimal(0)


def unnest_rows(columns: Sequence[str], extra: Sequence[tuple[str, str]] = ()) -> str:
    """``SELECT <columns> FROM unnest($1::type[], …) AS v(…)``: rows from :func:`column_arrays`.

    ``extra``: more ``(name, type)`` columns after the order's. JSONB values travel as JSON text
    (``$n::text[]``, cast back per row): an array parameter whose elements are lists would be read
    as a multi-dimensional array.
    """
    typed = [(c, "text" if c in _JSON else _TYPES[c]) for c in columns] + list(extra)
    params = ", ".join(f"${i + 1}::{kind}[]" for i, (_, kind) in enumerate(typed))
    values = ", ".join(f"v.{c}::jsonb AS {c}" if c in _JSON else f"v.{c}" for c, _ in typed)
    return f"SELECT {values} FROM unnest({params}) AS v({', '.join(c for c, _ in typed)})"


def column_arrays(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[list[Any]]:
    """The ``columns`` of ``rows`` as one list per column, for :func:`unnest_rows`."""
    return [
        [None if row.get(c) is None else dumps(row[c]) for row in rows] if c in _JSON else [row.get(c) for row in rows]
        for c in columns
    ]


#: Insert the rows of :func:`column_arrays` over :data:`COLUMNS` (one statement for any number of orders).
INSERT_MANY_SQL = f"INSERT INTO orders ({', '.join(COLUMNS)}) {unnest_rows(COLUMNS)}"


def lock_key(*parts: str) -> int:
    """A signed 64-bit transaction advisory-lock key for ``parts``.

    ``(organization, source, external_id)`` is the key of one source order, whoever writes it.
    """
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def stamp(at: datetime) -> str:
    """A stored or emitted timestamp string: ISO 8601 in UTC ending in ``Z``."""
    return at.isoformat().replace("+00:00", "Z")


def line_row(
    *, product_id: str | None, sku: str | None, name: str | None, quantity: int, price: Decimal, currency: str
) -> dict[str, Any]:
    """A stored line: price rounded to the currency's minor unit, ``total`` exactly price × quantity."""
    shown = quantize(price, currency)
    return {
        "product_id": product_id,
        "sku": sku,
        "name": name,
        "quantity": quantity,
        "price": shown,
        "total": shown * quantity,
    }


def new_row(*, organization_id: str, source: str, created_by: str, currency: str, now: datetime) -> Row:
    """A complete new order row with every column at its default (``version`` 1, no lines, zero money)."""
    return {
        "id": new_id("ord"),
        "organization_id": organization_id,
        "source": source,
        "external_id": None,
        "reference": None,
        "created_by": created_by,
        "contact_id": None,
        "customer_name": None,
        "customer_email": None,
        "customer_phone": None,
        "shipping_address": None,
        "products": [],
        "subtotal": _ZERO,
        "discount": _ZERO,
        "tax": _ZERO,
        "delivery_fee": _ZERO,
        "total_amount": _ZERO,
        "currency": currency,
        "status": "pending",
        "payment_status": "pending",
        "fulfillment_status": "unfulfilled",
        "notes": None,
        "cancellation_reason": None,
        "status_history": [],
        "fingerprint": None,
        "source_updated_at": None,
        "created": now,
        "updated": now,
        "deleted_at": None,
        "version": 1,
        "anomalies": [],
    }


def differs(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """True when ``after`` is a change of the order ``before`` (bookkeeping columns aside)."""
    return any(before.get(c) != after.get(c) for c in COLUMNS if c not in _BOOKKEEPING)


def next_version(before: Mapping[str, Any], after: dict[str, Any]) -> None:
    """Set ``after``'s ``version`` (in place): one more than ``before``'s when the order changed."""
    after["version"] = int(before.get("version") or 1) + (1 if differs(before, after) else 0)


def not_found(order_id: str) -> NotFound:
    """The 404 for an unknown order id (also another organization's or a deleted order's id)."""
    return NotFound("Order not found", details={"id": order_id})


def public(row: Mapping[str, Any], *, is_duplicate: bool = False) -> dict[str, Any]:
    """The order as the API returns it (``hub.orders.view.order_public``)."""
    return order_public(row, is_duplicate=is_duplicate)


async def load(conn: Conn, *, organization_id: str, order_id: str, for_update: bool = False) -> Row:
    """The organization's live order row, locked for the transaction when ``for_update``; 404 otherwise."""
    sql = "SELECT * FROM orders WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL"
    record = await conn.fetchrow(sql + (" FOR UPDATE" if for_update else ""), order_id, organization_id)
    if record is None:
        raise not_found(order_id)
    return dict(record)


async def get_order(conn: Conn, *, organization_id: str, order_id: str) -> dict[str, Any]:
    """The public view of one order (with its status history), or 404."""
    return public(await load(conn, organization_id=organization_id, order_id=order_id))


async def insert(conn: Conn, row: Mapping[str, Any]) -> None:
    """Insert a complete order row."""
    await conn.execute(INSERT_SQL, *(row.get(column) for column in COLUMNS))


async def update(conn: Conn, *, before: Mapping[str, Any], after: Row) -> bool:
    """Write the columns that differ between ``before`` and ``after`` (``version`` + 1); False when none does."""
    changed = [c for c in COLUMNS if c not in _IMMUTABLE and before.get(c) != after.get(c)]
    if not changed:
        return False
    next_version(before, after)
    changed.append("version")
    assignments = ", ".join(f"{column} = ${i + 2}" for i, column in enumerate(changed))
    await conn.execute(f"UPDATE orders SET {assignments} WHERE id = $1", after["id"], *(after[c] for c in changed))
    return True

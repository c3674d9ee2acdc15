"""Order rows: load (organization-scoped, live only), insert, update changed columns, public view.

Order services work on a raw asyncpg connection from the pool (JSONB codecs installed, see
``hub.db.create_pool``) inside the caller's transaction, because the outbox writer, advisory locks
and conditional stock updates are all plain SQL on that same connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.db import Conn
from hub.errors import NotFound
from hub.models import Order
from hub.orders.view import order_public

Row = dict[str, Any]

#: Every column an order row has, in insert order (the table definition is the one source).
COLUMNS: tuple[str, ...] = tuple(Order.__table__.columns.keys())  # type: ignore[attr-defined]
INSERT_SQL = f"INSERT INTO orders ({', '.join(COLUMNS)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(COLUMNS)))})"
_IMMUTABLE = frozenset({"id", "organization_id", "created"})


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


async def update(conn: Conn, *, before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Write the columns that differ between ``before`` and ``after``; False when nothing differs."""
    changed = [c for c in COLUMNS if c not in _IMMUTABLE and before.get(c) != after.get(c)]
    if not changed:
        return False
    assignments = ", ".join(f"{column} = ${i + 2}" for i, column in enumerate(changed))
    await conn.execute(f"UPDATE orders SET {assignments} WHERE id = $1", after["id"], *(after[c] for c in changed))
    return True

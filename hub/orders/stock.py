"""Stock held by orders, moved atomically in the order's own transaction.

Rule: a live order that is not cancelled or returned holds stock for its catalog lines. Every write
compares what the order held before and after and moves only the difference, so creating reserves,
cancelling, returning and deleting give back, and replacing items adjusts, all through
:func:`move_stock`.

A reservation is one conditional ``UPDATE … SET stock_quantity = stock_quantity - n WHERE
stock_quantity >= n``: the row lock it takes serialises concurrent orders for the same product, and
the condition is re-checked after the lock is granted, so with one unit left exactly one of many
concurrent orders gets it. Products are updated in id order so two orders never deadlock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.db import Conn
from hub.errors import ValidationFailed
from hub.orders.transitions import FINAL

Holdings = dict[str, int]


def held(lines: list[dict[str, Any]] | None, *, status: str, deleted: bool = False) -> Holdings:
    """Units per product an order in this state holds."""
    if deleted or status in FINAL:
        return {}
    out: Holdings = {}
    for line in lines or []:
        if line.get("catalog") and line.get("product_id") is not None:
            out[str(line["product_id"])] = out.get(str(line["product_id"]), 0) + int(line["quantity"])
    return out


def held_by(row: Mapping[str, Any]) -> Holdings:
    """Units per product the order row holds."""
    return held(row.get("products"), status=str(row.get("status")), deleted=row.get("deleted_at") is not None)


async def move_stock(
    conn: Conn,
    *,
    organization_id: str,
    before: Mapping[str, int],
    after: Mapping[str, int],
    field: str = "products",
    line_index: Mapping[str, int] | None = None,
) -> None:
    """Reserve what ``after`` holds beyond ``before`` and release the rest; 422 naming short lines.

    On a shortage nothing is reserved (the caller's transaction rolls back), and ``details`` names
    every short line as ``{field}.{index}.quantity`` (``line_index`` maps product id to line index).
    """
    shortages: dict[str, str] = {}
    for product_id in sorted(before.keys() | after.keys()):
        delta = after.get(product_id, 0) - before.get(product_id, 0)
        if delta > 0:
            taken = await conn.fetchval(
                "UPDATE products SET stock_quantity = stock_quantity - $3, updated = now() "
                "WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL AND stock_quantity >= $3 "
                "RETURNING stock_quantity",
                product_id,
                organization_id,
                delta,
            )
            if taken is None:
                index = (line_index or {}).get(product_id)
                key = f"{field}.{index}.quantity" if index is not None else field
                shortages[key] = await _why_short(conn, organization_id, product_id, delta)
        elif delta < 0:
            # Given back even to a deleted product: its row still counts what is on the shelf.
            await conn.execute(
                "UPDATE products SET stock_quantity = stock_quantity + $3, updated = now() "
                "WHERE id = $1 AND organization_id = $2",
                product_id,
                organization_id,
                -delta,
            )
    if shortages:
        raise ValidationFailed("Insufficient stock", details=shortages)


async def _why_short(conn: Conn, organization_id: str, product_id: str, wanted: int) -> str:
    row = await conn.fetchrow(
        "SELECT stock_quantity, deleted_at FROM products WHERE id = $1 AND organization_id = $2",
        product_id,
        organization_id,
    )
    if row is None or row["deleted_at"] is not None:
        return f"product {product_id} not found"
    return f"insufficient stock for product {product_id}: {row['stock_quantity']} available, {wanted} requested"


def line_index(lines: list[dict[str, Any]]) -> dict[str, int]:
    """Product id → index of its first catalog line (to name a short line in errors)."""
    out: dict[str, int] = {}
    for i, line in enumerate(lines):
        if line.get("catalog") and line.get("product_id") is not None:
            out.setdefault(str(line["product_id"]), i)
    return out

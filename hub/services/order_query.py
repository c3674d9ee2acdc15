"""Selecting orders for lists and exports: filters → SQL on the existing indexes, pages, counts.

Every query is scoped by organization and excludes deleted orders, so it runs on the partial indexes
``ix_orders_org_*`` (``WHERE deleted_at IS NULL``). Each sort ends with ``id`` in the same direction,
which makes the order total (pages never overlap or skip) and lets Postgres walk
``(organization_id, <sort column>, id)`` backwards or forwards instead of sorting.

Counting every match is the slow part of a page at a million orders, so ``total`` is exact up to
:data:`COUNT_CAP` matches (an index-only scan that stops there) and the planner's estimate beyond it
(``meta.total_exact`` false); ``count=exact`` forces a full count. ``has_next`` is always exact: one
row more than the page is fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from connectors.base import to_e164
from hub.db import Conn
from hub.schemas.order_views import OrderFilters
from hub.services import orders

COUNT_CAP = 10_000
_SORTS: dict[str, tuple[str, ...]] = {
    "created": ("created", "id"),
    "updated": ("updated", "id"),
    "total_amount": ("total_amount", "id"),
    # (status, created, id) rather than (status, id): ix_orders_org_status_created serves it.
    "status": ("status", "created", "id"),
}


@dataclass(frozen=True, slots=True)
class OrderPage:
    """A page of public orders and what the list meta needs."""

    orders: list[dict[str, Any]]
    total: int
    total_exact: bool
    has_next: bool


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def where_clause(organization_id: str, filters: OrderFilters, *, phone_region: str = "SA") -> tuple[str, list[Any]]:
    """``WHERE …`` for the filters and its parameters (``$1`` is the organization)."""
    args: list[Any] = [organization_id]
    parts = ["organization_id = $1", "deleted_at IS NULL"]

    def param(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    for column, values in (
        ("status", filters.statuses),
        ("payment_status", filters.payment_statuses),
        ("fulfillment_status", filters.fulfillment_statuses),
        ("source", filters.sources),
        ("created_by", filters.created_bys),
    ):
        if values:
            # One value as "=" keeps the plan on the (organization_id, status, created, id) index.
            parts.append(
                f"{column} = {param(values[0])}" if len(values) == 1 else f"{column} = ANY({param(list(values))})"
            )
    if filters.external_id:
        parts.append(f"external_id = {param(filters.external_id)}")
    if filters.contact_id:
        parts.append(f"contact_id = {param(filters.contact_id)}")
    if filters.created_from:
        parts.append(f"created >= {param(filters.created_from)}")
    if filters.created_before:
        parts.append(f"created < {param(filters.created_before)}")
    if filters.search:
        like = param(_like(filters.search))
        alternatives = [
            f"{c} ILIKE {like}" for c in ("customer_name", "customer_email", "customer_phone", "external_id")
        ]
        phone = to_e164(filters.search, default_region=phone_region)
        if phone and phone.startswith("+") and phone != filters.search:
            alternatives.append(f"customer_phone = {param(phone)}")  # "0501234567" finds "+966501234567"
        parts.append("(" + " OR ".join(alternatives) + ")")
    return " AND ".join(parts), args


def order_by(sort: str) -> str:
    """``ORDER BY`` for ``created``, ``-created``, … (every column in the same direction, ``id`` last)."""
    descending = sort.startswith("-")
    columns = _SORTS[sort.lstrip("-")]
    return ", ".join(f"{column} {'DESC' if descending else 'ASC'}" for column in columns)


def select_sql(organization_id: str, filters: OrderFilters, *, phone_region: str = "SA") -> tuple[str, list[Any]]:
    """The full ``SELECT *`` for the filters in their sort order (used by the export cursor)."""
    where, args = where_clause(organization_id, filters, phone_region=phone_region)
    return f"SELECT * FROM orders WHERE {where} ORDER BY {order_by(filters.sort)}", args


async def list_orders(
    conn: Conn,
    *,
    organization_id: str,
    filters: OrderFilters,
    offset: int,
    limit: int,
    exact_count: bool = False,
    phone_region: str = "SA",
) -> OrderPage:
    """One page of public orders with the total (see the module docstring on counting)."""
    where, args = where_clause(organization_id, filters, phone_region=phone_region)
    n = len(args)
    rows = await conn.fetch(
        f"SELECT * FROM orders WHERE {where} ORDER BY {order_by(filters.sort)} LIMIT ${n + 1} OFFSET ${n + 2}",
        *args,
        limit + 1,
        offset,
    )
    has_next = len(rows) > limit
    page = [orders.public(dict(row)) for row in rows[:limit]]
    if not has_next and (page or offset == 0):
        return OrderPage(page, offset + len(page), True, False)  # the last page tells the total for free
    total, exact = await count_orders(conn, where=where, args=args, exact=exact_count)
    if page and not exact:
        total = max(total, offset + len(page) + int(has_next))  # an estimate never contradicts the page
    return OrderPage(page, total, exact, has_next)


async def count_orders(conn: Conn, *, where: str, args: list[Any], exact: bool) -> tuple[int, bool]:
    """``(count, is_exact)``: exact up to :data:`COUNT_CAP` (or always when ``exact``), else estimated."""
    if exact:
        return int(await conn.fetchval(f"SELECT count(*) FROM orders WHERE {where}", *args)), True
    capped = await conn.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM orders WHERE {where} LIMIT {COUNT_CAP + 1}) AS capped", *args
    )
    if capped <= COUNT_CAP:
        return int(capped), True
    plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM orders WHERE {where}", *args)
    parsed = orjson.loads(plan) if isinstance(plan, str | bytes) else plan
    return max(int(parsed[0]["Plan"]["Plan Rows"]), COUNT_CAP + 1), False

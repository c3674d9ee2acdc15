"""Selecting orders for lists and exports: filters → SQL on the existing indexes, pages, counts.

Every query is scoped by organization and excludes deleted orders, so it runs on the partial indexes
``ix_orders_org_*`` (``WHERE deleted_at IS NULL``). Each sort ends with ``id`` in the same direction,
which makes the order total (pages never overlap or skip) and lets Postgres walk
``(organization_id, <sort column>, id)`` backwards or forwards instead of sorting.

Counting every match is the slow part of a page at a million orders, so ``total`` is exact up to
:data:`COUNT_CAP` matches (an index-only scan that stops there) and the planner's estimate beyond it
(``meta.total_exact`` false); ``count=exact`` forces a full count. An estimate is kept for
:data:`ESTIMATE_TTL` seconds per process and filter, so paging through a large result does not
re-count its first thousand matches on every page (an estimate may be that much older; an exact
count never is). Pages are read by ``hub.orders.listing``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from connectors.base import to_e164
from hub.db import Conn, TtlCache
from hub.schemas.order_views import OrderFilters

COUNT_CAP = 1_000
#: Seconds an estimated (over :data:`COUNT_CAP`) total is reused for the same filter in this process.
ESTIMATE_TTL = 2.0
_ESTIMATES: TtlCache[tuple[str, str], int] = TtlCache()
#: The text ``search`` matches, as one expression so one trigram index serves it (migration 0002);
#: chr(31) between the fields keeps a term from matching across two of them.
SEARCH_TEXT = (
    "(coalesce(customer_name, '') || chr(31) || coalesce(customer_email, '') || chr(31) || "
    "coalesce(customer_phone, '') || chr(31) || coalesce(external_id, ''))"
)
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

    orders: list[orjson.Fragment]
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
        parts.append(search_clause(filters.search, args, phone_region=phone_region))
    return " AND ".join(parts), args


def search_clause(search: str, args: list[Any], *, phone_region: str = "SA") -> str:
    """The ``search`` predicate (its parameters appended to ``args``): a substring of name, email,
    phone or external id, case-insensitive; a local phone number also finds its E.164 form."""
    args.append(_like(search))
    alternatives = [f"{SEARCH_TEXT} ILIKE ${len(args)}"]
    phone = to_e164(search, default_region=phone_region)
    if phone and phone.startswith("+") and phone != search:
        args.append(_like(phone))  # "0501234567" also finds the stored "+966501234567"
        alternatives.append(f"{SEARCH_TEXT} ILIKE ${len(args)}")
    return "(" + " OR ".join(alternatives) + ")"


def order_by(sort: str) -> str:
    """``ORDER BY`` for ``created``, ``-created``, … (every column in the same direction, ``id`` last)."""
    descending = sort.startswith("-")
    columns = _SORTS[sort.lstrip("-")]
    return ", ".join(f"{column} {'DESC' if descending else 'ASC'}" for column in columns)


def select_sql(organization_id: str, filters: OrderFilters, *, phone_region: str = "SA") -> tuple[str, list[Any]]:
    """The full ``SELECT *`` for the filters in their sort order (used by the export cursor)."""
    where, args = where_clause(organization_id, filters, phone_region=phone_region)
    return f"SELECT * FROM orders WHERE {where} ORDER BY {order_by(filters.sort)}", args


async def count_orders(conn: Conn, *, where: str, args: list[Any], exact: bool) -> tuple[int, bool]:
    """``(count, is_exact)``: exact up to :data:`COUNT_CAP` (or always when ``exact``), else estimated."""
    if exact:
        return int(await conn.fetchval(f"SELECT count(*) FROM orders WHERE {where}", *args)), True
    key = (where, repr(args))  # the organization is one of the arguments: never shared across them
    cached = _ESTIMATES.get(key, ESTIMATE_TTL)
    if cached is not None:
        return cached[0], False
    capped = await conn.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM orders WHERE {where} LIMIT {COUNT_CAP + 1}) AS capped", *args
    )
    if capped <= COUNT_CAP:
        return int(capped), True
    plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM orders WHERE {where}", *args)
    parsed = orjson.loads(plan) if isinstance(plan, str | bytes) else plan
    estimate = max(int(parsed[0]["Plan"]["Plan Rows"]), COUNT_CAP + 1)
    _ESTIMATES.put(key, estimate)
    return estimate, False

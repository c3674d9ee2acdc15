"""Pages of orders for ``GET /orders``: a plain index walk, or an adaptive plan for ``search``.

Without ``search`` a page is one ``ORDER BY … LIMIT`` on the sort's index, plus a count (see
``order_query.count_orders``). ``has_next`` is always exact: one row more than the page is fetched.

``search`` is a substring match (trigram index, migration 0002) whose selectivity the planner
cannot know: a common term ("gmail") is fastest found by walking the sort index and filtering, a
rare one ("0501234567") by the trigram index and a sort of its few matches; the wrong choice costs
seconds at a million orders. So the plan is picked from the data:

1. Look at the first :data:`WINDOW` rows of the other filters in the sort order. If they hold the
   whole page, that is the page (the earliest matches in sort order are the page, wherever the
   window ends); the total is exact when the window covered everything, else the window's match
   rate times the filtered total, flagged as an estimate.
2. Otherwise matches are rare: count them through the trigram index (capped) and sort them.
3. Many matches but a deep page: walk the sort index.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hub.db import Conn
from hub.orders import rows as orders
from hub.orders.query import OrderPage, count_orders, order_by, search_clause, where_clause
from hub.schemas.order_views import OrderFilters

WINDOW = 5_000


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
    """One page of public orders with the total."""
    if filters.search:
        return await _search_page(
            conn,
            organization_id=organization_id,
            filters=filters,
            offset=offset,
            limit=limit,
            exact_count=exact_count,
            phone_region=phone_region,
        )
    where, args = where_clause(organization_id, filters, phone_region=phone_region)
    rows = await _fetch(conn, f"SELECT * FROM orders WHERE {where}", args, filters.sort, offset, limit)
    return await _page(conn, rows, offset=offset, limit=limit, where=where, args=args, exact_count=exact_count)


async def _fetch(conn: Conn, source: str, args: list[Any], sort: str, offset: int, limit: int) -> list[dict[str, Any]]:
    n = len(args)
    records = await conn.fetch(
        f"{source} ORDER BY {order_by(sort)} LIMIT ${n + 1} OFFSET ${n + 2}", *args, limit + 1, offset
    )
    return [dict(record) for record in records]


async def _page(
    conn: Conn,
    rows: list[dict[str, Any]],
    *,
    offset: int,
    limit: int,
    where: str,
    args: list[Any],
    exact_count: bool,
) -> OrderPage:
    has_next = len(rows) > limit
    page = [orders.public(row) for row in rows[:limit]]
    if not has_next and (page or offset == 0):
        return OrderPage(page, offset + len(page), True, False)  # the last page tells the total for free
    total, exact = await count_orders(conn, where=where, args=args, exact=exact_count)
    if page and not exact:
        total = max(total, offset + len(page) + int(has_next))  # an estimate never contradicts the page
    return OrderPage(page, total, exact, has_next)


async def _search_page(
    conn: Conn,
    *,
    organization_id: str,
    filters: OrderFilters,
    offset: int,
    limit: int,
    exact_count: bool,
    phone_region: str,
) -> OrderPage:
    assert filters.search is not None
    base, args = where_clause(organization_id, replace(filters, search=None), phone_region=phone_region)
    base_args = list(args)
    match = search_clause(filters.search, args, phone_region=phone_region)
    where = f"{base} AND {match}"
    async with conn.transaction(readonly=True):  # the SET LOCALs below end with it
        if offset + limit < WINDOW:
            page = await _from_window(
                conn,
                base=base,
                base_args=base_args,
                match=match,
                args=args,
                filters=filters,
                offset=offset,
                limit=limit,
                exact_count=exact_count,
            )
            if page is not None:
                return page
        await conn.execute("SET LOCAL enable_indexscan = off")  # rare: bitmap scans on the trigram index
        total, exact = await count_orders(conn, where=where, args=args, exact=False)
        if exact:
            rows = await _fetch(conn, f"SELECT * FROM orders WHERE {where}", args, filters.sort, offset, limit)
            return _finish(rows, limit, total, True)
        # Many matches, deep page: walk the sort index rather than sort every match.
        for setting, value in (("enable_indexscan", "on"), ("enable_bitmapscan", "off"), ("enable_sort", "off")):
            await conn.execute(f"SET LOCAL {setting} = {value}")
        rows = await _fetch(conn, f"SELECT * FROM orders WHERE {where}", args, filters.sort, offset, limit)
        if exact_count:
            total, exact = await count_orders(conn, where=where, args=args, exact=True)
        return _finish(rows, limit, max(total, offset + min(len(rows), limit)), exact)


async def _from_window(
    conn: Conn,
    *,
    base: str,
    base_args: list[Any],
    match: str,
    args: list[Any],
    filters: OrderFilters,
    offset: int,
    limit: int,
    exact_count: bool,
) -> OrderPage | None:
    """The page from the first :data:`WINDOW` rows in sort order, or None when they do not hold it."""
    window = f"(SELECT * FROM orders WHERE {base} ORDER BY {order_by(filters.sort)} LIMIT {WINDOW}) AS w"
    seen = await conn.fetchrow(f"SELECT count(*) AS n, count(*) FILTER (WHERE {match}) AS hits FROM {window}", *args)
    assert seen is not None
    covered = seen["n"] < WINDOW  # the window held every row of the other filters
    if not covered and seen["hits"] <= offset + limit:
        return None
    rows = await _fetch(conn, f"SELECT * FROM {window} WHERE {match}", args, filters.sort, offset, limit)
    if covered:
        return _finish(rows, limit, seen["hits"], True)
    if exact_count:
        where = f"{base} AND {match}"
        total, _ = await count_orders(conn, where=where, args=args, exact=True)
        return _finish(rows, limit, total, True)
    filtered, _ = await count_orders(conn, where=base, args=base_args, exact=False)
    return _finish(rows, limit, max(seen["hits"] * filtered // WINDOW, offset + limit + 1), False)


def _finish(rows: list[dict[str, Any]], limit: int, total: int, exact: bool) -> OrderPage:
    return OrderPage([orders.public(row) for row in rows[:limit]], total, exact, len(rows) > limit)

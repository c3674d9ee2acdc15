"""Pages of orders for ``GET /orders``: a plain index walk, or an adaptive plan for ``search``.

Without ``search`` a page is one ``ORDER BY … LIMIT`` on the sort's index, plus a count (see
``order_query.count_orders``). ``has_next`` is always exact: one row more than the page is fetched.
That walk reads only the rows' ids and versions (``xmin``): every ``UPDATE`` writes a new row version
with its own ``xmin``, so an order this process has rendered at that version (a polled first page)
is neither read nor rendered again, and a changed one never matches an old rendering. The others
are read by id and checked to be the version the walk saw, else the page is read whole (one
statement). Renderings are bounded like the other second-long caches (:class:`hub.db.TtlCache`).

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

import orjson
from asyncpg import Record

from hub.db import Conn, TtlCache
from hub.orders.query import OrderPage, count_orders, order_by, search_clause, where_clause
from hub.orders.view import order_public
from hub.schemas.order_views import OrderFilters
from hub.web.responses import dumps

WINDOW = 5_000
#: The column list pages select: the row version (``xmin``) first, then the order's columns.
ROW_VERSION_COLUMNS = "xmin AS row_xmin, *"
#: The columns that name a page's rows and their versions (the page's first read).
KEY_COLUMNS = "id, xmin AS row_xmin"
#: How many renderings one process keeps (about 1.5 KB each), and for how long.
RENDERED_MAX = 4096
RENDERED_TTL = 300.0

_RENDERED: TtlCache[tuple[str, str, int], orjson.Fragment] = TtlCache(max_entries=RENDERED_MAX)


def cached(organization_id: str, order_id: str, row_xmin: int) -> orjson.Fragment | None:
    """The rendering of that row version if this process has it."""
    hit = _RENDERED.get((organization_id, order_id, row_xmin), RENDERED_TTL)
    return None if hit is None else hit[0]


def rendered(row: Record) -> orjson.Fragment:
    """The public JSON of an order row selected with :data:`ROW_VERSION_COLUMNS`, rendered at most once."""
    organization_id, order_id, row_xmin = row["organization_id"], row["id"], row["row_xmin"]
    fragment = cached(organization_id, order_id, row_xmin)
    if fragment is None:
        fragment = orjson.Fragment(dumps(order_public(row)))
        _RENDERED.put((organization_id, order_id, row_xmin), fragment)
    return fragment


_ORDERS = f"SELECT {ROW_VERSION_COLUMNS} FROM orders WHERE"
_BY_IDS = f"{_ORDERS} organization_id = $1 AND id = ANY($2::varchar[])"


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
    keys = await _fetch(conn, f"SELECT {KEY_COLUMNS} FROM orders WHERE {where}", args, filters.sort, offset, limit)
    page = await _known(conn, organization_id, keys[:limit])
    if page is None:  # a row of the page changed between the two reads: read the page whole
        rows = await _fetch(conn, f"{_ORDERS} {where}", args, filters.sort, offset, limit)
        keys, page = rows, [rendered(row) for row in rows[:limit]]
    more = len(keys) > limit
    return await _page(conn, page, more, offset=offset, limit=limit, where=where, args=args, exact_count=exact_count)


async def _known(conn: Conn, organization_id: str, keys: list[Record]) -> list[orjson.Fragment] | None:
    """The renderings of the page's rows, reading only those not rendered yet; None if one changed meanwhile."""
    page = [cached(organization_id, key["id"], key["row_xmin"]) for key in keys]
    wanted = {key["id"]: key["row_xmin"] for key, fragment in zip(keys, page, strict=True) if fragment is None}
    fresh: dict[str, orjson.Fragment] = {}
    if wanted:
        for row in await conn.fetch(_BY_IDS, organization_id, list(wanted)):
            if row["row_xmin"] == wanted[row["id"]]:  # the version the first read saw, which matched the filters
                fresh[row["id"]] = rendered(row)
    out: list[orjson.Fragment] = []
    for key, fragment in zip(keys, page, strict=True):
        found = fresh.get(key["id"]) if fragment is None else fragment
        if found is None:
            return None
        out.append(found)
    return out


async def _fetch(conn: Conn, source: str, args: list[Any], sort: str, offset: int, limit: int) -> list[Record]:
    n = len(args)
    sql = f"{source} ORDER BY {order_by(sort)} LIMIT ${n + 1} OFFSET ${n + 2}"
    return await conn.fetch(sql, *args, limit + 1, offset)


async def _page(
    conn: Conn,
    page: list[orjson.Fragment],
    has_next: bool,
    *,
    offset: int,
    limit: int,
    where: str,
    args: list[Any],
    exact_count: bool,
) -> OrderPage:
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
            rows = await _fetch(conn, f"{_ORDERS} {where}", args, filters.sort, offset, limit)
            return _finish(rows, limit, total, True)
        # Many matches, deep page: walk the sort index rather than sort every match.
        for setting, value in (("enable_indexscan", "on"), ("enable_bitmapscan", "off"), ("enable_sort", "off")):
            await conn.execute(f"SET LOCAL {setting} = {value}")
        rows = await _fetch(conn, f"{_ORDERS} {where}", args, filters.sort, offset, limit)
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
    window = f"({_ORDERS} {base} ORDER BY {order_by(filters.sort)} LIMIT {WINDOW}) AS w"
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


def _finish(rows: list[Record], limit: int, total: int, exact: bool) -> OrderPage:
    return OrderPage([rendered(row) for row in rows[:limit]], total, exact, len(rows) > limit)

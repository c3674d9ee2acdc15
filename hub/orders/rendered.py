"""Orders' public JSON kept rendered while their row is unchanged, for the order list.

A list page is read from Postgres on every request (nothing shown is ever stale); what this saves
is turning each row into its public JSON again (``order_public``, then the JSON encoder), most of
the API's work for a polled first page. A rendering is keyed by the organization, the order id and
the row version's ``xmin``: every ``UPDATE`` writes a new row version with its own ``xmin``, so a
changed order never matches an old rendering. Bounded like the other second-long caches.
"""

from __future__ import annotations

import orjson
from asyncpg import Record

from hub.db import TtlCache
from hub.orders.view import order_public
from hub.web.responses import dumps

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
    key = (row["organization_id"], row["id"], row["row_xmin"])
    hit = _RENDERED.get(key, RENDERED_TTL)
    if hit is not None:
        return hit[0]
    fragment = orjson.Fragment(dumps(order_public(row)))
    _RENDERED.put(key, fragment)
    return fragment

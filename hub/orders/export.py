"""Exporting orders as CSV or NDJSON, streamed from a server-side cursor so memory stays flat.

The rows come from one ``REPEATABLE READ`` read-only transaction (a consistent snapshot however long
the export runs) through an asyncpg cursor that fetches :data:`BATCH` rows at a time; each batch is
rendered to one chunk of bytes and handed to the caller before the next is fetched.

No tenant can take the database from the others through exports (issue 20.1):

* :class:`ExportGate` caps the exports one API process runs at once (``HUB_EXPORT_MAX_CONCURRENT``),
  checked *before* a pool connection is taken, so exports can never hold the whole pool;
* :func:`export_orders` takes one of ``per_org_limit`` slots of the organization as a transaction-level
  Postgres advisory lock, so the per-organization cap holds across every API process and a slot is
  freed by the transaction's end, even when the process dies (nothing to expire, nothing to leak);
* beyond either cap, :class:`ExportBusy` (the API answers 429 with ``Retry-After``).
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import AsyncGenerator, Iterator, Mapping
from decimal import Decimal
from typing import Any

import orjson

from hub.db import Conn
from hub.money import quantize
from hub.orders import rows as orders
from hub.orders.query import select_sql
from hub.orders.view import MONEY_FIELDS, PUBLIC_FIELDS
from hub.schemas.order_views import OrderFilters

BATCH = 500
#: What a refused export is told to wait: exports last seconds to minutes, a slot frees when one ends.
RETRY_AFTER_SECONDS = 5
CSV_COLUMNS = tuple(f for f in PUBLIC_FIELDS if f != "status_history")  # history does not fit a cell
MEDIA_TYPES = {"csv": "text/csv", "ndjson": "application/x-ndjson"}


def _csv_cell(name: str, value: Any, order: Mapping[str, Any], row: Mapping[str, Any]) -> str:
    if value is None:
        return ""
    if name in MONEY_FIELDS:
        # The exact stored amount at the currency's precision ("45.65"), not a float's repr.
        return f"{quantize(Decimal(row[name]), row['currency']):f}"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _csv_chunk(rows: list[Mapping[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        order = orders.public(row)
        writer.writerow([_csv_cell(name, order[name], order, row) for name in CSV_COLUMNS])
    return buffer.getvalue().encode()


def _ndjson_chunk(rows: list[Mapping[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(_export_view(row)) + b"\n" for row in rows)


def _export_view(row: Mapping[str, Any]) -> dict[str, Any]:
    order = orders.public(row)
    order.pop("is_duplicate", None)  # meaningful only in a POST answer
    return order


class ExportBusy(Exception):
    """Too many exports at once (this process, or this organization across processes)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = RETRY_AFTER_SECONDS


class ExportGate:
    """At most ``limit`` exports at once in this process (it guards this process's pool)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one slot for the export's duration; :class:`ExportBusy` when none is free (never waits)."""
        if self.active >= self.limit:
            raise ExportBusy(f"at most {self.limit} exports run at once; try again shortly")
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


async def _take_org_slot(conn: Conn, organization_id: str, limit: int) -> bool:
    # One statement: the first free slot's lock is taken, the others are not even tried (LIMIT 1 stops
    # the scan), and the lock ends with the export's transaction.
    slot = await conn.fetchval(
        "SELECT s FROM generate_series(0, $2::int - 1) AS s "
        "WHERE pg_try_advisory_xact_lock(hashtextextended('orders.export:' || $1 || ':' || s, 0)) LIMIT 1",
        organization_id,
        limit,
    )
    return slot is not None


def csv_header() -> bytes:
    """The CSV header line."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(CSV_COLUMNS)
    return buffer.getvalue().encode()


async def export_orders(
    conn: Conn,
    *,
    organization_id: str,
    filters: OrderFilters,
    fmt: str,
    phone_region: str = "SA",
    per_org_limit: int | None = None,
) -> AsyncGenerator[bytes, None]:
    """Yield the export in chunks (CSV starts with its header). Close the iterator to stop early.

    With ``per_org_limit``, the first chunk raises :class:`ExportBusy` when the organization already
    runs that many exports (in any process).
    """
    sql, args = select_sql(organization_id, filters, phone_region=phone_region)
    render = _csv_chunk if fmt == "csv" else _ndjson_chunk
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        if per_org_limit is not None and not await _take_org_slot(conn, organization_id, per_org_limit):
            raise ExportBusy(f"this organization already runs {per_org_limit} exports; try again shortly")
        if fmt == "csv":
            yield csv_header()
        batch: list[Mapping[str, Any]] = []
        async for record in conn.cursor(sql, *args, prefetch=BATCH):
            batch.append(dict(record))
            if len(batch) >= BATCH:
                yield render(batch)
                batch = []
        if batch:
            yield render(batch)

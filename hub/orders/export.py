"""Exporting orders as CSV or NDJSON, streamed from a server-side cursor so memory stays flat.

The rows come from one ``REPEATABLE READ`` read-only transaction (a consistent snapshot however long
the export runs) through an asyncpg cursor that fetches :data:`BATCH` rows at a time; each batch is
rendered to one chunk of bytes and handed to the caller before the next is fetched.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncGenerator, Mapping
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
) -> AsyncGenerator[bytes, None]:
    """Yield the export in chunks (CSV starts with its header). Close the iterator to stop early."""
    sql, args = select_sql(organization_id, filters, phone_region=phone_region)
    render = _csv_chunk if fmt == "csv" else _ndjson_chunk
    if fmt == "csv":
        yield csv_header()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        batch: list[Mapping[str, Any]] = []
        async for record in conn.cursor(sql, *args, prefetch=BATCH):
            batch.append(dict(record))
            if len(batch) >= BATCH:
                yield render(batch)
                batch = []
        if batch:
            yield render(batch)

"""``/api/v1/orders``: the merchant-facing orders API (seed 004, with seed 000's behaviours).

Handlers stay thin: parse and validate, open the order's transaction on a pooled asyncpg connection,
call a service, answer in DESIGN's envelope, and wake the delivery worker after the commit.
Bulk and export routes are registered before ``/orders/{id}`` so ``bulk`` and ``export`` are never
taken for an order id.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from hub import queue
from hub.api._query import listed, page_of
from hub.api._router import Router
from hub.db import Conn
from hub.errors import HubError, ValidationFailed
from hub.keys import PG_POOL, REDIS, SETTINGS
from hub.orders import bulk as order_bulk
from hub.orders import changes as order_changes
from hub.orders import export as order_export
from hub.orders import idempotency as order_idempotency
from hub.orders import listing as order_list
from hub.orders import rows as orders
from hub.orders.create import create_order as create_one
from hub.orders.write import Written
from hub.schemas.order_views import BulkResult, ExportQuery, OrderOut, OrderQuery
from hub.schemas.orders import (
    MAX_BULK,
    BulkCreate,
    BulkDelete,
    BulkStatus,
    BulkStatusEnvelope,
    BulkStatusItem,
    CancelRequest,
    ItemsReplace,
    OrderCreate,
    OrderUpdate,
    StatusChange,
)
from hub.web.middleware import principal
from hub.web.responses import ok, parse_model, read_json, read_model

log = structlog.get_logger("hub.api.orders")
router = Router("orders")
Work = Callable[[Conn], Awaitable[tuple[web.Response, list[str]]]]


def _org(request: web.Request) -> str:
    return principal(request).organization_id


def _actor(request: web.Request) -> str:
    return principal(request).key_id


def _region(request: web.Request) -> str:
    return request.app[SETTINGS].default_phone_region


async def _wake(request: web.Request, delivery_ids: list[str]) -> None:
    # after the commit; best effort: a Redis hiccup must not turn a committed write into an error
    await queue.wake_deliveries(request.app[REDIS], delivery_ids)


async def _run(request: web.Request, payload: Any, work: Work, *, atomic: bool = True) -> web.Response:
    """Run ``work`` (in one transaction when ``atomic`` or keyed), honouring ``Idempotency-Key``."""
    header = request.headers.get("Idempotency-Key")
    key = order_idempotency.check_key(header) if header is not None else None
    async with request.app[PG_POOL].acquire() as conn:
        if key is None and not atomic:
            response, deliveries = await work(conn)
        else:
            async with conn.transaction():
                digest = order_idempotency.request_hash(request.method, request.path, payload)
                if key is not None:
                    stored = await order_idempotency.claim(conn, organization_id=_org(request), key=key, digest=digest)
                    if stored is not None:
                        return web.Response(
                            text=stored.body,
                            status=stored.status,
                            content_type="application/json",
                            headers={"Idempotent-Replayed": "true"},
                        )
                response, deliveries = await work(conn)
                if key is not None:
                    assert isinstance(response.body, bytes)
                    await order_idempotency.store(
                        conn,
                        organization_id=_org(request),
                        key=key,
                        digest=digest,
                        status=response.status,
                        body=response.body.decode(),
                    )
    await _wake(request, deliveries)
    return response


async def _change(request: web.Request, message: str, change: Callable[[Conn], Awaitable[Written]]) -> web.Response:
    async with request.app[PG_POOL].acquire() as conn, conn.transaction():
        written = await change(conn)
    await _wake(request, written.delivery_ids)
    return ok(written.order, message=message)


@router.route(
    "GET",
    "/api/v1/orders",
    summary="List orders (filters of both seeds; newest first by default)",
    query=OrderQuery,
    response=OrderOut,
    response_is_list=True,
)
async def list_orders(request: web.Request) -> web.Response:
    query = parse_model(OrderQuery, dict(request.query))
    page = page_of(request.query)
    async with request.app[PG_POOL].acquire() as conn:
        result = await order_list.list_orders(
            conn,
            organization_id=_org(request),
            filters=query.filters(),
            offset=page.offset,
            limit=page.per_page,
            exact_count=query.count == "exact",
            phone_region=_region(request),
        )
    return listed(
        result.orders,
        page,
        result.total,
        has_next=result.has_next,
        meta={"total_exact": result.total_exact},
        message="Orders retrieved successfully.",
    )


@router.route(
    "POST",
    "/api/v1/orders",
    summary="Create an order (upsert with source + external_id; identical order within 5 minutes → 200 duplicate)",
    body=OrderCreate,
    response=OrderOut,
    status=201,
    extra_statuses=(200, 409),
)
async def create_order(request: web.Request) -> web.Response:
    payload = await read_json(request)
    data = parse_model(OrderCreate, payload)
    settings = request.app[SETTINGS]

    async def work(conn: Conn) -> tuple[web.Response, list[str]]:
        written = await create_one(
            conn,
            organization_id=_org(request),
            data=data,
            actor=_actor(request),
            phone_region=settings.default_phone_region,
            duplicate_window=settings.duplicate_window_seconds,
        )
        if written.duplicate:
            return ok(written.order, message="Duplicate order: the existing order is returned."), []
        if written.created:
            return ok(written.order, status=201, message="Order created successfully."), written.delivery_ids
        return ok(written.order, message="Order updated successfully."), written.delivery_ids

    return await _run(request, payload, work)


@router.route(
    "GET",
    "/api/v1/orders/export",
    summary="Export orders matching the list filters as CSV or NDJSON (streamed)",
    query=ExportQuery,
    content_type="text/csv",
    also_content_types=("application/x-ndjson",),
)
async def export_orders(request: web.Request) -> web.StreamResponse:
    query = parse_model(ExportQuery, dict(request.query))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    response = web.StreamResponse(
        headers={
            "Content-Type": f"{order_export.MEDIA_TYPES[query.format]}; charset=utf-8",
            "Content-Disposition": f'attachment; filename="orders-{stamp}.{query.format}"',
        }
    )
    response.enable_chunked_encoding()
    async with request.app[PG_POOL].acquire() as conn:
        chunks = order_export.export_orders(
            conn,
            organization_id=_org(request),
            filters=query.filters(),
            fmt=query.format,
            phone_region=_region(request),
        )
        async with contextlib.aclosing(chunks):
            # The first chunk is read before the headers go out, so a failing query is still
            # answered with a proper error instead of a truncated 200.
            first = await anext(chunks, b"")
            await response.prepare(request)
            await response.write(first)
            async for chunk in chunks:
                await response.write(chunk)
    await response.write_eof()
    return response


@router.route(
    "POST",
    "/api/v1/orders/bulk",
    summary="Create up to 1,000 orders (per-item results; errors by index)",
    body=BulkCreate,
    response=BulkResult,
)
async def bulk_create(request: web.Request) -> web.Response:
    payload = await read_json(request)
    raw = payload.get("orders") if isinstance(payload, dict) else payload
    if not isinstance(raw, list) or not raw:
        raise ValidationFailed(details={"body": 'must be a non-empty array of orders (or {"orders": [...]})'})
    if len(raw) > MAX_BULK:
        raise ValidationFailed(details={"body": f"at most {MAX_BULK} orders per request, got {len(raw)}"})
    items: list[OrderCreate | HubError] = []
    for item in raw:
        try:
            items.append(parse_model(OrderCreate, item))
        except ValidationFailed as exc:
            items.append(exc)

    async def work(conn: Conn) -> tuple[web.Response, list[str]]:
        outcome = await order_bulk.bulk_create(
            conn, organization_id=_org(request), items=items, actor=_actor(request), phone_region=_region(request)
        )
        return ok(outcome.as_data(), message="Bulk create processed."), outcome.delivery_ids

    return await _run(request, payload, work, atomic=False)


@router.route(
    "PATCH",
    "/api/v1/orders/bulk/status",
    summary="Update the statuses of up to 1,000 orders (per-item results; errors by id)",
    body=BulkStatus,
    response=BulkResult,
)
async def bulk_status(request: web.Request) -> web.Response:
    envelope = await read_model(request, BulkStatusEnvelope)
    items: list[tuple[str, BulkStatusItem | HubError]] = []
    for index, raw in enumerate(envelope.updates):
        ident = raw.get("id")
        key = str(ident) if isinstance(ident, str | int) and not isinstance(ident, bool) else str(index)
        try:
            items.append((key, parse_model(BulkStatusItem, raw)))
        except ValidationFailed as exc:
            items.append((key, exc))
    async with request.app[PG_POOL].acquire() as conn:
        outcome = await order_bulk.bulk_status(conn, organization_id=_org(request), items=items, actor=_actor(request))
    await _wake(request, outcome.delivery_ids)
    return ok(outcome.as_data(), message="Bulk status update processed.")


@router.route(
    "DELETE",
    "/api/v1/orders/bulk",
    summary="Delete up to 1,000 orders (soft; stock of non-final orders restored; order.deleted)",
    body=BulkDelete,
    response=BulkResult,
)
async def bulk_delete(request: web.Request) -> web.Response:
    data = await read_model(request, BulkDelete)
    async with request.app[PG_POOL].acquire() as conn:
        outcome = await order_bulk.bulk_delete(conn, organization_id=_org(request), ids=data.ids)
    await _wake(request, outcome.delivery_ids)
    return ok(outcome.as_data(), message="Bulk delete processed.")


@router.route("GET", "/api/v1/orders/{id}", summary="Get an order (with status history)", response=OrderOut)
async def get_order(request: web.Request) -> web.Response:
    async with request.app[PG_POOL].acquire() as conn:
        order = await orders.get_order(conn, organization_id=_org(request), order_id=request.match_info["id"])
    return ok(order, message="Order retrieved successfully.")


@router.route(
    "PUT",
    "/api/v1/orders/{id}",
    summary="Update an order (merge: omitted fields keep their values; line items via /items)",
    body=OrderUpdate,
    response=OrderOut,
)
async def update_order(request: web.Request) -> web.Response:
    data = await read_model(request, OrderUpdate)
    return await _change(
        request,
        "Order updated successfully.",
        lambda conn: order_changes.update_order(
            conn,
            organization_id=_org(request),
            order_id=request.match_info["id"],
            data=data,
            actor=_actor(request),
            phone_region=_region(request),
        ),
    )


@router.route(
    "PATCH",
    "/api/v1/orders/{id}/status",
    summary="Change status (transition table), payment_status and fulfillment_status",
    body=StatusChange,
    response=OrderOut,
)
async def change_status(request: web.Request) -> web.Response:
    data = await read_model(request, StatusChange)
    return await _change(
        request,
        "Order status updated successfully.",
        lambda conn: order_changes.change_status(
            conn, organization_id=_org(request), order_id=request.match_info["id"], data=data, actor=_actor(request)
        ),
    )


@router.route(
    "POST",
    "/api/v1/orders/{id}/cancel",
    summary="Cancel an order (reason required; stock restored)",
    body=CancelRequest,
    response=OrderOut,
)
async def cancel_order(request: web.Request) -> web.Response:
    data = await read_model(request, CancelRequest)
    return await _change(
        request,
        "Order cancelled successfully.",
        lambda conn: order_changes.cancel_order(
            conn,
            organization_id=_org(request),
            order_id=request.match_info["id"],
            reason=data.reason,
            actor=_actor(request),
        ),
    )


@router.route(
    "PUT",
    "/api/v1/orders/{id}/items",
    summary="Replace the items of a pending order (stock adjusted)",
    body=ItemsReplace,
    response=OrderOut,
)
async def replace_items(request: web.Request) -> web.Response:
    data = await read_model(request, ItemsReplace)
    return await _change(
        request,
        "Order items updated successfully.",
        lambda conn: order_changes.replace_items(
            conn, organization_id=_org(request), order_id=request.match_info["id"], data=data, actor=_actor(request)
        ),
    )

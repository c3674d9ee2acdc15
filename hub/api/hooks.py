"""``POST /hooks/{source}/{connection_id}``: where platforms push their webhooks.

Order of work, for speed and safety: find the connection, verify the signature over the raw body
(401 and nothing stored on failure, counted per source), check the shop it names against the one the
connection is bound to (``hub.platforms.shops``; 401, counted, for another shop), then store the raw
request durably (group commit) and answer 200 only after that commit (200, not 202: Salla counts only
200/201 as delivered, and every platform accepts 200). Parsing and normalizing happen later, in a worker,
so a platform is acknowledged in milliseconds and a payload we cannot read is still kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel

from connectors import get_connector
from connectors.base import RawRequest, SignatureError
from hub.api._router import Router
from hub.errors import NotFound, Unauthorized
from hub.ingest.store import InboundItem, summarize_headers
from hub.keys import CONNECTION_CACHE, INBOUND, INGEST_POOL, REDIS, SETTINGS
from hub.ops.metrics import BAD_SIGNATURE, record_reject
from hub.platforms import connections, shops
from hub.web.responses import json_response

WRONG_SHOP = "wrong_shop"  # the reject reason counted for an event from another shop

router = Router("hooks")
#: One line per refused webhook (``hub up`` shows it on the console): the platform's side needs fixing.
log = structlog.get_logger("hub.hooks")


class HookAccepted(BaseModel):
    """The acknowledgement a platform gets: the stored event's id (None for WooCommerce's activation ping)."""

    id: str | None
    duplicate: bool


def _is_form_ping(request: web.Request, body: bytes) -> bool:
    """WooCommerce's unsigned activation ping: a form body ``webhook_id=…``."""
    return request.content_type == "application/x-www-form-urlencoded" and body.startswith(b"webhook_id=")


@router.route(
    "POST",
    "/hooks/{source}/{connection_id}",
    summary="Receive a platform webhook (signature verified, stored, then processed by a worker)",
    response=HookAccepted,
    status=200,
    auth=None,
    extra_statuses=(401, 404, 413, 503),
)
async def receive(request: web.Request) -> web.Response:
    source = request.match_info["source"]
    connection_id = request.match_info["connection_id"]
    connector = get_connector(source)
    if connector is None:
        log.warning("webhook_rejected", source=source, connection_id=connection_id, reason="unknown source")
        raise NotFound("Unknown source", details={"source": source})
    row = await _connection(request, connection_id)
    if row is None or row["source"] != source:
        log.warning("webhook_rejected", source=source, connection_id=connection_id, reason="unknown connection")
        raise NotFound("Unknown connection", details={"connection_id": connection_id})
    body = await request.read()
    raw = RawRequest(
        body=body,
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query),
        tolerance_seconds=request.app[SETTINGS].inbound_tolerance_seconds,
    )
    try:
        connector.verify(raw, row["secret"])
    except SignatureError as exc:
        log.warning("webhook_rejected", source=source, connection_id=connection_id, reason=f"bad signature: {exc}")
        await _count_reject(request, source, BAD_SIGNATURE)
        raise Unauthorized("Invalid webhook signature", details={"signature": str(exc)}) from exc
    if _is_form_ping(request, body):
        return json_response({"success": True, "data": {"id": None, "duplicate": False}, "message": "ping"})
    await _check_shop(request, connection_id, row, raw)
    item = InboundItem(
        organization_id=row["organization_id"],
        connection_id=connection_id,
        source=source,
        delivery_key=connector.delivery_id(raw),
        headers=summarize_headers(request.headers),
        query={k: ("[redacted]" if k == "token" else v) for k, v in request.query.items()},
        body=body,
    )
    stored = await request.app[INBOUND].store(item)
    return json_response(
        {"success": True, "data": {"id": stored.id, "duplicate": stored.duplicate}, "message": "accepted"}
    )


_TTL = 1.0


async def _connection(request: web.Request, connection_id: str) -> Any:
    """The connection row, cached for a second per app (a deleted or changed connection applies within 1 s).

    A cache, not state: losing it costs one query, and every process sees changes within the TTL.
    """
    cache = request.app[CONNECTION_CACHE]
    hit = cache.get(connection_id, _TTL)
    if hit is not None:
        return hit[0]
    row = await request.app[INGEST_POOL].fetchrow(
        "SELECT organization_id, source, secret, settings FROM connections WHERE id = $1 AND deleted_at IS NULL",
        connection_id,
    )
    cache.put(connection_id, row)
    return row


async def _check_shop(request: web.Request, connection_id: str, row: Any, raw: RawRequest) -> None:
    """401 (counted) for a verified event from another shop than the connection's; binds an unbound one."""
    source = row["source"]
    claimed = shops.shop_of_request(source, raw.headers, raw.body)
    if claimed is None:
        return  # this platform (or this event) names no shop
    bound = shops.bound_shop(source, row["settings"] or {})
    if bound is None:
        async with request.app[INGEST_POOL].acquire() as conn:
            bound = await connections.bind_shop(conn, connection_id=connection_id, shop=claimed)
        request.app[CONNECTION_CACHE].pop(connection_id)
    if not shops.same_shop(bound, claimed):
        await _count_reject(request, source, WRONG_SHOP)
        raise Unauthorized("Event from another shop", details={"shop": f"this connection is bound to {bound}"})


async def _count_reject(request: web.Request, source: str, reason: str) -> None:
    """Count a rejected request for the ops view; never let counting fail the answer."""
    with contextlib.suppress(Exception):  # a metrics hiccup must not turn a 401 into a 5xx
        await asyncio.wait_for(record_reject(request.app[REDIS], source, reason), timeout=0.5)

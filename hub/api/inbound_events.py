"""``/api/v1/inbound-events``: the raw events platforms sent, their errors, and re-running one."""

from __future__ import annotations

import structlog
from aiohttp import web

from hub.api._query import listed, page_of
from hub.api._router import Router
from hub.db import session_scope
from hub.ingest import events as svc
from hub.keys import PG_POOL, REDIS, SESSIONS
from hub.models import InboundEvent
from hub.web.middleware import principal
from hub.web.responses import ok, parse_model

router = Router("inbound-events")
log = structlog.get_logger("hub.inbound_events")


@router.route(
    "GET",
    "/api/v1/inbound-events",
    summary="List inbound events, newest first (filter by source, status, connection_id)",
    query=svc.InboundEventFilters,
    response=svc.InboundEventSummary,
    response_is_list=True,
)
async def list_events(request: web.Request) -> web.Response:
    page = page_of(request.query)
    filters = parse_model(svc.InboundEventFilters, dict(request.query))
    async with session_scope(request.app[SESSIONS]) as session:
        rows, total = await svc.list_events(
            session,
            organization_id=principal(request).organization_id,
            filters=filters,
            offset=page.offset,
            limit=page.per_page,
        )
    return listed([svc.event_summary(e) for e in rows], page, total, message="Inbound events retrieved.")


@router.route(
    "GET",
    "/api/v1/inbound-events/{id}",
    summary="Get an inbound event with its raw payload",
    response=svc.InboundEventOut,
)
async def get_event(request: web.Request) -> web.Response:
    async with session_scope(request.app[SESSIONS]) as session:
        event = await svc.get_event(
            session, organization_id=principal(request).organization_id, event_id=request.match_info["id"]
        )
    return ok(svc.event_out(event))


@router.route(
    "POST",
    "/api/v1/inbound-events/{id}/retry",
    summary="Re-run an inbound event through the ingest worker",
    response=svc.InboundEventOut,
    status=202,
)
async def retry_event(request: web.Request) -> web.Response:
    organization_id = principal(request).organization_id
    retried = await svc.retry_inbound_event(
        request.app[PG_POOL],
        request.app[REDIS],
        event_id=request.match_info["id"],
        organization_id=organization_id,
        origin="retry",
    )
    # the row as the retry reset it: the woken worker may already be processing it
    return ok(svc.event_out(InboundEvent(**retried.row)), status=202, message="Inbound event queued for processing.")

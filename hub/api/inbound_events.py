"""``/api/v1/inbound-events``: the raw events platforms sent, their errors, and re-running one."""

from __future__ import annotations

import time

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from hub import queue
from hub.api._query import listed, page_of
from hub.api._router import Router
from hub.db import session_scope
from hub.ingest import events as svc
from hub.keys import REDIS, SESSIONS
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
    event_id = request.match_info["id"]
    async with session_scope(request.app[SESSIONS]) as session:
        event = await svc.reset_for_retry(
            session, organization_id=principal(request).organization_id, event_id=event_id
        )
    # A fresh job id per retry: arq would drop a job whose id it still remembers.
    job_id = f"retry:{event_id}:{int(time.time() * 1000)}"
    try:
        await queue.enqueue(request.app[REDIS], svc.INGEST_JOB, [event_id], job_id=job_id)
    except (RedisError, OSError) as exc:
        # The row is committed as `received`, so the sweeper runs it anyway; the retry is accepted.
        log.warning("retry_wake_failed", event_id=event_id, error=repr(exc))
    return ok(svc.event_out(event), status=202, message="Inbound event queued for processing.")

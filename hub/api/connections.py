"""``/api/v1/connections``: link an organization to a source and get the URL it posts to."""

from __future__ import annotations

import time
from datetime import datetime

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from hub import queue, ssrf
from hub.api._query import listed, page_of
from hub.api._router import Router
from hub.db import session_scope
from hub.errors import ValidationFailed
from hub.keys import PG_POOL, REDIS, SESSIONS, SETTINGS
from hub.platforms import connections as svc
from hub.platforms import sync_state
from hub.web.middleware import principal
from hub.web.responses import ok, read_model

log = structlog.get_logger("hub.api")

router = Router("connections")


def public_base_url(request: web.Request) -> str:
    """``HUB_PUBLIC_URL`` when set (the hub behind a proxy), else the scheme, host and port asked for."""
    configured = request.app[SETTINGS].public_url
    return configured.rstrip("/") if configured else f"{request.scheme}://{request.host}"


@router.route(
    "POST",
    "/api/v1/connections",
    summary="Create a connection (its secret is shown only in this answer)",
    body=svc.ConnectionCreate,
    response=svc.ConnectionOut,
    status=201,
)
async def create_connection(request: web.Request) -> web.Response:
    data = await read_model(request, svc.ConnectionCreate)
    settings = request.app[SETTINGS]
    policy = ssrf.AddressPolicy.from_settings(settings)
    await svc.check_remote_urls(data.settings, policy=policy)
    async with session_scope(request.app[SESSIONS]) as session:
        connection = await svc.create_connection(session, organization_id=principal(request).organization_id, data=data)
    if connection.pull:
        await _enqueue_sync(request, connection.id)
    out = svc.connection_out(connection, base_url=public_base_url(request), reveal_secret=True)
    message = "Connection created. Keep the secret: it is not shown again."
    if connection.pull:
        message += " Subscribing at the platform and backfilling its orders."
    return ok(out, status=201, message=message)


async def _enqueue_sync(request: web.Request, connection_id: str, *args: str | None) -> None:
    """Wake a worker for the connection's sync; without Redis the scheduler finds it due anyway."""
    try:
        job_id = f"platform-sync:{connection_id}:{time.time_ns()}"
        await queue.enqueue(request.app[REDIS], queue.PLATFORM_SYNC_JOB, connection_id, *args, job_id=job_id)
    except (RedisError, OSError) as exc:
        log.warning("platform_sync_enqueue_failed", connection_id=connection_id, error=repr(exc))


class SyncRequest(BaseModel):
    """Body of ``POST /api/v1/connections/{id}/sync`` (optional)."""

    model_config = ConfigDict(extra="forbid")

    since: datetime | None = Field(default=None, description="Pull orders changed since (ISO 8601)")


async def _pullable(request: web.Request) -> str:
    connection_id = request.match_info["id"]
    async with session_scope(request.app[SESSIONS]) as session:
        connection = await svc.get_connection(
            session, organization_id=principal(request).organization_id, connection_id=connection_id
        )
    if not connection.pull:
        raise ValidationFailed(
            "This connection has no platform credentials",
            details={"settings": f"add the {connection.source} API credentials to pull or subscribe"},
        )
    return connection_id


@router.route(
    "POST",
    "/api/v1/connections/{id}/sync",
    summary="Pull the platform's orders now (backfill or reconcile); 202, progress in data.sync",
    body=SyncRequest,
    response=svc.ConnectionOut,
    status=202,
)
async def sync_connection(request: web.Request) -> web.Response:
    body = await read_model(request, SyncRequest) if request.body_exists else SyncRequest()
    connection_id = await _pullable(request)
    async with request.app[PG_POOL].acquire() as conn:
        await sync_state.request_sync(conn, connection_id)
    since = body.since.isoformat() if body.since else None
    await _enqueue_sync(request, connection_id, since)
    return await _answer(request, connection_id, "Sync requested.")


@router.route(
    "POST",
    "/api/v1/connections/{id}/subscribe",
    summary="Register the hub's inbound URL at the platform again; 202, result in data.subscriptions",
    response=svc.ConnectionOut,
    status=202,
    extra_statuses=(422,),
)
async def subscribe_connection(request: web.Request) -> web.Response:
    connection_id = await _pullable(request)
    await _enqueue_sync(request, connection_id, None, "subscribe")
    return await _answer(request, connection_id, "Subscription requested.")


async def _answer(request: web.Request, connection_id: str, message: str) -> web.Response:
    async with session_scope(request.app[SESSIONS]) as session:
        connection = await svc.get_connection(
            session, organization_id=principal(request).organization_id, connection_id=connection_id
        )
    return ok(svc.connection_out(connection, base_url=public_base_url(request)), status=202, message=message)


@router.route(
    "GET", "/api/v1/connections", summary="List connections", response=svc.ConnectionOut, response_is_list=True
)
async def list_connections(request: web.Request) -> web.Response:
    page = page_of(request.query)
    async with session_scope(request.app[SESSIONS]) as session:
        rows, total = await svc.list_connections(
            session,
            organization_id=principal(request).organization_id,
            offset=page.offset,
            limit=page.per_page,
            source=request.query.get("source") or None,
        )
    base = public_base_url(request)
    return listed(
        [svc.connection_out(c, base_url=base) for c in rows], page, total, message="Connections retrieved successfully."
    )


@router.route("GET", "/api/v1/connections/{id}", summary="Get a connection", response=svc.ConnectionOut)
async def get_connection(request: web.Request) -> web.Response:
    async with session_scope(request.app[SESSIONS]) as session:
        connection = await svc.get_connection(
            session, organization_id=principal(request).organization_id, connection_id=request.match_info["id"]
        )
    return ok(svc.connection_out(connection, base_url=public_base_url(request)))


@router.route(
    "DELETE",
    "/api/v1/connections/{id}",
    summary="Delete a connection (its inbound URL then answers 404; past events and orders stay)",
    response=svc.ConnectionOut,
)
async def delete_connection(request: web.Request) -> web.Response:
    async with session_scope(request.app[SESSIONS]) as session:
        connection = await svc.delete_connection(
            session, organization_id=principal(request).organization_id, connection_id=request.match_info["id"]
        )
    return ok(svc.connection_out(connection, base_url=public_base_url(request)), message="Connection deleted.")

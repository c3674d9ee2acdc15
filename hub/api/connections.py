"""``/api/v1/connections``: link an organization to a source and get the URL it posts to."""

from __future__ import annotations

from aiohttp import web

from hub import ssrf
from hub.api._query import list_meta, page_of
from hub.api._router import Router
from hub.db import session_scope
from hub.keys import SESSIONS, SETTINGS
from hub.platforms import connections as svc
from hub.web.middleware import principal
from hub.web.responses import ok, read_model

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
    out = svc.connection_out(connection, base_url=public_base_url(request), reveal_secret=True)
    return ok(out, status=201, message="Connection created. Keep the secret: it is not shown again.")


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
    return ok(
        [svc.connection_out(c, base_url=base) for c in rows],
        meta=list_meta(page, total),
        message="Connections retrieved successfully.",
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

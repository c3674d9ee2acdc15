"""``/api/v1/webhooks``: merchant endpoints, their secrets, test events, deliveries and recovery."""

from __future__ import annotations

from aiohttp import web

from hub.api._query import listed, page_of
from hub.api._router import Router
from hub.api.deliveries import wake
from hub.db import session_scope
from hub.delivery import endpoints as svc
from hub.delivery import ledger
from hub.delivery.targets import TargetPolicy
from hub.keys import SESSIONS, SETTINGS
from hub.web.middleware import principal
from hub.web.responses import ok, parse_model, read_json, read_model

router = Router("webhooks")


def _policy(request: web.Request) -> TargetPolicy:
    settings = request.app[SETTINGS]
    return TargetPolicy(allow_loopback=settings.webhook_allow_loopback, allow_private=settings.webhook_allow_private)


def _org(request: web.Request) -> str:
    return principal(request).organization_id


@router.route(
    "POST",
    "/api/v1/webhooks",
    summary="Register a webhook endpoint (its secret is in data.secret)",
    body=svc.WebhookCreate,
    response=svc.WebhookCreated,
    status=201,
)
async def create_webhook(request: web.Request) -> web.Response:
    data = await read_model(request, svc.WebhookCreate)
    async with session_scope(request.app[SESSIONS]) as session:
        endpoint = await svc.create_webhook(session, organization_id=_org(request), data=data, policy=_policy(request))
    return ok(svc.webhook_created(endpoint), status=201, message="Webhook created.")


@router.route(
    "GET",
    "/api/v1/webhooks",
    summary="List webhook endpoints (filter: enabled)",
    query=svc.WebhookFilters,
    response=svc.WebhookOut,
    response_is_list=True,
)
async def list_webhooks(request: web.Request) -> web.Response:
    page = page_of(request.query)
    filters = parse_model(svc.WebhookFilters, dict(request.query))
    async with session_scope(request.app[SESSIONS]) as session:
        rows, total = await svc.list_webhooks(
            session, organization_id=_org(request), offset=page.offset, limit=page.per_page, enabled=filters.enabled
        )
    return listed([svc.webhook_out(e) for e in rows], page, total, message="Webhooks retrieved.")


@router.route("GET", "/api/v1/webhooks/{id}", summary="Get a webhook endpoint", response=svc.WebhookOut)
async def get_webhook(request: web.Request) -> web.Response:
    async with session_scope(request.app[SESSIONS]) as session:
        endpoint = await svc.get_webhook(session, organization_id=_org(request), webhook_id=request.match_info["id"])
    return ok(svc.webhook_out(endpoint), message="Webhook retrieved.")


@router.route(
    "PUT",
    "/api/v1/webhooks/{id}",
    summary="Update a webhook endpoint (merge; enabled: true re-enables a disabled one)",
    body=svc.WebhookUpdate,
    response=svc.WebhookOut,
)
async def update_webhook(request: web.Request) -> web.Response:
    data = await read_model(request, svc.WebhookUpdate)
    async with session_scope(request.app[SESSIONS]) as session:
        endpoint = await svc.update_webhook(
            session,
            organization_id=_org(request),
            webhook_id=request.match_info["id"],
            data=data,
            policy=_policy(request),
        )
    return ok(svc.webhook_out(endpoint), message="Webhook updated.")


@router.route("DELETE", "/api/v1/webhooks/{id}", summary="Delete a webhook endpoint")
async def delete_webhook(request: web.Request) -> web.Response:
    webhook_id = request.match_info["id"]
    async with session_scope(request.app[SESSIONS]) as session:
        await svc.delete_webhook(session, organization_id=_org(request), webhook_id=webhook_id)
    return ok({"id": webhook_id, "deleted": True}, message="Webhook deleted.")


@router.route("GET", "/api/v1/webhooks/{id}/secret", summary="Get the signing secret(s)", response=svc.WebhookSecret)
async def get_secret(request: web.Request) -> web.Response:
    async with session_scope(request.app[SESSIONS]) as session:
        secret = await svc.get_secret(session, organization_id=_org(request), webhook_id=request.match_info["id"])
    return ok(secret)


@router.route(
    "POST",
    "/api/v1/webhooks/{id}/rotate-secret",
    summary="Rotate the signing secret; the old one keeps signing during the overlap",
    body=svc.RotateSecret,
    response=svc.WebhookSecret,
)
async def rotate_secret(request: web.Request) -> web.Response:
    # The body is optional: an empty POST generates the new secret.
    body = parse_model(svc.RotateSecret, await read_json(request)) if request.body_exists else svc.RotateSecret()
    async with session_scope(request.app[SESSIONS]) as session:
        secret = await svc.rotate_secret(
            session,
            organization_id=_org(request),
            webhook_id=request.match_info["id"],
            overlap_seconds=request.app[SETTINGS].webhook_secret_overlap_seconds,
            new_secret=body.secret,
        )
    return ok(secret, message="Secret rotated.")


@router.route(
    "POST",
    "/api/v1/webhooks/{id}/test",
    summary="Send a webhook.test event through the real delivery path",
    response=ledger.DeliveryOut,
    status=202,
    extra_statuses=(409,),
)
async def send_test(request: web.Request) -> web.Response:
    async with session_scope(request.app[SESSIONS]) as session:
        delivery = await svc.send_test_event(
            session, organization_id=_org(request), webhook_id=request.match_info["id"]
        )
    await wake(request, [delivery.id])
    return ok(ledger.delivery_out(delivery), status=202, message="Test event queued.")


@router.route(
    "GET",
    "/api/v1/webhooks/{id}/deliveries",
    summary="List an endpoint's deliveries, newest first (filter: status, event_type)",
    query=ledger.DeliveryFilters,
    response=ledger.DeliveryOut,
    response_is_list=True,
)
async def list_deliveries(request: web.Request) -> web.Response:
    page = page_of(request.query)
    filters = parse_model(ledger.DeliveryFilters, dict(request.query))
    async with session_scope(request.app[SESSIONS]) as session:
        rows, total = await ledger.list_deliveries(
            session,
            organization_id=_org(request),
            webhook_id=request.match_info["id"],
            offset=page.offset,
            limit=page.per_page,
            filters=filters,
        )
    return listed([ledger.delivery_out(d) for d in rows], page, total, message="Deliveries retrieved.")


@router.route(
    "POST",
    "/api/v1/webhooks/{id}/recover",
    summary="Re-send every failed delivery created since a time",
    body=ledger.RecoverRequest,
    response=ledger.RecoverResult,
    status=202,
    extra_statuses=(409,),
)
async def recover(request: web.Request) -> web.Response:
    body = await read_model(request, ledger.RecoverRequest)
    async with session_scope(request.app[SESSIONS]) as session:
        ids = await ledger.recover_deliveries(
            session,
            organization_id=_org(request),
            webhook_id=request.match_info["id"],
            since=body.since,
            until=body.until,
        )
    await wake(request, ids)
    return ok(ledger.RecoverResult(count=len(ids)), status=202, message=f"{len(ids)} deliveries queued.")

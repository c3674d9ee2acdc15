"""``/api/v1/deliveries``: one delivery with its attempts, and retrying it."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from hub import queue
from hub.api._router import Router
from hub.db import session_scope
from hub.delivery import ledger as svc
from hub.keys import PG_POOL, REDIS, SESSIONS
from hub.web.middleware import principal
from hub.web.responses import ok

router = Router("deliveries")


async def wake(request: web.Request, delivery_ids: Sequence[str]) -> None:
    """Wake the delivery worker for committed rows; best effort (the sweeper covers a lost wake-up)."""
    await queue.wake_deliveries(request.app[REDIS], delivery_ids)


@router.route("GET", "/api/v1/deliveries/{id}", summary="Get a delivery with its attempts", response=svc.DeliveryDetail)
async def get_delivery(request: web.Request) -> web.Response:
    async with session_scope(request.app[SESSIONS]) as session:
        detail = await svc.get_delivery(
            session, organization_id=principal(request).organization_id, delivery_id=request.match_info["id"]
        )
    return ok(detail)


@router.route(
    "POST",
    "/api/v1/deliveries/{id}/retry",
    summary="Send a failed or pending delivery again now (same webhook-id)",
    response=svc.DeliveryOut,
    status=202,
    extra_statuses=(409,),
)
async def retry(request: web.Request) -> web.Response:
    organization_id = principal(request).organization_id
    retried = await svc.retry_delivery(
        request.app[PG_POOL],
        request.app[REDIS],
        delivery_id=request.match_info["id"],
        organization_id=organization_id,
        origin="api",
    )
    # the row as the retry reset it: the woken worker may already be sending it
    return ok(svc.DeliveryOut.model_validate(retried.row), status=202, message="Delivery queued.")

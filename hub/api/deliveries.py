"""``/api/v1/deliveries``: one delivery with its attempts, and retrying it."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import uuid4

import structlog
from aiohttp import web

from hub import queue
from hub.api._router import Router
from hub.db import session_scope
from hub.delivery import ledger as svc
from hub.delivery.outbox import DELIVER_JOB
from hub.keys import REDIS, SESSIONS
from hub.web.middleware import principal
from hub.web.responses import ok

router = Router("deliveries")
log = structlog.get_logger("hub.deliveries")

#: Recovering thousands of deliveries wakes this many batches; the woken jobs claim the rest.
WAKE_CHUNKS = 8
WAKE_CHUNK_SIZE = 200


async def wake(request: web.Request, delivery_ids: Sequence[str]) -> None:
    """Wake the delivery worker for committed rows; best effort (the sweeper covers a lost wake-up)."""
    ids = list(delivery_ids)
    for start in range(0, min(len(ids), WAKE_CHUNKS * WAKE_CHUNK_SIZE), WAKE_CHUNK_SIZE):
        try:
            # A fresh job id each time: arq silently drops a job whose id it still holds.
            chunk = ids[start : start + WAKE_CHUNK_SIZE]
            await queue.enqueue(request.app[REDIS], DELIVER_JOB, chunk, job_id=f"api:{uuid4().hex}")
        except Exception as exc:  # Redis down: the rows are committed and due, the sweeper sends them
            log.warning("delivery_wake_failed", count=len(ids), error=repr(exc))
            return


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
async def retry_delivery(request: web.Request) -> web.Response:
    async with session_scope(request.app[SESSIONS]) as session:
        delivery = await svc.retry_delivery(
            session, organization_id=principal(request).organization_id, delivery_id=request.match_info["id"]
        )
    await wake(request, [delivery.id])
    return ok(svc.delivery_out(delivery), status=202, message="Delivery queued.")

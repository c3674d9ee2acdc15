"""``/metrics`` for Prometheus, and the middleware counting this process's HTTP requests.

Unauthenticated unless ``HUB_METRICS_TOKEN`` is set (then ``Authorization: Bearer <token>``);
protect it at the network edge otherwise. What the figures mean: :mod:`hub.ops.metrics`.
"""

from __future__ import annotations

import hmac
import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from hub.api._router import Router
from hub.errors import Unauthorized
from hub.keys import HTTP_METRICS, PG_POOL, REDIS, SETTINGS
from hub.ops import connections as ops_connections
from hub.ops import stats as ops_stats
from hub.ops.metrics import render

router = Router("metrics")


def _check_token(request: web.Request) -> None:
    token = request.app[SETTINGS].metrics_token
    if token is None:
        return
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.get_secret_value().encode()):
        raise Unauthorized("Missing or invalid metrics token", details={"authorization": "Bearer <metrics token>"})


@router.route("GET", "/metrics", summary="Prometheus metrics (text format)", auth=None, content_type="text/plain")
async def metrics(request: web.Request) -> web.Response:
    _check_token(request)
    snapshot = await ops_stats.snapshot(request.app[PG_POOL], request.app[REDIS])
    body = render(request.app.get(HTTP_METRICS), snapshot)
    body += ops_connections.render(await ops_connections.connection_totals(request.app[PG_POOL]))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4, "Cache-Control": "no-store"})


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def http_metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request by method, route template (never the raw path) and final status."""
    counters = request.app.get(HTTP_METRICS)
    if counters is None:
        return await handler(request)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        counters.observe(request.method, _route(request), status, time.perf_counter() - started)

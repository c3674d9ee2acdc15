"""The application factory: ``create_app(settings)`` wires routes, middlewares and resources.

It does no I/O itself; resources open in ``cleanup_ctx`` when the app starts, so tests build the
app exactly as production does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from hub import db, queue, ssrf, ssrf_http
from hub.api import connections, contacts, health, hooks, inbound_events, openapi, orders, products
from hub.api import deliveries as deliveries_api
from hub.api import metrics as metrics_api
from hub.api import ops as ops_api
from hub.api import webhooks as webhooks_api
from hub.api._router import Router
from hub.ingest.store import GroupCommitter
from hub.keys import (
    CONNECTION_CACHE,
    ENGINE,
    EXPORTS,
    HTTP,
    HTTP_METRICS,
    INBOUND,
    INGEST_POOL,
    KEY_CACHE,
    LIMITER,
    PG_POOL,
    REDIS,
    ROUTERS,
    SESSIONS,
    SETTINGS,
)
from hub.ops.metrics import HttpMetrics
from hub.orders.export import ExportGate
from hub.settings import Settings
from hub.web.middleware import _MAX_BODY, auth_middleware, error_middleware, rate_limit_middleware
from hub.web.ratelimit import Limiter

Ctx = Callable[[web.Application], AsyncIterator[None]]


def routers() -> list[Router]:
    """Every API module's router, in the order routes are matched."""
    return [
        health.router,
        openapi.router,
        contacts.router,
        orders.router,
        products.router,
        hooks.router,
        connections.router,
        inbound_events.router,
        webhooks_api.router,
        deliveries_api.router,
        ops_api.router,
        metrics_api.router,
    ]


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    assert settings.database_url is not None, "HUB_DATABASE_URL is required"
    engine = db.create_engine(settings.database_url)
    app[ENGINE] = engine
    app[SESSIONS] = db.session_factory(engine)
    app[PG_POOL] = await db.create_pool(settings.database_url, max_size=settings.database_pool_size)
    # A pool of its own, so no stalled API path (an export, a slow query) can starve signed webhooks.
    app[INGEST_POOL] = await db.create_pool(settings.database_url, max_size=settings.ingest_pool_size)
    yield
    await app[INGEST_POOL].close()
    await app[PG_POOL].close()
    await engine.dispose()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    assert settings.redis_url is not None, "HUB_REDIS_URL is required"
    app[REDIS] = await queue.connect(settings.redis_url)
    yield
    await app[REDIS].aclose()


async def _inbound(app: web.Application) -> AsyncIterator[None]:
    # Each commit notifies the workers in the same statement: no Redis round trip on the way to a 202
    # or to the worker, and no wake-up for a commit that failed (workers/main.py listens).
    committer = GroupCommitter(app[INGEST_POOL], notify=True)
    committer.start()
    app[INBOUND] = committer
    yield
    await committer.close()


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    # Every outgoing call goes through the one SSRF guard, this shared client included.
    settings = app[SETTINGS]
    policy = ssrf.AddressPolicy.from_settings(settings)
    app[HTTP] = ssrf_http.pinned_session(policy)
    yield
    await app[HTTP].close()


def create_app(settings: Settings, *, overrides: dict[web.AppKey[Any], Any] | None = None) -> web.Application:
    """Build the hub's web application for ``settings``; ``overrides`` replaces app resources (tests)."""
    app = web.Application(
        middlewares=[metrics_api.http_metrics_middleware, error_middleware, auth_middleware, rate_limit_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[HTTP_METRICS] = HttpMetrics()
    app[LIMITER] = Limiter.from_settings(settings)
    app[CONNECTION_CACHE] = db.TtlCache()
    app[KEY_CACHE] = db.TtlCache()
    app[EXPORTS] = ExportGate(settings.export_max_concurrent)
    app[ROUTERS] = routers()
    app[_MAX_BODY] = settings.max_body_bytes
    for key, value in (overrides or {}).items():
        app[key] = value
    for ctx in (_database, _redis, _inbound, _http_client):
        app.cleanup_ctx.append(ctx)
    for router in app[ROUTERS]:
        app.router.add_routes(router.routes)
    return app

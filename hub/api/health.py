"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from aiohttp import web

from hub.api._router import Router
from hub.keys import PG_POOL, REDIS
from hub.web.responses import json_response

router = Router("health")


@router.route("GET", "/healthz", summary="Liveness: the process answers", auth=None, raw=True)
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _check(name: str, probe: asyncio.Future[object] | object) -> tuple[str, str | None]:
    try:
        await asyncio.wait_for(probe, timeout=2.0)  # type: ignore[arg-type]
    except Exception as exc:  # any failure means "not ready", named
        return name, f"{type(exc).__name__}: {exc}"[:300]
    return name, None


@router.route(
    "GET", "/readyz", summary="Readiness: Postgres and Redis answer", auth=None, extra_statuses=(503,), raw=True
)
async def readyz(request: web.Request) -> web.Response:
    results = await asyncio.gather(
        _check("postgres", request.app[PG_POOL].fetchval("SELECT 1")),
        _check("redis", request.app[REDIS].ping()),
    )
    failing = {name: err for name, err in results if err is not None}
    if failing:
        return json_response(
            {"status": "unavailable", "failing": failing, "checks": {n: e is None for n, e in results}}, status=503
        )
    return json_response({"status": "ok", "checks": {name: True for name, _ in results}})

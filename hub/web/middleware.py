"""Request middlewares: DESIGN's error shape everywhere, and Bearer-key auth on ``/api/v1``."""

from __future__ import annotations

import asyncio

import asyncpg
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from hub.errors import BadRequest, HubError, RateLimited, RequestTimeout, Unauthorized, Unavailable
from hub.keys import KEY_CACHE, LIMITER, PG_POOL, PRINCIPAL, SETTINGS, Principal
from hub.tenancy.api_keys import authenticate, hash_key
from hub.web.responses import error_body, json_response, validation_details

log = structlog.get_logger("hub.http")

#: Seconds an active key is trusted without a lookup (a revoked key stops working within this).
KEY_TTL = 1.0

_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    # Postgres shutting down under a live session: the session gets 57P01/57P02, and a pooled
    # connection broken mid-query fails its reset with InternalClientError (found by
    # tests/faults/test_crashes.py, stopping Postgres during a burst: these were 500s).
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.InternalClientError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    OperationalError,
    InterfaceError,
    RedisConnectionError,
    RedisTimeoutError,
    OSError,  # sockets: ConnectionError and the rest
    asyncio.TimeoutError,
)

_HTTP_ERRORS = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    413: "Payload too large",
}


def _error(status: int, error: str, details: dict[str, object] | None = None, **headers: str) -> web.Response:
    return json_response(error_body(status, error, details), status=status, headers=headers or None)


def _is_unavailable(exc: BaseException) -> bool:
    """A lost or refused Postgres/Redis connection, also when SQLAlchemy wrapped the driver's error."""
    cause: BaseException | None = exc
    for _ in range(4):
        if cause is None:
            return False
        if isinstance(cause, _UNAVAILABLE):
            return True
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
        cause = getattr(cause, "orig", None) or cause.__cause__
    return False


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every error in DESIGN's shape; never an HTML page or a traceback."""
    try:
        _refuse_nul(request)
        await _read_body(request)
        return await handler(request)
    except RequestTimeout as exc:
        return await _cut_off(request, _error(exc.status, exc.error, exc.details))
    except RateLimited as exc:
        return _error(exc.status, exc.error, exc.details, **{"Retry-After": str(exc.retry_after)})
    except HubError as exc:
        return _error(exc.status, exc.error, exc.details)
    except ValidationError as exc:
        return _error(422, "Validation failed", dict(validation_details(exc)))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = _HTTP_ERRORS.get(exc.status, exc.reason)
        details: dict[str, object] = {}
        if exc.status == 405:
            details = {"method": request.method}
        elif exc.status == 404:
            details = {"path": request.path}
        elif exc.status == 413:
            details = {"max_bytes": request.app[_MAX_BODY]}
        return _error(exc.status, error, details)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if _is_unavailable(exc):
            log.warning("dependency_unavailable", path=request.path, error=repr(exc))
            return _error(503, Unavailable.error, {"reason": "database or queue unavailable"}, **{"Retry-After": "5"})
        log.exception("unhandled_error", path=request.path, method=request.method)
        return _error(500, "Internal server error")


_MAX_BODY = web.AppKey("max_body_bytes", int)


async def _cut_off(request: web.Request, response: web.Response) -> web.Response:
    """Answer a client too slow to send its body, then drop the connection without reading the rest
    (aiohttp would otherwise linger up to 10 s draining it, so the slow client held on that long)."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response


def _refuse_nul(request: web.Request) -> None:
    """400 for a NUL character in the path or the query: Postgres text cannot hold one (it was a 500)."""
    if "\x00" in request.path:
        raise BadRequest("Malformed request", details={"path": "contains a NUL character"})
    for name, value in request.query.items():
        if "\x00" in name or "\x00" in value:
            raise BadRequest("Malformed request", details={f"query.{name}": "contains a NUL character"})


async def _read_body(request: web.Request) -> None:
    """Read the whole body up front, within ``http_body_timeout_seconds`` and the size limit, on every route.

    Handlers then get it from aiohttp's cache (``request.read()``). A client trickling its body (slow
    loris) is cut off with 408 instead of holding a handler, and what it holds, for as long as it
    likes; a body over the limit is 413 even on a route that would never have read it.
    """
    if not request.body_exists:
        return
    if request.content.is_eof():  # all of it arrived with the headers (most webhooks): nothing to wait for
        await request.read()
        return
    timeout = request.app[SETTINGS].http_body_timeout_seconds
    try:
        # asyncio.timeout, not wait_for: no task per request (wait_for's was ~7 % of the API's CPU at full load)
        async with asyncio.timeout(timeout):
            await request.read()
    except TimeoutError as exc:
        raise RequestTimeout(details={"body": f"not received within {timeout:g} s"}) from exc


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``Authorization: Bearer sk_…`` on every ``/api/v1`` route; 401 for missing, malformed or revoked."""
    if not request.path.startswith("/api/v1"):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthorized("Missing API key", details={"authorization": "send 'Authorization: Bearer <key>'"})
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Malformed Authorization header", details={"authorization": "expected 'Bearer <key>'"})
    request[PRINCIPAL] = await _principal(request.app, token.strip())
    return await handler(request)


async def _principal(app: web.Application, key: str) -> Principal:
    """The key's principal: looked up, or reused for :data:`KEY_TTL` s (only keys found active are kept)."""
    cache, digest = app[KEY_CACHE], hash_key(key)
    hit = cache.get(digest, KEY_TTL)
    if hit is not None:
        return hit[0]
    principal = await authenticate(app[PG_POOL], key=key)
    if principal is None:
        cache.pop(digest)
        raise Unauthorized("Invalid or revoked API key", details={"authorization": "unknown key"})
    cache.put(digest, principal)
    return principal


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Per-key limit on ``/api/v1`` (after auth), per-connection limit on ``/hooks``."""
    limiter = request.app[LIMITER]
    if request.path.startswith("/api/v1"):
        who = request.get(PRINCIPAL)
        if who is not None:
            await limiter.check(limiter.per_key, "key", who.key_id)
    elif request.path.startswith("/hooks/"):
        connection_id = request.match_info.get("connection_id")
        if connection_id:
            await limiter.check(limiter.per_connection, "hook", connection_id)
    return await handler(request)


def principal(request: web.Request) -> Principal:
    """The authenticated caller of an ``/api/v1`` request."""
    return request[PRINCIPAL]

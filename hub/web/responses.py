"""JSON in and out: DESIGN's success envelope, orjson rendering, strict body parsing, guarded streams."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import orjson
import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from hub.errors import BadRequest, ValidationFailed

M = TypeVar("M", bound=BaseModel)
log = structlog.get_logger("hub.http")

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """Render ``value`` as JSON bytes (UTC ``Z`` timestamps, Decimals as numbers)."""
    return orjson.dumps(value, default=_default, option=_OPTIONS)


def iso(value: datetime | None) -> str | None:
    """``2024-01-15T10:30:00.123456Z`` or None."""
    return None if value is None else str(orjson.loads(dumps(value)))


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response with our renderer."""
    return web.Response(body=dumps(body), status=status, content_type="application/json", headers=headers)


def ok(
    data: Any,
    *,
    status: int = 200,
    message: str | None = None,
    meta: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """DESIGN's success envelope: ``{"success": true, "data": …, "meta": …, "message": …}``."""
    body: dict[str, Any] = {"success": True, "data": data}
    if meta is not None:
        body["meta"] = meta
    if message is not None:
        body["message"] = message
    return json_response(body, status=status, headers=headers)


def error_body(status: int, error: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """DESIGN's error envelope."""
    return {"success": False, "code": status, "error": error, "details": details or {}}


async def read_json(request: web.Request) -> Any:
    """The request body parsed as JSON; 400 when it is not JSON."""
    raw = await request.read()
    if not raw.strip():
        raise BadRequest("Request body must be JSON", details={"body": "empty"})
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("Malformed JSON", details={"body": str(exc)}) from exc
    if b"\\u0000" in raw:  # JSON can only carry NUL escaped; Postgres text cannot hold it (it was a 500)
        where = _nul_path(data, ())
        if where is not None:
            raise ValidationFailed(details={".".join(where) or "body": "contains a NUL character"})
    return data


def _nul_path(value: Any, path: tuple[str, ...]) -> tuple[str, ...] | None:
    """Where in ``value`` a string (or a key) holds a NUL character, if anywhere."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items: Any = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        here = (*path, str(key))
        if isinstance(key, str) and "\x00" in key:
            return here
        found = _nul_path(item, here)
        if found is not None:
            return found
    return None


def validation_details(exc: ValidationError) -> dict[str, str]:
    """Pydantic errors as ``{field.path: why}``."""
    details: dict[str, str] = {}
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "body"
        details.setdefault(path, err["msg"])
    return details


def parse_model(model: type[M], data: Any) -> M:
    """Validate ``data`` as ``model``; 422 naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(details=validation_details(exc)) from exc


async def read_model(request: web.Request, model: type[M]) -> M:
    """Parse and validate the JSON body as ``model`` (400 malformed, 422 invalid)."""
    return parse_model(model, await read_json(request))


async def write_or_drop(request: web.Request, response: web.StreamResponse, chunk: bytes, stall: float) -> bool:
    """Write one chunk of a stream; False, and the socket dropped, when the reader made no progress for ``stall`` s.

    A reader that never reads would otherwise hold what the stream holds (a pool connection, an export
    slot) for as long as it keeps its socket open.
    """
    try:
        async with asyncio.timeout(stall):
            await response.write(chunk)
    except TimeoutError:
        log.warning("stream_reader_stalled", path=request.path, stall_seconds=stall)
        if request.transport is not None:
            request.transport.abort()
        return False
    return True

"""The API's runner: aiohttp's, with requests it cannot parse answered in DESIGN's error shape.

aiohttp answers a request it cannot parse (a header over its limit, a malformed request line)
before any middleware runs, with a plain-text 400 and a traceback in the log. Here such a request
gets a JSON error (431 for headers over the limit, else 400), a one-line warning and a closed
connection; 5xx keep aiohttp's own handling.
"""

from __future__ import annotations

from typing import Any, cast

import structlog
from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from hub.web.responses import error_body, json_response

__all__ = ["HubRunner"]

log = structlog.get_logger("hub.http")


def _status_of(status: int, exc: BaseException | None, message: str) -> tuple[int, str]:
    text = (message or str(exc or "")).lower()
    if isinstance(exc, LineTooLong) and "status line" not in text and "request line" not in text:
        return 431, "Request header fields too large"
    if "header" in text and ("too long" in text or "too large" in text or "too many" in text):
        return 431, "Request header fields too large"
    return status, "Bad request"


class _JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler, rendering 4xx parse errors as JSON (no new state: same slots)."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        status, error = _status_of(status, exc, message or "")
        reason = (message or str(exc or "") or error)[:200]
        log.warning("malformed_request", status=status, reason=reason, remote=request.remote)
        if request.writer.output_size > 0:  # part of an answer already left: nothing sane can follow
            raise ConnectionError("response already started")
        response = json_response(error_body(status, error, {"request": reason}), status=status)
        response.force_close()
        return response


class _JsonErrors:
    """The runner's protocol factory, giving each connection's handler the JSON error rendering."""

    def __init__(self, server: web.Server) -> None:
        self._server = server

    def __call__(self) -> RequestHandler:
        handler = self._server()
        # aiohttp builds the handler itself (with its settings); a slot-less subclass changes only
        # how errors render, so switching the instance's class is safe and needs none of its internals.
        handler.__class__ = _JsonErrorHandler
        return handler

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class HubRunner(web.AppRunner):
    """``web.AppRunner`` whose sites answer unparseable requests in DESIGN's error shape."""

    @property
    def server(self) -> web.Server | None:
        inner = super().server
        return None if inner is None else cast(web.Server, _JsonErrors(inner))

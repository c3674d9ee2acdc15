"""The OpenAPI 3.1 document, built from every router's operations and the pydantic models the
handlers validate with, so the document cannot drift from the code. Served at ``/openapi.json``.

Each operation lists exactly the statuses it can answer (:func:`statuses`: its own, plus the
middleware's that apply to it) and the parameters its handler reads (:mod:`hub.api.openapi_spec.params`);
``tests/api/test_openapi_responses.py`` checks real answers against it. ``/docs`` is Swagger UI
with "try it out", served by the hub itself from the swagger-ui-py package (no CDN).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from hub.api._router import Operation, Router
from hub.api.openapi_spec.examples import EXAMPLES
from hub.api.openapi_spec.params import PATH_PARAM, parameters, reads_query
from hub.keys import ROUTERS
from hub.web.responses import json_response

REF = "#/components/schemas/{model}"
_ERRORS = {
    400: "Malformed request (e.g. not JSON)",
    401: "Missing, malformed or revoked credentials",
    404: "Not found (also another organization's id)",
    408: "The body did not arrive in time",
    409: "Conflict",
    413: "Body too large",
    422: "Validation failed; details names each field",
    429: "Rate limited; see Retry-After",
    503: "Postgres or Redis unavailable; nothing was stored",
}
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["success", "code", "error", "details"],
    "properties": {
        "success": {"const": False},
        "code": {"type": "integer"},
        "error": {"type": "string"},
        "details": {"type": "object"},
    },
}
_META_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "current_page": {"type": "integer"},
        "per_page": {"type": "integer"},
        "total": {"type": "integer"},
        "has_next": {"type": "boolean"},
    },
}
#: Routes that touch neither Postgres nor Redis, so never answer 503.
_NO_STORAGE = frozenset(
    {
        "/healthz",
        "/openapi.json",
        "/docs",
        "/docs/static/{name}",
        "/ops",
        "/ops/static/{name}",
        "/ops/login",
        "/ops/logout",
    }
)
#: Answers a route gives that its declaration cannot show (``/metrics``: 401 once HUB_METRICS_TOKEN is set).
_ALSO: dict[tuple[str, str], tuple[int, ...]] = {("GET", "/metrics"): (401,)}
#: Bodies that may be left out (rotate-secret's grace period has a default).
_OPTIONAL_BODY = frozenset({("POST", "/api/v1/webhooks/{id}/rotate-secret")})
_HOOK_BODY: dict[str, Any] = {
    "required": True,
    "description": "The platform's webhook exactly as it sends it; its signature header is checked over these bytes.",
    "content": {"application/json": {"schema": {"type": "object"}}, "application/x-www-form-urlencoded": {}},
}
_LOGIN_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}}
        }
    },
}
router = Router("docs")


def _models(operations: Iterable[Operation]) -> list[tuple[type[BaseModel], Literal["validation", "serialization"]]]:
    seen: dict[tuple[type[BaseModel], str], None] = {}
    for op in operations:
        if op.body is not None:
            seen[(op.body, "validation")] = None
        if op.response is not None:
            seen[(op.response, "serialization")] = None
    return [(model, mode) for model, mode in seen]  # type: ignore[misc]


def _envelope(op: Operation, ref: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = {} if ref is None else ref
    if op.response_is_list:
        data = {"type": "array", "items": data}
    properties: dict[str, Any] = {"success": {"const": True}, "data": data, "message": {"type": "string"}}
    if op.response_is_list:
        properties["meta"] = {"$ref": REF.format(model="ListMeta")}
        # The unified order API's page fields, beside data and meta on every list (hub.api._query.listed).
        properties.update({name: {"type": "integer"} for name in ("count", "total_count", "page", "limit")})
        properties["has_next"] = {"type": "boolean"}
    return {"type": "object", "required": ["success", "data"], "properties": properties}


def statuses(op: Operation) -> set[int]:
    """Every status ``op`` can answer: its own, plus those of the middleware that apply to it."""
    found = {op.status, *op.extra_statuses, *_ALSO.get((op.method, op.path), ())}
    takes_body = op.body is not None or op.path.startswith("/hooks/")
    if op.body is not None:
        found |= {400, 422}  # not JSON; JSON that fails the model
    if takes_body:
        found |= {408, 413}  # hub.web.middleware reads every body within a deadline and a size limit
    if reads_query(op):
        found |= {400, 422}  # 400: a NUL character, which Postgres text cannot hold
    if PATH_PARAM.search(op.path):
        found.add(404)
    if op.auth == "bearer":
        found |= {401, 429}
    elif op.auth == "ops" and op.content_type == "application/json":
        found.add(401)  # the page itself sends a visitor without the token to the login form instead
    if op.path.startswith("/hooks/"):
        found.add(429)  # the per-connection limit
    if op.path not in _NO_STORAGE:
        found.add(503)
    return found


def _success_content(op: Operation, ref: dict[str, Any] | None) -> dict[str, Any]:
    if op.content_type == "application/json":
        content = {"application/json": {"schema": {"type": "object"} if op.raw else _envelope(op, ref)}}
    else:
        content = {op.content_type: {"schema": {"type": "string"}}}
    for media_type in op.also_content_types:
        content[media_type] = {"schema": {"type": "string"}}
    return content


def _responses(op: Operation, ref: dict[str, Any] | None) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in sorted(statuses(op)):
        if _is_redirect(status):
            responses[str(status)] = _REDIRECT
        elif status < 300:  # e.g. 200 beside 201 when an order was already there
            responses[str(status)] = {"description": op.summary, "content": _success_content(op, ref)}
        elif op.raw:  # a probe's own shape (readiness names what fails)
            responses[str(status)] = {
                "description": _ERRORS.get(status, "Error"),
                "content": _success_content(op, None),
            }
        elif op.content_type == "text/html" and status in op.extra_statuses:
            # a page answers its own refusals with a page (the login form says what was wrong)
            responses[str(status)] = {"description": _ERRORS.get(status, "Error"), "content": {"text/html": {}}}
        else:
            content = {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}
            responses[str(status)] = {"description": _ERRORS.get(status, "Error"), "content": content}
    return responses


_REDIRECT: dict[str, Any] = {
    "description": "Redirect: see Location (no body)",
    "headers": {"Location": {"schema": {"type": "string"}}},
}


def _is_redirect(status: int) -> bool:
    return 300 <= status < 400


def _request_body(op: Operation, key_map: dict[Any, Any]) -> dict[str, Any] | None:
    if op.body is not None:
        schema = key_map[(op.body, "validation")]
        required = (op.method, op.path) not in _OPTIONAL_BODY
        media: dict[str, Any] = {"schema": schema}
        if (op.method, op.path) in EXAMPLES:
            media["example"] = EXAMPLES[(op.method, op.path)]
        return {"required": required, "content": {"application/json": media}}
    if op.path.startswith("/hooks/"):
        return _HOOK_BODY
    if (op.method, op.path) == ("POST", "/ops/login"):
        return _LOGIN_BODY
    return None


#: Model docstrings become schema descriptions; these say what they point at to a reader of the API.
_PUBLIC_WORDING = (
    (re.compile(r"\s*\(DESIGN[^)]*\)"), ""),
    (re.compile(r"DESIGN's "), ""),
    (re.compile(r"\bseed 000\b"), "the chat-commerce API"),
    (re.compile(r"\bseed 004\b"), "the unified order API"),
    (re.compile(r"``([^`]+)``"), r"`\1`"),  # reStructuredText literals, written the Markdown way
)


def _public(text: str) -> str:
    for pattern, replacement in _PUBLIC_WORDING:
        text = pattern.sub(replacement, text)
    return text


def _one_way(node: Any) -> Any:
    """Write "or null" one way everywhere: ``type: [T, "null"]`` (on the first typed alternative of an
    ``anyOf``); ``{"type": "null"}`` remains only beside a ``$ref``, which cannot carry a type."""
    if isinstance(node, list):
        return [_one_way(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _public(v) if k == "description" and isinstance(v, str) else _one_way(v) for k, v in node.items()}
    options = node.get("anyOf")
    if not isinstance(options, list) or {"type": "null"} not in options:
        return node
    others = [o for o in options if o != {"type": "null"}]
    typed = next((i for i, o in enumerate(others) if isinstance(o.get("type"), str) and "$ref" not in o), None)
    if typed is None:  # only a $ref can be nullable: anyOf [$ref, null] is the one way to say that
        return node
    nullable = {**others[typed], "type": [others[typed]["type"], "null"]}
    if "enum" in nullable:
        nullable["enum"] = [*nullable["enum"], None]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    if len(others) == 1:
        return {**nullable, **rest}
    return {**rest, "anyOf": [nullable if i == typed else o for i, o in enumerate(others)]}


def build(routers: Iterable[Router]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``routers``."""
    operations = [op for r in routers for op in r.operations]
    key_map, defs = models_json_schema(_models(operations), ref_template=REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = _ERROR_SCHEMA
    schemas["ListMeta"] = _META_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        item: dict[str, Any] = {
            "summary": op.summary,
            "tags": [op.tag],
            "operationId": f"{op.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', op.path.lower()).strip('_')}",
            "parameters": parameters(op, schemas),
            "responses": _responses(op, key_map.get((op.response, "serialization")) if op.response else None),
        }
        if op.auth == "bearer":
            item["security"] = [{"bearerAuth": []}]
        elif op.auth == "ops":
            item["security"] = [{"opsToken": []}]
        body = _request_body(op, key_map)
        if body is not None:
            item["requestBody"] = body
        paths.setdefault(op.path, {})[op.method.lower()] = item
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Orderhub",
            "version": "1.0.0",
            "description": "Platform order webhooks in, one unified order model, signed order.* webhooks out.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API key: sk_live_… or sk_test_…"},
                "opsToken": {"type": "http", "scheme": "bearer", "description": "The ops token (HUB_OPS_TOKEN)"},
            },
        },
    }
    result: dict[str, Any] = _one_way(document)
    return result


#: The Swagger UI files /docs needs, from the swagger-ui-py package (a maintained Swagger UI 5 build).
_SWAGGER_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
#: The page and its start-up script, ours (hub/static).
_OWN_ASSETS = {"docs.js": "text/javascript"}
_DOCS_HEADERS = {
    # Swagger UI sets inline styles; everything else, scripts included, comes from this hub.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


@lru_cache(maxsize=1)
def _swagger_dir() -> Path:
    # find_spec locates the package without importing it (its handlers would pull in jinja2 and yaml).
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed: pip install -e .")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@lru_cache(maxsize=8)
def _asset(name: str) -> bytes:
    if name in _OWN_ASSETS or name == "docs.html":
        return (Path(__file__).parent.parent / "static" / name).read_bytes()
    return (_swagger_dir() / name).read_bytes()


@router.route("GET", "/openapi.json", summary="This API's OpenAPI 3.1 document", auth=None, raw=True)
async def openapi_json(request: web.Request) -> web.Response:
    routers: list[Router] = request.app[ROUTERS]
    return json_response(build(routers))


@router.route(
    "GET",
    "/docs",
    summary="Interactive API reference (Swagger UI, served by the hub)",
    auth=None,
    content_type="text/html",
)
async def docs(request: web.Request) -> web.Response:
    return web.Response(body=_asset("docs.html"), content_type="text/html", charset="utf-8", headers=_DOCS_HEADERS)


@router.route(
    "GET",
    "/docs/static/{name}",
    summary="The API reference's script, stylesheet and icon",
    auth=None,
    content_type="text/javascript",
    also_content_types=("text/css", "image/png"),
)
async def docs_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = _OWN_ASSETS.get(name) or _SWAGGER_ASSETS.get(name)
    if content_type is None:
        raise web.HTTPNotFound()
    # Versioned with the installed package, so a day's caching is safe; revalidated after that.
    return web.Response(
        body=_asset(name), content_type=content_type, headers={"Cache-Control": "public, max-age=86400"}
    )

"""The OpenAPI 3.1 document, built from every router's operations and the pydantic models the
handlers validate with, so the document cannot drift from the code. Served at ``/openapi.json``;
``/docs`` is a self-contained page (no CDN) that renders it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from hub.api._router import Operation, Router
from hub.keys import ROUTERS
from hub.web.responses import json_response

REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")
_ERRORS = {
    400: "Malformed request (e.g. not JSON)",
    401: "Missing, malformed or revoked credentials",
    404: "Not found (also another organization's id)",
    405: "Method not allowed",
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

router = Router("docs")


def _models(operations: Iterable[Operation]) -> list[tuple[type[BaseModel], Literal["validation", "serialization"]]]:
    seen: dict[tuple[type[BaseModel], str], None] = {}
    for op in operations:
        if op.body is not None:
            seen[(op.body, "validation")] = None
        if op.query is not None:
            seen[(op.query, "validation")] = None
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


def _parameters(op: Operation, schemas: dict[str, Any]) -> list[Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(op.path)
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            if prop.get("default", 0) is None:  # "optional" is said by required=false; a null default is not a string
                prop = {k: v for k, v in prop.items() if k != "default"}
            params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
        schemas.update(schema.get("$defs", {}))
    return params


def _responses(op: Operation, ref: dict[str, Any] | None) -> dict[str, Any]:
    if op.content_type == "application/json":
        ok_content = {"application/json": {"schema": {"type": "object"} if op.raw else _envelope(op, ref)}}
    else:
        ok_content = {op.content_type: {"schema": {"type": "string"}}}
    for media_type in op.also_content_types:
        ok_content[media_type] = {"schema": {"type": "string"}}
    responses: dict[str, Any] = {
        str(op.status): _REDIRECT | {"description": op.summary}
        if _is_redirect(op.status)
        else {"description": op.summary, "content": ok_content}
    }
    statuses = {400, 404, 405, 413, 422, 503, *op.extra_statuses}
    if op.method != "GET":
        statuses.add(408)  # hub.web.middleware reads every body within a deadline
    if op.auth is not None:
        statuses |= {401, 429}
    for status in sorted(statuses):
        if str(status) in responses:
            continue
        if _is_redirect(status):
            responses[str(status)] = _REDIRECT
            continue
        content: dict[str, Any] = {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}
        if op.content_type != "application/json":  # a page may answer an error with a page (the login form)
            content[op.content_type] = {"schema": {"type": "string"}}
        responses[str(status)] = {"description": _ERRORS.get(status, "Error"), "content": content}
    return responses


_REDIRECT: dict[str, Any] = {
    "description": "Redirect: see Location (no body)",
    "headers": {"Location": {"schema": {"type": "string"}}},
}


def _is_redirect(status: int) -> bool:
    return 300 <= status < 400


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
            "parameters": _parameters(op, schemas),
            "responses": _responses(op, key_map.get((op.response, "serialization")) if op.response else None),
        }
        if op.auth == "bearer":
            item["security"] = [{"bearerAuth": []}]
        elif op.auth == "ops":
            item["security"] = [{"opsToken": []}]
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": key_map[(op.body, "validation")]}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = item
    return {
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


@lru_cache(maxsize=1)
def _docs_page() -> bytes:
    return (Path(__file__).parent.parent / "static" / "docs.html").read_bytes()


@router.route("GET", "/openapi.json", summary="This API's OpenAPI 3.1 document", auth=None, raw=True)
async def openapi_json(request: web.Request) -> web.Response:
    routers: list[Router] = request.app[ROUTERS]
    return json_response(build(routers))


@router.route("GET", "/docs", summary="Human-readable API reference", auth=None, content_type="text/html")
async def docs(request: web.Request) -> web.Response:
    return web.Response(body=_docs_page(), content_type="text/html")

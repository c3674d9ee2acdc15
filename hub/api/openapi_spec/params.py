"""Query and path parameters of the OpenAPI document: exactly what each route reads, described.

A parameter is listed when the handler reads it: the fields of the route's query model, pagination
(``page``, ``per_page``, ``limit``) on every list route (``hub.api._query.page_of`` reads them),
and the few parameters a handler reads by hand (:data:`READ_BY_HAND`); fields a route's model has
but its handler ignores are dropped (:data:`IGNORED`). Every parameter carries a description and,
where the set is closed, its allowed values. Comma-separated filters are arrays written
``style: form, explode: false`` (``status=pending,confirmed``), which is what the API parses.
"""

from __future__ import annotations

import re
from typing import Any

from hub.api._query import MAX_PAGE
from hub.api._router import Operation
from hub.orders.transitions import FULFILLMENT_STATUSES, PAYMENT_STATUSES, STATUS_ALIASES, STATUSES
from hub.schemas._fields import CREATED_BY

REF = "#/components/schemas/{model}"
PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")

_PAGINATION: dict[str, dict[str, Any]] = {
    "page": {
        "description": "Page number, from 1 (default 1).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
    },
    "per_page": {
        "description": "Items per page (default 20, at most 100).",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
    },
    "limit": {
        "description": "Another name for per_page (the unified order API's name); per_page wins when both are given.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
    },
}

#: Parameters whose values form a closed set, accepted as one value or several, comma-separated.
_LISTS: dict[str, tuple[str, ...]] = {
    "status": (*STATUSES, *STATUS_ALIASES),
    "payment_status": PAYMENT_STATUSES,
    "fulfillment_status": FULFILLMENT_STATUSES,
    "created_by": CREATED_BY,
}

#: Descriptions by parameter name where the model gives none (or one that points outside this API).
_DESCRIPTIONS: dict[str, str] = {
    "status": "Only these statuses: one value or several, comma-separated.",
    "payment_status": "Only these payment statuses: one value or several, comma-separated.",
    "fulfillment_status": "Only these fulfillment statuses: one value or several, comma-separated.",
    "created_by": "Only orders created this way: one value or several, comma-separated.",
    "source": "Only this source (salla, zid, shopify, woocommerce, generic, chat_agent, or an API-created "
    "order's source); on orders, several may be given, comma-separated.",
    "external_id": "The order's id on its platform (exact match).",
    "contact_id": "Only orders of this contact (con_…).",
    "connection_id": "Only events received through this connection (conn_…).",
    "date_from": "Created at or after: YYYY-MM-DD (midnight UTC) or an ISO 8601 timestamp.",
    "date_to": "Created at or before: inclusive; a date alone includes that whole UTC day.",
    "created_from": "Another name for date_from (the unified order API's name).",
    "created_to": "Another name for date_to (the unified order API's name).",
    "sort": "Sort field; a leading '-' sorts descending (default -created, newest first).",
    "enabled": "true: only enabled endpoints; false: only disabled ones.",
    "event_type": "Only deliveries of this event type, e.g. order.created.",
    "in_stock": "true: only products with stock; false: only products without.",
    "format": "csv (default) or ndjson (one JSON order per line).",
    "search": "Case-insensitive substring match.",
}

#: Parameters a handler reads from ``request.query`` without a model.
READ_BY_HAND: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("GET", "/api/v1/contacts"): {
        "search": {
            "description": "Name, phone or email contains this (case-insensitive).",
            "schema": {"type": "string", "maxLength": 200},
        }
    },
    ("GET", "/api/v1/connections"): {
        "source": {"description": "Only connections of this platform.", "schema": {"type": "string"}},
    },
}

#: Fields of a shared query model that a route ignores: the export streams every match, unpaginated.
IGNORED: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/api/v1/orders/export"): frozenset({"page", "per_page", "limit", "count"}),
}

_PATH_DESCRIPTIONS = {
    "id": "The resource's id, as returned when it was created.",
    "source": "The platform: salla, zid, shopify, woocommerce, generic or chat_agent.",
    "connection_id": "The connection's id (conn_…), from POST /api/v1/connections.",
    "name": "A file name of the page's assets.",
}


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """A query schema without ``null`` (an absent parameter is how "none" is said) and without titles."""
    schema = {k: v for k, v in schema.items() if k not in ("title", "description", "examples")}
    if "anyOf" in schema:
        options = [o for o in schema.pop("anyOf") if o != {"type": "null"}]
        if len(options) == 1:
            schema = {**options[0], **schema}
        else:
            schema["anyOf"] = options
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        schema["type"] = kinds[0] if len(kinds) == 1 else kinds
    if schema.get("default", 0) is None:
        del schema["default"]
    return schema


def _query_param(op: Operation, name: str, prop: dict[str, Any], required: bool) -> dict[str, Any]:
    if name in _PAGINATION:
        return {"name": name, "in": "query", "required": False, **_PAGINATION[name]}
    schema = _plain(prop)
    if name in ("created_from", "created_to"):
        description = _DESCRIPTIONS[name]
    else:
        description = prop.get("description") or _DESCRIPTIONS.get(name, "")
    param: dict[str, Any] = {"name": name, "in": "query", "required": required}
    if name in _LISTS and "enum" not in schema:
        schema = {"type": "array", "items": {"type": "string", "enum": list(_LISTS[name])}}
        param |= {"style": "form", "explode": False}
        description = _DESCRIPTIONS[name]
    elif name == "source" and op.path.startswith("/api/v1/orders"):
        schema = {"type": "array", "items": {"type": "string"}}
        param |= {"style": "form", "explode": False}
    elif name in _LISTS:  # a single value of a closed set (inbound events, deliveries)
        description = f"Only this {name.replace('_', ' ')}."
    return param | {"description": description, "schema": schema}


def parameters(op: Operation, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    """Path parameters, then the query parameters ``op``'s handler reads (definitions go to ``schemas``)."""
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": _PATH_DESCRIPTIONS.get(name, ""),
            "schema": {"type": "string"},
        }
        for name in PATH_PARAM.findall(op.path)
    ]
    key = (op.method, op.path)
    ignored = IGNORED.get(key, frozenset())
    seen: set[str] = set()
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            if name not in ignored:
                params.append(_query_param(op, name, prop, name in required))
                seen.add(name)
        schemas.update(schema.get("$defs", {}))
    for name, spec in READ_BY_HAND.get(key, {}).items():
        params.append({"name": name, "in": "query", "required": False, **spec})
        seen.add(name)
    if op.response_is_list:
        for name, spec in _PAGINATION.items():
            if name not in seen and name not in ignored:
                params.append({"name": name, "in": "query", "required": False, **spec})
    return params


def reads_query(op: Operation) -> bool:
    """Whether the route validates query parameters (so it can answer 422 for a bad one)."""
    return op.query is not None or op.response_is_list or (op.method, op.path) in READ_BY_HAND

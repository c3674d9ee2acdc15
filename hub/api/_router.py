"""A route table that also records what OpenAPI needs, from the models handlers validate with.

Each API module declares ``router = Router("orders")`` and decorates handlers with
``@router.route("POST", "/api/v1/orders", summary=…, body=OrderCreate, response=OrderOut)``.
``hub.api.openapi`` builds the document from every router, so a route cannot be served without
being described.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One documented route."""

    method: str
    path: str
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    response_is_list: bool = False
    status: int = 200
    auth: str | None = "bearer"  # bearer | ops | None
    content_type: str = "application/json"
    extra_statuses: tuple[int, ...] = ()
    raw: bool = False  # the body is not the success envelope (health probes, the OpenAPI document)
    also_content_types: tuple[str, ...] = ()  # other media types of the success answer (export: NDJSON)


@dataclass
class Router:
    """Routes of one API module plus their OpenAPI operations."""

    tag: str
    routes: web.RouteTableDef = field(default_factory=web.RouteTableDef)
    operations: list[Operation] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        response_is_list: bool = False,
        status: int = 200,
        auth: str | None = "bearer",
        content_type: str = "application/json",
        extra_statuses: tuple[int, ...] = (),
        raw: bool = False,
        also_content_types: tuple[str, ...] = (),
    ) -> Callable[[Handler], Handler]:
        """Register ``handler`` for ``method path`` and document it."""

        def decorate(handler: Handler) -> Handler:
            self.routes.route(method, path)(handler)
            self.operations.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    summary=summary,
                    tag=self.tag,
                    body=body,
                    query=query,
                    response=response,
                    response_is_list=response_is_list,
                    status=status,
                    auth=auth,
                    content_type=content_type,
                    extra_statuses=extra_statuses,
                    raw=raw,
                    also_content_types=also_content_types,
                )
            )
            return handler

        return decorate

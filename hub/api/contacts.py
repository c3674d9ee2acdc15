"""``/api/v1/contacts``: the customers orders can refer to."""

from __future__ import annotations

from aiohttp import web

from hub.api._query import listed, page_of
from hub.api._router import Router
from hub.catalog import contacts as svc
from hub.db import session_scope
from hub.keys import SESSIONS
from hub.web.middleware import principal
from hub.web.responses import ok, read_model

router = Router("contacts")


@router.route(
    "POST", "/api/v1/contacts", summary="Create a contact", body=svc.ContactCreate, response=svc.ContactOut, status=201
)
async def create_contact(request: web.Request) -> web.Response:
    data = await read_model(request, svc.ContactCreate)
    async with session_scope(request.app[SESSIONS]) as session:
        contact = await svc.create_contact(session, organization_id=principal(request).organization_id, data=data)
    return ok(svc.contact_out(contact), status=201, message="Contact created successfully.")


@router.route("GET", "/api/v1/contacts", summary="List contacts", response=svc.ContactOut, response_is_list=True)
async def list_contacts(request: web.Request) -> web.Response:
    page = page_of(request.query)
    async with session_scope(request.app[SESSIONS]) as session:
        rows, total = await svc.list_contacts(
            session,
            organization_id=principal(request).organization_id,
            offset=page.offset,
            limit=page.per_page,
            search=request.query.get("search") or None,
        )
    return listed([svc.contact_out(c) for c in rows], page, total, message="Contacts retrieved successfully.")


@router.route("GET", "/api/v1/contacts/{id}", summary="Get a contact", response=svc.ContactOut)
async def get_contact(request: web.Request) -> web.Response:
    async with session_scope(request.app[SESSIONS]) as session:
        contact = await svc.get_contact(
            session, organization_id=principal(request).organization_id, contact_id=request.match_info["id"]
        )
    return ok(svc.contact_out(contact))

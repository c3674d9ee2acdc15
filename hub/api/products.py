"""``/api/v1/products``: the catalog orders are priced from (seed 000), with stock."""

from __future__ import annotations

from aiohttp import web

from hub.api._query import listed, page_of
from hub.api._router import Router
from hub.catalog import products as svc
from hub.db import session_scope
from hub.keys import SESSIONS
from hub.schemas.products import ProductCreate, ProductOut, ProductQuery, ProductUpdate
from hub.web.middleware import principal
from hub.web.responses import ok, parse_model, read_model

router = Router("products")


@router.route(
    "GET",
    "/api/v1/products",
    summary="List products (search by name, SKU or category; filter by category)",
    query=ProductQuery,
    response=ProductOut,
    response_is_list=True,
)
async def list_products(request: web.Request) -> web.Response:
    query = parse_model(ProductQuery, dict(request.query))
    page = page_of(request.query)
    async with session_scope(request.app[SESSIONS]) as session:
        rows, total = await svc.list_products(
            session,
            organization_id=principal(request).organization_id,
            offset=page.offset,
            limit=page.per_page,
            search=query.search or None,
            category=query.category or None,
            in_stock=query.in_stock,
        )
    return listed([svc.product_out(p) for p in rows], page, total, message="Products retrieved successfully.")


@router.route(
    "POST",
    "/api/v1/products",
    summary="Create a product (409 when another product of the organization has its SKU)",
    body=ProductCreate,
    response=ProductOut,
    status=201,
    extra_statuses=(409,),
)
async def create_product(request: web.Request) -> web.Response:
    data = await read_model(request, ProductCreate)
    async with session_scope(request.app[SESSIONS]) as session:
        product = await svc.create_product(session, organization_id=principal(request).organization_id, data=data)
    return ok(svc.product_out(product), status=201, message="Product created successfully.")


@router.route("GET", "/api/v1/products/{id}", summary="Get a product", response=ProductOut)
async def get_product(request: web.Request) -> web.Response:
    async with session_scope(request.app[SESSIONS]) as session:
        product = await svc.get_product(
            session, organization_id=principal(request).organization_id, product_id=request.match_info["id"]
        )
    return ok(svc.product_out(product), message="Product retrieved successfully.")


@router.route(
    "PUT",
    "/api/v1/products/{id}",
    summary="Update a product (merge: omitted fields keep their values; 409 for a SKU already in use)",
    body=ProductUpdate,
    response=ProductOut,
    extra_statuses=(409,),
)
async def update_product(request: web.Request) -> web.Response:
    data = await read_model(request, ProductUpdate)
    async with session_scope(request.app[SESSIONS]) as session:
        product = await svc.update_product(
            session, organization_id=principal(request).organization_id, product_id=request.match_info["id"], data=data
        )
    return ok(svc.product_out(product), message="Product updated successfully.")


@router.route(
    "DELETE",
    "/api/v1/products/{id}",
    summary="Delete a product (soft: orders that have it keep their lines)",
    response=ProductOut,
)
async def delete_product(request: web.Request) -> web.Response:
    async with session_scope(request.app[SESSIONS]) as session:
        product = await svc.delete_product(
            session, organization_id=principal(request).organization_id, product_id=request.match_info["id"]
        )
    return ok(svc.product_out(product), message="Product deleted successfully.")

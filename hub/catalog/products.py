"""The organization's catalog: products with price, currency and stock.

Deleting is soft (``deleted_at``): orders copy their lines (name, sku, price) when made, so old
orders keep them, and stock given back by a later cancellation still lands on the row. Stock itself
moves through ``hub.orders.stock`` inside order transactions; here it is only set. A SKU names one
live product per organization: a second one is a 409 (checked under a per-SKU advisory lock, so two
concurrent creates cannot both pass).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.errors import Conflict, NotFound, ValidationFailed
from hub.ids import new_id
from hub.models import Organization, Product
from hub.money import to_json_number
from hub.orders.rows import lock_key
from hub.schemas.products import ProductCreate, ProductUpdate

_NOT_NULL = ("name", "price", "currency", "stock_quantity")


def product_out(product: Product) -> dict[str, Any]:
    """The public view of a product (price as a JSON number with the currency's decimals)."""
    return {
        "id": product.id,
        "name": product.name,
        "description": product.description,
        "sku": product.sku,
        "category": product.category,
        "price": to_json_number(product.price, product.currency),
        "currency": product.currency,
        "stock_quantity": product.stock_quantity,
        "in_stock": product.stock_quantity > 0,
        "created": product.created,
        "updated": product.updated,
    }


async def _require_free_sku(
    session: AsyncSession, *, organization_id: str, sku: str | None, product_id: str | None = None
) -> None:
    """409 when another live product of the organization has ``sku`` (lock held to the commit)."""
    if sku is None:
        return
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(organization_id, "sku", sku)})
    where = [
        col(Product.organization_id) == organization_id,
        col(Product.sku) == sku,
        col(Product.deleted_at).is_(None),
    ]
    if product_id is not None:
        where.append(col(Product.id) != product_id)
    taken = (await session.execute(select(col(Product.id)).where(*where).limit(1))).scalar_one_or_none()
    if taken is not None:
        raise Conflict("A product with this SKU already exists", details={"sku": f"already used by product {taken}"})


async def create_product(session: AsyncSession, *, organization_id: str, data: ProductCreate) -> Product:
    """Store a new product (currency defaults to the organization's); 409 for a SKU already in use."""
    await _require_free_sku(session, organization_id=organization_id, sku=data.sku)
    currency = data.currency
    if currency is None:
        org = await session.get(Organization, organization_id)
        currency = org.default_currency if org is not None else "SAR"
    product = Product(id=new_id("prd"), organization_id=organization_id, **data.model_dump(exclude={"currency"}))
    product.currency = currency
    session.add(product)
    await session.flush()
    return product


async def get_product(
    session: AsyncSession, *, organization_id: str, product_id: str, for_update: bool = False
) -> Product:
    """The organization's live product, or 404 (also for another organization's or a deleted one)."""
    product = await session.get(Product, product_id, with_for_update=for_update)
    if product is None or product.organization_id != organization_id or product.deleted_at is not None:
        raise NotFound("Product not found", details={"id": product_id})
    return product


async def list_products(
    session: AsyncSession,
    *,
    organization_id: str,
    offset: int,
    limit: int,
    search: str | None = None,
    category: str | None = None,
    in_stock: bool | None = None,
) -> tuple[list[Product], int]:
    """A page of live products, newest first, and the total."""
    where: list[Any] = [col(Product.organization_id) == organization_id, col(Product.deleted_at).is_(None)]
    if search:
        like = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(
            or_(col(Product.name).ilike(like), col(Product.sku).ilike(like), col(Product.category).ilike(like))
        )
    if category:
        where.append(func.lower(col(Product.category)) == category.lower())
    if in_stock is not None:
        where.append(col(Product.stock_quantity) > 0 if in_stock else col(Product.stock_quantity) <= 0)
    total = (await session.execute(select(func.count()).select_from(Product).where(*where))).scalar_one()
    rows = await session.execute(
        select(Product)
        .where(*where)
        .order_by(col(Product.created).desc(), col(Product.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows.scalars()), total


async def update_product(
    session: AsyncSession, *, organization_id: str, product_id: str, data: ProductUpdate
) -> Product:
    """Merge the given fields into the product (locked, so a stock count never races an order)."""
    given = data.model_dump(include=set(ProductCreate.model_fields) & data.model_fields_set)
    nulls = {name: "must not be null" for name in _NOT_NULL if name in given and given[name] is None}
    if nulls:
        raise ValidationFailed(details=nulls)
    product = await get_product(session, organization_id=organization_id, product_id=product_id, for_update=True)
    if given.get("sku") is not None and given["sku"] != product.sku:
        await _require_free_sku(session, organization_id=organization_id, sku=given["sku"], product_id=product_id)
    changed = False
    for name, value in given.items():
        if getattr(product, name) != value:
            setattr(product, name, value)
            changed = True
    if changed:
        product.updated = datetime.now(UTC)
    await session.flush()
    return product


async def delete_product(session: AsyncSession, *, organization_id: str, product_id: str) -> Product:
    """Soft-delete the product: gone from the catalog, still named in the orders that have it."""
    product = await get_product(session, organization_id=organization_id, product_id=product_id, for_update=True)
    product.deleted_at = product.updated = datetime.now(UTC)
    await session.flush()
    return product

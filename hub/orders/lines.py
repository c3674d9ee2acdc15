"""Order lines and money: price catalog lines, check client totals, and fingerprint an order's contents.

A line with ``name`` and ``price`` is explicit (its ``product_id`` is an opaque reference and moves no
stock); a line with ``product_id`` and no ``price`` is a catalog line, priced from the organization's
live catalog and holding stock. Stored lines keep ``catalog: true`` so stock can be given back later
even if the product is renamed, repriced or deleted meanwhile.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from hub.db import Conn
from hub.errors import ValidationFailed
from hub.money import MAX_AMOUNT, check_total, compute_totals, quantize
from hub.schemas.orders import LineIn

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class PricedLines:
    """Lines as stored, and the currency of their catalog products (None without catalog lines)."""

    lines: list[dict[str, Any]]
    catalog_currency: str | None


@dataclass(frozen=True, slots=True)
class Amounts:
    """An order's money, exact."""

    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    delivery_fee: Decimal
    total_amount: Decimal


def require_lines(field: str, lines: Sequence[LineIn] | None) -> Sequence[LineIn]:
    """The lines, or 422 (seed 004's wording) when there are none."""
    if not lines:
        raise ValidationFailed(details={field: "At least one product is required"})
    return lines


async def price_lines(conn: Conn, *, organization_id: str, field: str, lines: Sequence[LineIn]) -> PricedLines:
    """Turn request lines into stored lines; 422 naming each bad line (unknown product, missing price…)."""
    errors: dict[str, str] = {}
    wanted: list[str] = []
    for i, line in enumerate(lines):
        if line.price is not None and line.name is None:
            errors[f"{field}.{i}.name"] = (
                "is required with price (send only product_id and quantity for a catalog line)"
            )
        elif line.price is None and line.product_id is None:
            errors[f"{field}.{i}.product_id"] = "is required (or send name and price for an explicit line)"
        elif line.price is None and line.product_id is not None:
            wanted.append(line.product_id)
    catalog: dict[str, Mapping[str, Any]] = {}
    if wanted:
        rows = await conn.fetch(
            "SELECT id, name, sku, price, currency FROM products "
            "WHERE organization_id = $1 AND id = ANY($2::text[]) AND deleted_at IS NULL",
            organization_id,
            sorted(set(wanted)),
        )
        catalog = {row["id"]: dict(row) for row in rows}
    stored: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if line.price is None and line.product_id is not None and line.product_id not in catalog:
            errors[f"{field}.{i}.product_id"] = f"product {line.product_id} not found"
        if any(key.startswith(f"{field}.{i}.") for key in errors):
            continue
        product = catalog.get(line.product_id or "") if line.price is None else None
        price = product["price"] if product is not None else line.price
        assert price is not None
        total = price * line.quantity
        if total > MAX_AMOUNT:
            errors[f"{field}.{i}.quantity"] = f"makes the line total exceed {MAX_AMOUNT:f}"
            continue
        stored.append(
            {
                "product_id": line.product_id,
                "sku": product["sku"] if product is not None else line.sku,
                "name": product["name"] if product is not None else line.name,
                "quantity": line.quantity,
                "price": price,
                "total": total,
                "catalog": product is not None,
            }
        )
    currencies = sorted({row["currency"] for row in catalog.values()})
    if len(currencies) > 1:
        errors[field] = f"catalog products have different currencies ({', '.join(currencies)}); use one order each"
    if errors:
        raise ValidationFailed(details=errors)
    return PricedLines(lines=stored, catalog_currency=currencies[0] if currencies else None)


def in_currency(lines: Sequence[Mapping[str, Any]], currency: str) -> list[dict[str, Any]]:
    """``lines`` priced in ``currency``'s minor unit: ``price`` rounded, ``total`` exactly price × quantity.

    Stored this way, a line shows the same numbers it is computed from (JPY 10.5 → 11, total 11 × qty).
    """
    out: list[dict[str, Any]] = []
    for line in lines:
        price = quantize(Decimal(str(line["price"])), currency)
        out.append({**line, "price": price, "total": price * int(line["quantity"])})
    return out


def check_line_totals(field: str, given: Sequence[LineIn], stored: Sequence[Mapping[str, Any]], currency: str) -> None:
    """422 when a client's line ``total`` differs from price × quantity at the currency's precision."""
    errors = {
        f"{field}.{i}.total": f"must equal price x quantity ({quantize(Decimal(line['total']), currency)})"
        for i, (request, line) in enumerate(zip(given, stored, strict=True))
        if request.total is not None and quantize(request.total, currency) != quantize(Decimal(line["total"]), currency)
    }
    if errors:
        raise ValidationFailed(details=errors)


def compute_amounts(
    lines: Sequence[Mapping[str, Any]],
    *,
    currency: str,
    discount: Decimal | None,
    tax: Decimal | None,
    delivery_fee: Decimal | None,
    subtotal: Decimal | None = None,
    total_amount: Decimal | None = None,
) -> Amounts:
    """The order's exact money from its lines; a client's ``subtotal``/``total_amount`` must agree (422)."""
    line_totals = [Decimal(line["total"]) for line in lines]
    # Order-level amounts are kept in the currency's minor unit too, so the totals shown add up.
    discount, tax, delivery_fee = (None if v is None else quantize(v, currency) for v in (discount, tax, delivery_fee))
    exact_subtotal, exact_total = compute_totals(line_totals, discount or _ZERO, tax or _ZERO, delivery_fee or _ZERO)
    errors = check_total(
        subtotal=exact_subtotal if subtotal is None else subtotal,
        discount=discount or _ZERO,
        tax=tax or _ZERO,
        delivery_fee=delivery_fee or _ZERO,
        total_amount=exact_total if total_amount is None else total_amount,
        currency=currency,
        lines_totals=line_totals,
    )
    if errors:
        raise ValidationFailed(details=errors)
    if exact_total > MAX_AMOUNT:
        raise ValidationFailed(details={"total_amount": f"must not exceed {MAX_AMOUNT:f}"})
    return Amounts(exact_subtotal, discount or _ZERO, tax or _ZERO, delivery_fee or _ZERO, exact_total)


def same_lines(given: Sequence[LineIn], stored: Sequence[Mapping[str, Any]]) -> bool:
    """True when ``given`` restates ``stored`` (a client echoing an order back on ``PUT``)."""
    if len(given) != len(stored):
        return False
    for request, line in zip(given, stored, strict=True):
        if request.product_id != line.get("product_id") or request.quantity != line.get("quantity"):
            return False
        if request.price is not None and request.price != Decimal(str(line.get("price"))):
            return False
        if request.name is not None and request.name != line.get("name"):
            return False
    return True


def fingerprint(
    *, contact_id: str | None, phone: str | None, email: str | None, lines: Sequence[Mapping[str, Any]]
) -> str | None:
    """What makes two orders "identical" for duplicate prevention, hashed; None without an identity.

    Identity is the contact, else the phone, else the email (seed 000); contents are the products
    and quantities, order-insensitive, a catalog product's quantities summed over its lines.
    """
    if contact_id:
        identity = f"contact:{contact_id}"
    elif phone:
        identity = f"phone:{phone}"
    elif email:
        identity = f"email:{email.strip().lower()}"
    else:
        return None
    catalog: dict[str, int] = {}
    explicit: list[tuple[str, str, str, str, int]] = []
    for line in lines:
        if line.get("catalog"):
            catalog[str(line["product_id"])] = catalog.get(str(line["product_id"]), 0) + int(line["quantity"])
        else:
            price = Decimal(str(line["price"])).normalize()
            explicit.append(
                (str(line.get("product_id")), str(line["name"]), str(line.get("sku")), f"{price:f}", line["quantity"])
            )
    contents = {"catalog": sorted(catalog.items()), "explicit": sorted(explicit)}
    digest = hashlib.sha256(orjson.dumps([identity, contents]))
    return digest.hexdigest()

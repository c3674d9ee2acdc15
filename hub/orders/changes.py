"""Changes to an existing order: merge update, status change, cancel, item replacement, soft delete.

Each function takes the order's row lock, builds the row as it should be afterwards and hands it to
``order_write.write_change`` (stock difference, row, events — one transaction, the caller's).

Who may change what (DESIGN "Unified order"):

* ``status`` follows the transition table; cancelling needs a reason.
* ``payment_status`` / ``fulfillment_status`` may be set to any listed value.
* An order made in the hub (no ``external_id``) may have every field merged by ``PUT``; an order
  from a source keeps the source's customer and money fields (only the merchant's own fields —
  statuses, notes, shipping address, cancellation reason — change), unless the source itself
  restates them through an upsert.
* Line items change only through ``PUT /orders/{id}/items``, and only while the order is pending.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from decimal import Decimal
from typing import Any

from connectors.base import to_e164
from hub.db import Conn
from hub.errors import ValidationFailed
from hub.money import quantize
from hub.orders import rows as orders
from hub.orders.lines import (
    check_line_totals,
    compute_amounts,
    fingerprint,
    in_currency,
    price_lines,
    require_lines,
    same_lines,
)
from hub.orders.transitions import InvalidTransition, check_transition
from hub.orders.write import Written, set_status, utcnow, write_change
from hub.schemas.orders import ItemsReplace, StatusChange, _OrderFields

#: What the merchant may change on any order, including one a platform sent.
MERCHANT_FIELDS = frozenset(
    {"status", "payment_status", "fulfillment_status", "notes", "shipping_address", "cancellation_reason"}
)
#: What identifies an order's origin: never changed through the API.
ORIGIN_FIELDS = frozenset({"source", "external_id", "created_by"})
_MONEY = ("subtotal", "discount", "tax", "delivery_fee", "total_amount")
_NOT_NULL = frozenset({"customer_name", "currency", "status", "payment_status", "fulfillment_status", *_MONEY})
_IGNORED = frozenset(
    {"id", "organization_id", "status_history", "is_duplicate", "source_updated_at", "created", "updated"}
    | {"version", "anomalies"}
)


_E164 = re.compile(r"\+[1-9]\d{6,14}")


def phone_number(value: str | None, *, region: str) -> str | None:
    """The phone in E.164 (local numbers read in ``region``), or 422 naming ``customer_phone``."""
    phone = to_e164(value, default_region=region)
    if phone is not None and not _E164.fullmatch(phone):
        raise ValidationFailed(
            details={"customer_phone": "must be a phone number, international (+966501234567) or local (0501234567)"}
        )
    return phone


def transition(row: dict[str, Any], new: str, *, reason: str | None, actor: str) -> None:
    """Move ``row`` to status ``new`` through the transition table (422 otherwise), in place."""
    try:
        check_transition(row["status"], new)
    except InvalidTransition as exc:
        raise ValidationFailed("Invalid status transition", details=exc.details) from exc
    if new == row["status"]:
        return
    if new == "cancelled":
        reason = reason or row.get("cancellation_reason")
        if not reason:
            raise ValidationFailed(details={"cancellation_reason": "is required to cancel an order"})
        row["cancellation_reason"] = reason
    set_status(row, new, actor=actor, at=utcnow())


def refingerprint(row: dict[str, Any]) -> None:
    """Keep a hub-made order's duplicate fingerprint in step with its customer and lines."""
    if row.get("external_id") is None:
        row["fingerprint"] = fingerprint(
            contact_id=row.get("contact_id"),
            phone=row.get("customer_phone"),
            email=row.get("customer_email"),
            lines=row["products"],
        )


def _differs(name: str, value: Any, row: dict[str, Any]) -> bool:
    current = row.get(name)
    if name in _MONEY:
        return value is None or quantize(value, row["currency"]) != quantize(Decimal(str(current)), row["currency"])
    if name in ("products", "items"):
        return not same_lines(value or [], row.get("products") or [])
    return bool(value != current)


def _fixed_errors(given: dict[str, Any], fixed: Collection[str], before: dict[str, Any]) -> dict[str, str]:
    """``{field: why}`` for each fixed field the request changes (restating it unchanged is fine)."""
    origin = before["source"] if before.get("external_id") else "the hub"
    errors: dict[str, str] = {}
    for name in sorted(set(given) & set(fixed)):
        if _differs(name, given[name], before):
            errors[name] = (
                "cannot be changed" if name in ORIGIN_FIELDS else f"cannot be changed on an order from {origin}"
            )
            if name in ("products", "items"):
                errors[name] += " (replace line items with PUT /api/v1/orders/{id}/items while pending)"
    return errors


async def merge(
    conn: Conn,
    *,
    before: dict[str, Any],
    data: _OrderFields,
    actor: str,
    phone_region: str,
    fixed: Collection[str],
    lines_allowed: bool,
) -> tuple[dict[str, Any], str]:
    """The row after merging the fields ``data`` sets; ``fixed`` fields may only be restated unchanged.

    Returns the new row and the name the client used for line items (for stock errors).
    """
    given = {name: getattr(data, name) for name in data.model_fields_set if name not in _IGNORED}
    if "customer_phone" in given:
        given["customer_phone"] = phone_number(given["customer_phone"], region=phone_region)
    errors = _fixed_errors(given, fixed, before)
    errors.update({name: "must not be null" for name in sorted(set(given) & _NOT_NULL) if given[name] is None})
    if "products" in given and "items" in given:
        errors["items"] = "send products or items, not both"
    if errors:
        raise ValidationFailed(details=errors)
    after = dict(before)
    editable = {name: value for name, value in given.items() if name not in fixed}
    if editable.get("contact_id") is not None:
        await require_contact(conn, organization_id=before["organization_id"], contact_id=editable["contact_id"])
    for name in ("reference", "contact_id", "customer_name", "customer_email", "customer_phone", "notes"):
        if name in editable:
            after[name] = editable[name]
    if "shipping_address" in editable:
        after["shipping_address"] = editable["shipping_address"]
    if "payment_status" in editable:
        after["payment_status"] = editable["payment_status"]
    if "fulfillment_status" in editable:
        after["fulfillment_status"] = editable["fulfillment_status"]
    field_name = "items" if "items" in editable else "products"
    await _merge_money(conn, after=after, editable=editable, field_name=field_name, lines_allowed=lines_allowed)
    if "cancellation_reason" in editable:
        after["cancellation_reason"] = editable["cancellation_reason"]
    if "status" in editable:
        transition(after, editable["status"], reason=editable.get("cancellation_reason"), actor=actor)
    refingerprint(after)
    return after, field_name


async def _merge_money(
    conn: Conn, *, after: dict[str, Any], editable: dict[str, Any], field_name: str, lines_allowed: bool
) -> None:
    lines_in = editable.get(field_name)
    if lines_in is not None and lines_allowed and not same_lines(lines_in, after["products"]):
        priced = await price_lines(
            conn, organization_id=after["organization_id"], field=field_name, lines=require_lines(field_name, lines_in)
        )
        currency = editable.get("currency") or after["currency"]
        _same_currency(field_name, priced.catalog_currency, currency)
        after["products"] = in_currency(priced.lines, currency)
        check_line_totals(field_name, lines_in, after["products"], currency)
    if "currency" in editable and editable["currency"] != after["currency"]:
        if any(line.get("catalog") for line in after["products"]):
            raise ValidationFailed(details={"currency": "cannot change on an order with catalog products"})
        after["currency"] = editable["currency"]
        after["products"] = in_currency(after["products"], after["currency"])
    if not (set(editable) & {*_MONEY, field_name, "currency"}):
        return
    amounts = compute_amounts(
        after["products"],
        currency=after["currency"],
        discount=editable.get("discount", after["discount"]),
        tax=editable.get("tax", after["tax"]),
        delivery_fee=editable.get("delivery_fee", after["delivery_fee"]),
        subtotal=editable.get("subtotal"),
        total_amount=editable.get("total_amount"),
    )
    after.update(
        subtotal=amounts.subtotal,
        discount=amounts.discount,
        tax=amounts.tax,
        delivery_fee=amounts.delivery_fee,
        total_amount=amounts.total_amount,
    )


def _same_currency(field_name: str, catalog: str | None, currency: str) -> None:
    if catalog is not None and catalog != currency:
        raise ValidationFailed(
            details={field_name: f"catalog products are priced in {catalog}, the order in {currency}"}
        )


async def require_contact(conn: Conn, *, organization_id: str, contact_id: str) -> dict[str, Any]:
    """The organization's contact, or 422 naming ``contact_id``."""
    row = await conn.fetchrow(
        "SELECT id, name, phone, email FROM contacts WHERE id = $1 AND organization_id = $2",
        contact_id,
        organization_id,
    )
    if row is None:
        raise ValidationFailed(details={"contact_id": f"contact {contact_id} not found"})
    return dict(row)


async def update_order(
    conn: Conn,
    *,
    organization_id: str,
    order_id: str,
    data: _OrderFields,
    actor: str,
    phone_region: str = "SA",
) -> Written:
    """``PUT /orders/{id}``: merge the given fields (hub-made orders: all; source orders: merchant fields)."""
    before = await orders.load(conn, organization_id=organization_id, order_id=order_id, for_update=True)
    hub_made = before.get("external_id") is None
    fixed = ORIGIN_FIELDS | {"products", "items"}
    if not hub_made:
        fixed = fixed | (set(type(data).model_fields) - MERCHANT_FIELDS)
    after, field_name = await merge(
        conn, before=before, data=data, actor=actor, phone_region=phone_region, fixed=fixed, lines_allowed=False
    )
    return await write_change(conn, before=before, after=after, field_name=field_name)


async def change_status(conn: Conn, *, organization_id: str, order_id: str, data: StatusChange, actor: str) -> Written:
    """``PATCH /orders/{id}/status``: status through the transition table, the other two freely."""
    if data.status is None and data.payment_status is None and data.fulfillment_status is None:
        raise ValidationFailed(details={"status": "send at least one of status, payment_status, fulfillment_status"})
    before = await orders.load(conn, organization_id=organization_id, order_id=order_id, for_update=True)
    after = dict(before)
    if data.payment_status is not None:
        after["payment_status"] = data.payment_status
    if data.fulfillment_status is not None:
        after["fulfillment_status"] = data.fulfillment_status
    if data.status is not None:
        transition(after, data.status, reason=data.cancellation_reason, actor=actor)
    elif data.cancellation_reason is not None:
        after["cancellation_reason"] = data.cancellation_reason
    return await write_change(conn, before=before, after=after)


async def cancel_order(conn: Conn, *, organization_id: str, order_id: str, reason: str, actor: str) -> Written:
    """``POST /orders/{id}/cancel``: cancel through the transition table, giving its stock back."""
    before = await orders.load(conn, organization_id=organization_id, order_id=order_id, for_update=True)
    if before["status"] == "cancelled":
        raise ValidationFailed("Invalid status transition", details=InvalidTransition("cancelled", "cancelled").details)
    after = dict(before)
    transition(after, "cancelled", reason=reason, actor=actor)
    after["cancellation_reason"] = reason
    return await write_change(conn, before=before, after=after)


async def replace_items(conn: Conn, *, organization_id: str, order_id: str, data: ItemsReplace, actor: str) -> Written:
    """``PUT /orders/{id}/items``: replace every line of a pending order, adjusting stock by the difference."""
    field_name, requested = data.lines()
    if data.items is not None and data.products is not None:
        raise ValidationFailed(details={"products": "send products or items, not both"})
    lines_in = require_lines(field_name, requested)
    before = await orders.load(conn, organization_id=organization_id, order_id=order_id, for_update=True)
    if before["status"] != "pending":
        raise ValidationFailed(
            "Items can only be changed while the order is pending",
            details={"status": f"is {before['status']}; items can only be replaced while the order is pending"},
        )
    priced = await price_lines(conn, organization_id=organization_id, field=field_name, lines=lines_in)
    _same_currency(field_name, priced.catalog_currency, before["currency"])
    lines = in_currency(priced.lines, before["currency"])
    check_line_totals(field_name, lines_in, lines, before["currency"])
    amounts = compute_amounts(
        lines,
        currency=before["currency"],
        discount=before["discount"],
        tax=before["tax"],
        delivery_fee=before["delivery_fee"],
    )
    after = dict(before, products=lines, subtotal=amounts.subtotal, total_amount=amounts.total_amount)
    refingerprint(after)
    return await write_change(conn, before=before, after=after, field_name=field_name)


async def delete_order(conn: Conn, *, organization_id: str, order_id: str) -> Written:
    """Soft-delete: gone from reads, lists and exports; stock of a non-final order given back; ``order.deleted``."""
    before = await orders.load(conn, organization_id=organization_id, order_id=order_id, for_update=True)
    after = dict(before, deleted_at=utcnow())
    return await write_change(conn, before=before, after=after, extra_events=["order.deleted"])

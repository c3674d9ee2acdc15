"""Creating orders: new orders, upserts by ``source`` + ``external_id``, and duplicate prevention.

* ``POST /orders`` with ``external_id`` upserts the order ``(organization, source, external_id)``:
  201 when new, 200 with the merged order when it exists. It never uses the duplicate window.
* Otherwise, with ``duplicate_window`` set (single ``POST`` only), an identical order — same
  organization, same contact (else phone, else email), same products and quantities — created within
  the window and not cancelled is returned instead (200, ``is_duplicate: true``). Concurrent
  identical requests are serialised by a transaction-scoped advisory lock on the fingerprint, so
  exactly one order is made.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hub.db import Conn
from hub.errors import ValidationFailed
from hub.orders import rows as orders
from hub.orders.changes import ORIGIN_FIELDS, merge, phone_number, require_contact
from hub.orders.lines import (
    check_line_totals,
    compute_amounts,
    fingerprint,
    in_currency,
    price_lines,
    require_lines,
)
from hub.orders.rows import lock_key
from hub.orders.write import Written, set_status, utcnow, write_change, write_new
from hub.schemas.orders import OrderCreate


async def create_order(
    conn: Conn,
    *,
    organization_id: str,
    data: OrderCreate,
    actor: str,
    phone_region: str = "SA",
    duplicate_window: int | None = None,
) -> Written:
    """Create (or upsert, or find the duplicate of) one order in the caller's transaction."""
    field_name, requested = data.lines()
    if data.products is not None and data.items is not None:
        raise ValidationFailed(details={"items": "send products or items, not both"})
    require_lines(field_name, requested)
    source = data.source or "manual"
    if data.external_id is not None:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(organization_id, source, data.external_id))
        existing = await conn.fetchrow(
            "SELECT * FROM orders WHERE organization_id = $1 AND source = $2 AND external_id = $3 FOR UPDATE",
            organization_id,
            source,
            data.external_id,
        )
        if existing is not None:
            return await _upsert_existing(conn, dict(existing), data=data, actor=actor, phone_region=phone_region)
    row = await _new_row(conn, organization_id=organization_id, data=data, actor=actor, phone_region=phone_region)
    if duplicate_window is not None and data.external_id is None and row["fingerprint"] is not None:
        duplicate = await _recent_duplicate(conn, organization_id, row["fingerprint"], duplicate_window)
        if duplicate is not None:
            return Written(order=orders.public(duplicate, is_duplicate=True), duplicate=True)
    return await write_new(conn, row, field_name=field_name)


async def _new_row(
    conn: Conn, *, organization_id: str, data: OrderCreate, actor: str, phone_region: str
) -> dict[str, Any]:
    field_name, lines_in = data.lines()
    assert lines_in is not None
    contact = None
    if data.contact_id is not None:
        contact = await require_contact(conn, organization_id=organization_id, contact_id=data.contact_id)
    name = data.customer_name or (contact or {}).get("name")
    if not name:
        raise ValidationFailed(details={"customer_name": "is required unless contact_id is given"})
    phone = phone_number(data.customer_phone, region=phone_region) or (contact or {}).get("phone")
    email = data.customer_email or (contact or {}).get("email")
    priced = await price_lines(conn, organization_id=organization_id, field=field_name, lines=lines_in)
    if data.currency and priced.catalog_currency and data.currency != priced.catalog_currency:
        raise ValidationFailed(
            details={"currency": f"must be {priced.catalog_currency}, the currency of the catalog products ordered"}
        )
    currency = data.currency or priced.catalog_currency or await _default_currency(conn, organization_id)
    lines = in_currency(priced.lines, currency)
    check_line_totals(field_name, lines_in, lines, currency)
    amounts = compute_amounts(
        lines,
        currency=currency,
        discount=data.discount,
        tax=data.tax,
        delivery_fee=data.delivery_fee,
        subtotal=data.subtotal,
        total_amount=data.total_amount,
    )
    now = utcnow()
    row = orders.new_row(
        organization_id=organization_id,
        source=data.source or "manual",
        created_by=data.created_by or "api",
        currency=currency,
        now=now,
    )
    row.update(
        external_id=data.external_id,
        reference=data.reference,
        contact_id=data.contact_id,
        customer_name=name,
        customer_email=email,
        customer_phone=phone,
        shipping_address=data.shipping_address,
        products=lines,
        subtotal=amounts.subtotal,
        discount=amounts.discount,
        tax=amounts.tax,
        delivery_fee=amounts.delivery_fee,
        total_amount=amounts.total_amount,
        payment_status=data.payment_status or "pending",
        fulfillment_status=data.fulfillment_status or "unfulfilled",
        notes=data.notes,
        cancellation_reason=data.cancellation_reason,
    )
    set_status(row, data.status or "pending", actor=actor, at=now)
    if data.external_id is None:
        row["fingerprint"] = fingerprint(contact_id=data.contact_id, phone=phone, email=email, lines=lines)
    return row


async def _default_currency(conn: Conn, organization_id: str) -> str:
    currency = await conn.fetchval("SELECT default_currency FROM organizations WHERE id = $1", organization_id)
    return str(currency or "SAR")


async def _recent_duplicate(
    conn: Conn, organization_id: str, print_: str, window_seconds: int
) -> dict[str, Any] | None:
    # The lock makes concurrent identical requests wait for the first one's commit; READ COMMITTED
    # then lets the next statement see the order it made.
    await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(organization_id, "fingerprint", print_))
    record = await conn.fetchrow(
        "SELECT * FROM orders WHERE organization_id = $1 AND fingerprint = $2 AND created >= $3 "
        "AND deleted_at IS NULL AND status <> 'cancelled' ORDER BY created DESC LIMIT 1",
        organization_id,
        print_,
        utcnow() - timedelta(seconds=window_seconds),
    )
    return None if record is None else dict(record)


async def _upsert_existing(
    conn: Conn, before: dict[str, Any], *, data: OrderCreate, actor: str, phone_region: str
) -> Written:
    """The source restates an order it already sent: merge what it gives (lines included).

    A deleted order restated by its source comes back (as with ingested events): it takes stock
    again and emits ``order.created``, since subscribers last heard ``order.deleted``.
    """
    restoring = before["deleted_at"] is not None
    if data.contact_id is not None:
        await require_contact(conn, organization_id=before["organization_id"], contact_id=data.contact_id)
    after, field_name = await merge(
        conn,
        before=before,
        data=data,
        actor=actor,
        phone_region=phone_region,
        fixed=ORIGIN_FIELDS - {"source", "external_id"},
        lines_allowed=True,
    )
    if not restoring:
        return await write_change(conn, before=before, after=after, field_name=field_name)
    after["deleted_at"] = None
    written = await write_change(conn, before=before, after=after, field_name=field_name, events=["order.created"])
    written.created = True
    return written

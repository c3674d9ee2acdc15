"""Realistic bench data: Salla order webhooks (signed as Salla signs them) and bulk order rows.

The webhook body follows Salla's documented ``order.created`` model (the same shape as the
recorded payloads the connector is tested with), ~4 KB. Bodies differ only in the order id, so a
template is serialized once and each request splices its id in: the load generator spends its CPU
on HTTP, not on building JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

ID_MARKER = 987654321012345
SALLA_SOURCE = "salla"

#: Salla status slugs and the share of orders in each (pending-like states dominate a live store).
SALLA_SLUGS = ("under_review", "in_progress", "completed", "shipped", "delivered")
STATUSES = ("pending", "confirmed", "preparing", "ready", "shipped", "delivered", "cancelled", "returned")
STATUS_WEIGHTS = (30, 10, 10, 5, 15, 22, 6, 2)
SOURCES = ("salla", "zid", "shopify", "woocommerce", "chat_agent", "manual", "api")
SOURCE_WEIGHTS = (30, 20, 20, 10, 10, 5, 5)
PAYMENTS = ("pending", "paid", "refunded", "partially_refunded", "failed")
PAYMENT_WEIGHTS = (35, 55, 4, 2, 4)


def _money(amount: float) -> dict[str, Any]:
    return {"amount": amount, "currency": "SAR"}


def _item(item_id: int, name: str, sku: str, quantity: int, price: float) -> dict[str, Any]:
    return {
        "id": item_id,
        "name": name,
        "sku": sku,
        "quantity": quantity,
        "currency": "SAR",
        "weight": 0.5,
        "weight_label": "0.5 kg",
        "amounts": {
            "price_without_tax": _money(price),
            "total_discount": _money(0),
            "tax": {"percent": "15.00", "amount": _money(round(price * quantity * 0.15, 2))},
            "total": _money(price * quantity),
        },
        "notes": "",
        "product": {
            "id": item_id + 1000,
            "type": "product",
            "status": "sale",
            "is_available": True,
            "sku": sku,
            "name": name,
            "price": _money(price),
            "sale_price": _money(0),
            "currency": "SAR",
            "url": f"https://salla.sa/dev-store/p{item_id + 1000}",
            "thumbnail": "https://cdn.salla.sa/bYQEn/buItWZf4OLbaTmL7vTMlDUWLOn20hfpq3QUbD2AB.jpg",
            "has_special_price": False,
            "regular_price": _money(price),
        },
        "options": [],
        "images": [],
        "codes": [],
        "files": [],
    }


def salla_order(
    order_id: int, *, event: str = "order.created", slug: str = "under_review", minute: int = 5
) -> dict[str, Any]:
    """A Salla webhook envelope for order ``order_id``; ``minute`` moves its version clock."""
    return {
        "event": event,
        "merchant": 1305146709,
        "created_at": f"Sun Mar 10 2024 14:{minute:02d}:13 GMT+0300",
        "data": {
            "id": order_id,
            "reference_id": order_id,
            "urls": {
                "customer": "https://salla.sa/dev-store/order/DXZbOz68qjnYaOw04oBa35wVELBpJyxo",
                "admin": "https://s.salla.sa/orders/order/DXZbOz68qjnYaOw04oBa35wVELBpJyxo",
            },
            "date": {"date": "2024-03-10 14:05:11.000000", "timezone_type": 3, "timezone": "Asia/Riyadh"},
            "draft": False,
            "read": False,
            "source": "store",
            "source_device": "mobile",
            "source_details": {
                "type": "direct",
                "value": None,
                "device": "mobile",
                "user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15",
                "ip": "31.166.186.78",
            },
            "status": {"id": 566146469, "name": "Under review", "slug": slug, "customized": {"id": 986688842}},
            "payment_method": "cod",
            "currency": "SAR",
            "amounts": {
                "sub_total": _money(250),
                "shipping_cost": _money(20),
                "cash_on_delivery": _money(5),
                "tax": {"percent": "15.00", "amount": _money(33.75)},
                "discounts": [
                    {
                        "title": "Opening",
                        "type": "coupon",
                        "code": "OPEN10",
                        "discount": "25.00",
                        "discounted_shipping": 0,
                    }
                ],
                "total": _money(283.75),
            },
            "shipping": {
                "id": 1833934431,
                "company": "SMSA",
                "receiver": {"name": "Mohammed Ali", "email": "mohammed.ali@example.com", "phone": "966501806978"},
                "address": {
                    "country": "SA",
                    "country_code": "SA",
                    "city": "Jeddah",
                    "shipping_address": "Abu Umayyah Al-Damri St, Al-Zahraa, Jeddah, Saudi Arabia",
                    "street_number": "Abu Umayyah Al-Damri",
                    "block": "Al-Zahraa",
                    "postal_code": "23425",
                    "geo_coordinates": {"lat": 21.5679, "lng": 39.1563},
                },
                "shipment": {"id": "0", "pickup_id": None, "tracking_link": "0", "label": []},
                "policy_options": [],
            },
            "can_cancel": True,
            "is_pending_payment": False,
            "pending_payment_ends_at": 0,
            "customer": {
                "id": 225167971,
                "first_name": "Mohammed",
                "last_name": "Ali",
                "mobile": 501806978,
                "mobile_code": "+966",
                "email": "mohammed.ali@example.com",
                "gender": "male",
                "city": "Jeddah",
                "country": "Saudi Arabia",
                "country_code": "SA",
                "currency": "SAR",
            },
            "items": [
                _item(70815337, "Cotton shirt", "SH-001", 2, 100),
                _item(1907902809, "Summer hat", "HT-002", 1, 50),
            ],
            "bank": None,
            "tags": [],
        },
    }


class BodyTemplate:
    """A serialized webhook body with the order id spliced in per request."""

    def __init__(self, envelope: dict[str, Any]) -> None:
        raw = orjson.dumps(envelope)
        self.parts = raw.split(str(ID_MARKER).encode())
        if len(self.parts) < 2:
            raise ValueError("the envelope does not contain ID_MARKER")

    def body(self, order_id: int) -> bytes:
        """The body for ``order_id``."""
        return str(order_id).encode().join(self.parts)


def salla_template(event: str = "order.created", *, slug: str = "under_review", minute: int = 5) -> BodyTemplate:
    """The template of a Salla webhook whose order id is filled in per request."""
    return BodyTemplate(salla_order(ID_MARKER, event=event, slug=slug, minute=minute))


def salla_signature(secret: str, body: bytes) -> str:
    """``X-Salla-Signature``: hex HMAC-SHA256 of the raw body keyed with the connection secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def salla_headers(secret: str, body: bytes) -> dict[str, str]:
    """The headers Salla sends with a signed webhook."""
    return {
        "Content-Type": "application/json",
        "X-Salla-Signature": salla_signature(secret, body),
        "X-Salla-Security-Strategy": "Signature",
    }


# ---- bulk order rows ------------------------------------------------------------------------------

ORDER_COLUMNS = (
    "id",
    "organization_id",
    "source",
    "external_id",
    "reference",
    "created_by",
    "customer_name",
    "customer_email",
    "customer_phone",
    "shipping_address",
    "products",
    "subtotal",
    "discount",
    "tax",
    "delivery_fee",
    "total_amount",
    "currency",
    "status",
    "payment_status",
    "fulfillment_status",
    "status_history",
    "created",
    "updated",
)

_NAMES = ("Mohammed Ali", "Sara Ahmed", "Omar Hassan", "Fatimah Saleh", "Khalid Nasser", "Noura Fahad")
_PRODUCTS = (("SH-001", "Cotton shirt", "100.00"), ("HT-002", "Summer hat", "50.00"), ("BG-7", "Tote bag", "75.50"))


def _ulid_like(prefix: str, when: datetime, n: int) -> str:
    """A sortable id in the hub's shape (prefix + 26 chars) without a ULID per row."""
    millis = int(when.timestamp() * 1000)
    return f"{prefix}_{millis:013d}{n:013d}"


def order_rows(organization_id: str, start: int, count: int, *, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """``count`` realistic order rows (statuses, sources, payments spread; a year of dates)."""
    rng = random.Random(seed + start)
    now = datetime.now(UTC)
    statuses = rng.choices(STATUSES, STATUS_WEIGHTS, k=count)
    sources = rng.choices(SOURCES, SOURCE_WEIGHTS, k=count)
    payments = rng.choices(PAYMENTS, PAYMENT_WEIGHTS, k=count)
    for k in range(count):
        n = start + k
        created = now - timedelta(seconds=rng.randrange(365 * 24 * 3600))
        sku, name, price = _PRODUCTS[n % len(_PRODUCTS)]
        quantity = 1 + n % 3
        subtotal = Decimal(price) * quantity
        tax = (subtotal * Decimal("0.15")).quantize(Decimal("0.01"))
        fee = Decimal("20.00")
        status = statuses[k]
        customer = _NAMES[n % len(_NAMES)]
        line = {"product_id": None, "sku": sku, "name": name, "quantity": quantity, "price": price}
        line["total"] = str(subtotal)
        yield (
            _ulid_like("ord", created, n),
            organization_id,
            sources[k],
            str(5_000_000_000 + n),
            str(41_000_000 + n),
            "webhook",
            customer,
            f"customer{n}@example.com",
            f"+9665{n % 100_000_000:08d}",
            orjson.dumps({"city": "Jeddah", "country": "SA", "line1": f"{n % 200} King Road"}).decode(),
            orjson.dumps([line]).decode(),
            subtotal,
            Decimal("0.00"),
            tax,
            fee,
            subtotal + tax + fee,
            "SAR",
            status,
            payments[k],
            "fulfilled" if status in ("shipped", "delivered") else "unfulfilled",
            orjson.dumps([{"status": status, "at": created.isoformat(), "by": "bench"}]).decode(),
            created,
            created,
        )

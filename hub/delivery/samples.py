"""The sample behind ``POST /api/v1/webhooks/{id}/test``: a ``webhook.test`` event carrying an order.

The type is deliberately not an ``order.*`` type, so a receiver that routes on ``type`` never acts
on it as a real order; its ``data.order`` has the full shape of a real one, so a receiver's parser
can still be exercised end to end.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["SAMPLE_ORDER_ID", "TEST_EVENT_TYPE", "sample_order"]

#: The type of test events.
TEST_EVENT_TYPE = "webhook.test"
#: The (fixed, never real) order id test events carry.
SAMPLE_ORDER_ID = "ord_test"


def sample_order(organization_id: str, now: datetime) -> dict[str, Any]:
    """An order-shaped sample, so a receiver's parser can be exercised without a real order."""
    at = now.isoformat().replace("+00:00", "Z")
    return {
        "id": SAMPLE_ORDER_ID,
        "organization_id": organization_id,
        "source": "test",
        "external_id": None,
        "reference": "TEST-1",
        "created_by": "api",
        "contact_id": None,
        "customer_name": "Test Customer",
        "customer_email": "test@example.com",
        "customer_phone": "+966500000000",
        "shipping_address": "Test address",
        "products": [
            {"product_id": None, "sku": "TEST-1", "name": "Test product", "quantity": 1, "price": 100, "total": 100}
        ],
        "subtotal": 100,
        "discount": 0,
        "tax": 15,
        "delivery_fee": 0,
        "total_amount": 115,
        "currency": "SAR",
        "status": "pending",
        "payment_status": "pending",
        "fulfillment_status": "unfulfilled",
        "notes": "This is a test event sent from Orderhub.",
        "cancellation_reason": None,
        "status_history": [{"status": "pending", "at": at, "by": "test"}],
        "source_updated_at": None,
        "created": at,
        "updated": at,
        "is_duplicate": False,
    }

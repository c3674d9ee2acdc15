"""Example request bodies for the OpenAPI document: what "Try it out" in ``/docs`` starts from.

Each is a request the route accepts as it stands (``tests/api/test_openapi_responses.py`` validates
them against the documented schemas); ids written ``…_…`` are placeholders to replace with real ones.
"""

from __future__ import annotations

from typing import Any

_LINE = {"name": "Premium T-Shirt", "sku": "TSH-001", "quantity": 2, "price": "150.00"}
_ORDER = {"customer_name": "Ahmed Al-Rashid", "customer_phone": "+966501234567", "products": [_LINE]}

EXAMPLES: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/orders"): _ORDER,
    ("POST", "/api/v1/orders/bulk"): [_ORDER, {**_ORDER, "customer_name": "Sara Al-Otaibi"}],
    ("PATCH", "/api/v1/orders/bulk/status"): {"updates": [{"id": "ord_01J…", "status": "confirmed"}]},
    ("DELETE", "/api/v1/orders/bulk"): {"ids": ["ord_01J…"]},
    ("PUT", "/api/v1/orders/{id}"): {"notes": "Leave at the door", "customer_email": "ahmed@example.com"},
    ("PATCH", "/api/v1/orders/{id}/status"): {"status": "confirmed", "payment_status": "paid"},
    ("POST", "/api/v1/orders/{id}/cancel"): {"reason": "Customer requested cancellation"},
    ("PUT", "/api/v1/orders/{id}/items"): {"products": [{**_LINE, "quantity": 3}]},
    ("POST", "/api/v1/products"): {
        "name": "Premium T-Shirt",
        "sku": "TSH-001",
        "category": "Clothing",
        "price": 150,
        "stock_quantity": 50,
    },
    ("PUT", "/api/v1/products/{id}"): {"price": 140, "stock_quantity": 45},
    ("POST", "/api/v1/contacts"): {"name": "Ahmed Al-Rashid", "phone": "+966501234567", "email": "ahmed@example.com"},
    ("POST", "/api/v1/connections"): {
        "source": "salla",
        "name": "My Salla store",
        "secret": "my-salla-webhook-secret-2024",
    },
    ("POST", "/api/v1/webhooks"): {"url": "https://merchant.example/hooks/orders", "event_types": ["order.*"]},
    ("PUT", "/api/v1/webhooks/{id}"): {"enabled": True, "description": "Orders to the ERP"},
    ("POST", "/api/v1/webhooks/{id}/recover"): {"since": "2026-01-01T00:00:00Z"},
}

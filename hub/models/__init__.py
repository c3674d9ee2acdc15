"""All tables; importing this package registers them on ``SQLModel.metadata`` (Alembic reads it)."""

from hub.models.catalog import Contact, Product
from hub.models.inbound import Connection, InboundEvent
from hub.models.orders import IdempotencyKey, Order, OrderEvent
from hub.models.tenancy import ApiKey, Organization
from hub.models.webhooks import Delivery, DeliveryAttempt, WebhookEndpoint

__all__ = [
    "ApiKey",
    "Connection",
    "Contact",
    "Delivery",
    "DeliveryAttempt",
    "IdempotencyKey",
    "InboundEvent",
    "Order",
    "OrderEvent",
    "Organization",
    "Product",
    "WebhookEndpoint",
]

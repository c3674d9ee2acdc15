"""Delivery jobs (filled in by the webhook sender)."""

from __future__ import annotations

from typing import Any


async def deliver_webhooks(ctx: dict[str, Any], delivery_ids: list[str]) -> int:
    """Send due deliveries (placeholder until the sender lands)."""
    return 0


async def sweep_deliveries(hub: Any) -> int:
    """Re-enqueue due deliveries (placeholder)."""
    return 0

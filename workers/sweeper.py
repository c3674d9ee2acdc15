"""The sweeper: re-enqueues work that is due but not done (placeholder)."""

from __future__ import annotations

from typing import Any


async def sweep(ctx: dict[str, Any]) -> None:
    """Re-enqueue due work."""

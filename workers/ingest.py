"""Ingestion jobs (filled in by the pipeline)."""

from __future__ import annotations

from typing import Any


async def ingest_events(ctx: dict[str, Any], event_ids: list[str]) -> int:
    """Process inbound events (placeholder until the pipeline lands)."""
    return 0


async def sweep_inbound(hub: Any) -> int:
    """Re-enqueue inbound events left unprocessed (placeholder)."""
    return 0

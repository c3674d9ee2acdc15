"""The worker starts, wakes promptly and stops cleanly on real Redis."""

from __future__ import annotations

from typing import Any


async def test_worker_starts_and_stops(worker: Any) -> None:
    assert worker.functions.keys() >= {"ingest_events", "deliver_webhooks"}

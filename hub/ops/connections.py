"""Platform connections as the on-call engineer sees them: sync state, last sync, what webhooks missed.

Read from Postgres at request time (any API process answers for the whole cluster), for the ops page,
``hub status`` and ``/metrics`` (``hub_connections{source,state}``, ``hub_reconcile_missed_total{source}``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: Sources that can be pulled; their series exist from start-up, at zero.
PULL_SOURCES = ("chat_agent", "salla", "shopify", "woocommerce", "zid")
STATES = ("idle", "running", "failed", "needs_attention")

_ROWS = """
SELECT id, organization_id, source, name, pull, sync, sync_next_at
FROM connections WHERE deleted_at IS NULL AND pull
ORDER BY (sync->>'state' = 'needs_attention') DESC, (sync->>'state' = 'failed') DESC, id
LIMIT $1
"""
_TOTALS = """
SELECT source, coalesce(sync->>'state', 'idle') AS state, count(*) AS n,
       sum(coalesce((sync->>'orders_missed_by_webhooks')::bigint, 0)) AS missed
FROM connections WHERE deleted_at IS NULL AND pull GROUP BY 1, 2
"""


@dataclass(frozen=True, slots=True)
class ConnectionLine:
    """One pulled connection's state."""

    id: str
    organization_id: str
    source: str
    name: str
    state: str
    last_synced_at: str | None
    next_sync_at: datetime | None
    orders_seen: int
    orders_missed_by_webhooks: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class ConnectionTotals:
    """Counts per (source, state) and the missed orders per source."""

    by_state: dict[tuple[str, str], int]
    missed: dict[str, int]


async def connection_lines(pool: asyncpg.Pool, *, limit: int = 50) -> list[ConnectionLine]:
    """The pulled connections, those needing attention or failing first."""
    rows = await pool.fetch(_ROWS, limit)
    return [_line(dict(r)) for r in rows]


def _line(row: dict[str, Any]) -> ConnectionLine:
    sync: dict[str, Any] = row["sync"] or {}
    return ConnectionLine(
        id=row["id"],
        organization_id=row["organization_id"],
        source=row["source"],
        name=row["name"],
        state=str(sync.get("state", "idle")),
        last_synced_at=sync.get("last_synced_at"),
        next_sync_at=row["sync_next_at"],
        orders_seen=int(sync.get("orders_seen", 0)),
        orders_missed_by_webhooks=int(sync.get("orders_missed_by_webhooks", 0)),
        last_error=sync.get("last_error"),
    )


async def connection_totals(pool: asyncpg.Pool) -> ConnectionTotals:
    """Cluster-wide counts for ``/metrics``."""
    by_state: dict[tuple[str, str], int] = {}
    missed: dict[str, int] = {}
    for row in await pool.fetch(_TOTALS):
        by_state[(row["source"], row["state"])] = int(row["n"])
        missed[row["source"]] = missed.get(row["source"], 0) + int(row["missed"] or 0)
    return ConnectionTotals(by_state=by_state, missed=missed)


def families(totals: ConnectionTotals) -> Iterator[Metric]:
    """``hub_connections{source,state}`` and ``hub_reconcile_missed_total{source}``."""
    gauge = GaugeMetricFamily(
        "hub_connections", "Pulled platform connections per sync state.", labels=["source", "state"]
    )
    sources = sorted(set(PULL_SOURCES) | {s for s, _ in totals.by_state} | set(totals.missed))
    for source in sources:
        for state in sorted(set(STATES) | {st for s, st in totals.by_state if s == source}):
            gauge.add_metric([source, state], totals.by_state.get((source, state), 0))
    yield gauge
    missed = CounterMetricFamily(
        "hub_reconcile_missed",
        "Orders (or order versions) a reconcile found that no webhook had brought.",
        labels=["source"],
    )
    for source in sources:
        missed.add_metric([source], totals.missed.get(source, 0))
    yield missed


class _Fixed(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


def render(totals: ConnectionTotals) -> bytes:
    """The text exposition of :func:`families` (appended to ``/metrics``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families(totals))))
    return generate_latest(registry)

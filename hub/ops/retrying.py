"""Deliveries that are failing but still retrying: the on-call view of an endpoint going wrong *now*.

A delivery is *retrying* when it is ``pending`` and has at least one attempt behind it: every attempt
that succeeds ends the delivery, so a pending delivery with attempts has only failed so far and is
waiting for its next try. These are the deliveries an engineer can still save (fix the endpoint,
press "retry now") before the retry schedule is spent and they become ``failed``.

Read by the ops page and ``hub status`` (through :func:`hub.ops.actions.summary`) and by
``/metrics`` (the ``hub_deliveries_retrying{endpoint=…}`` gauge). Rows come from the partial index
on pending deliveries, so the cost follows the backlog, not the ledger's size.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from prometheus_client.core import GaugeMetricFamily
from pydantic import BaseModel

from hub.db import Conn

__all__ = ["RetryingDelivery", "RetryingEndpoint", "deliveries", "display_url", "endpoints", "gauge"]

#: Latest retrying deliveries listed with a "retry now" button.
LATEST_RETRYING = 10
#: Endpoints listed (the worst, by how many deliveries they hold back).
MAX_ENDPOINTS = 100


def display_url(url: str) -> str:
    """``url`` without credentials or query string (those may hold secrets); ``?…`` marks a dropped query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "…" if parts.query else "", ""))


class RetryingEndpoint(BaseModel):
    """One endpoint holding deliveries that failed at least once and will be tried again."""

    endpoint_id: str
    organization_id: str
    #: Without credentials or query string (:func:`display_url`).
    url: str
    enabled: bool
    retrying: int
    #: The soonest next attempt among them (None: one is being sent right now).
    next_attempt_at: datetime | None
    #: The delivery whose next attempt comes first: the one "retry now" sends.
    next_delivery_id: str
    last_status_code: int | None
    last_error: str | None
    #: When the most recent of its failures was recorded.
    last_failed_at: datetime


class RetryingDelivery(BaseModel):
    """One retrying delivery, as the ops page lists it beside the failed ones."""

    id: str
    organization_id: str
    endpoint_id: str
    endpoint_url: str
    event_id: str
    event_type: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    updated: datetime


_RETRYING = "d.status = 'pending' AND d.attempt_count > 0"


async def endpoints(conn: Conn, *, limit: int = MAX_ENDPOINTS) -> list[RetryingEndpoint]:
    """Endpoints with retrying deliveries, most held back first; the error is the latest one recorded."""
    rows = await conn.fetch(
        "SELECT d.endpoint_id, e.organization_id, e.url, e.enabled AND e.deleted_at IS NULL AS enabled, "
        "count(*) AS retrying, min(d.next_attempt_at) AS next_attempt_at, "
        "(array_agg(d.id ORDER BY d.next_attempt_at NULLS LAST, d.id))[1] AS next_delivery_id, "
        "(array_agg(d.last_status_code ORDER BY d.updated DESC, d.id DESC))[1] AS last_status_code, "
        "(array_agg(d.last_error ORDER BY d.updated DESC, d.id DESC))[1] AS last_error, "
        "max(d.updated) AS last_failed_at "
        f"FROM deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE {_RETRYING} "
        "GROUP BY d.endpoint_id, e.organization_id, e.url, e.enabled, e.deleted_at "
        "ORDER BY count(*) DESC, d.endpoint_id LIMIT $1",
        limit,
    )
    return [RetryingEndpoint(**{**dict(row), "url": display_url(row["url"])}) for row in rows]


async def deliveries(conn: Conn, *, limit: int = LATEST_RETRYING) -> list[RetryingDelivery]:
    """The most recently failed retrying deliveries."""
    rows = await conn.fetch(
        "SELECT d.id, d.organization_id, d.endpoint_id, e.url AS endpoint_url, d.event_id, d.event_type, "
        "d.attempt_count, d.next_attempt_at, d.last_status_code, d.last_error, d.updated "
        f"FROM deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE {_RETRYING} "
        "ORDER BY d.updated DESC, d.id DESC LIMIT $1",
        limit,
    )
    return [RetryingDelivery(**{**dict(row), "endpoint_url": display_url(row["endpoint_url"])}) for row in rows]


def gauge(rows: Iterable[RetryingEndpoint]) -> GaugeMetricFamily:
    """``hub_deliveries_retrying{endpoint}``: an endpoint with none has no sample (absent means zero)."""
    family = GaugeMetricFamily(
        "hub_deliveries_retrying",
        "Deliveries that failed at least once and are waiting for their next attempt, by endpoint id.",
        labels=["endpoint"],
    )
    for row in rows:
        family.add_metric([row.endpoint_id], row.retrying)
    return family

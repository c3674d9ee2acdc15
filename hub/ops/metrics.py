"""Prometheus metrics: cluster-wide figures read at scrape time, per-process HTTP counters, rejects.

Why computed at scrape time: API processes and workers run on many machines, and a worker serves
no HTTP, so per-process counters would each see a slice. Everything that matters is in Postgres
(the source of truth) or Redis (the queue), so any API process can answer ``/metrics`` for the
whole cluster: :func:`render` turns a :class:`hub.ops.stats.MetricsSnapshot` into the
text format. Only ``hub_http_*`` is per process (each process counts the requests it served; sum
them across ``instance`` in PromQL); every other ``hub_*`` series is the same cluster-wide value
whichever process answers (take ``max without (instance)``). ``docs/operations.md`` lists them.

Rejected inbound requests (bad signature, bad payload) are counted in Redis by
:mod:`hub.ops.rejects` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from hub.ops import retrying as ops_retrying
from hub.ops.counts import LATENCY_BUCKETS_SECONDS
from hub.ops.rejects import (
    BAD_PAYLOAD,
    BAD_SIGNATURE,
    MAX_REJECT_SOURCES,
    REJECT_BUCKET_TTL_SECONDS,
    minute_of,
    read_rejects,
    record_reject,
)

if TYPE_CHECKING:
    from hub.ops.stats import MetricsSnapshot

# The reject counters and latency buckets are re-exported: the receiver and ``/metrics`` name them here.
__all__ = [
    "BAD_PAYLOAD",
    "BAD_SIGNATURE",
    "LATENCY_BUCKETS_SECONDS",
    "MAX_REJECT_SOURCES",
    "REJECT_BUCKET_TTL_SECONDS",
    "HttpMetrics",
    "minute_of",
    "read_rejects",
    "record_reject",
    "render",
]

_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """This process's HTTP request counter and latency histogram (``hub_http_*``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "hub_http_requests",
            "HTTP requests served by this process, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "hub_http_request_duration_seconds",
            "HTTP request duration in this process, by method and route template.",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
        )
        # bounded: methods are folded, routes are templates, statuses are HTTP's
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request (unknown methods are folded into ``OTHER`` to bound cardinality)."""
        method = method if method in _HTTP_METHODS else "OTHER"
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # labels() locks and builds the key each time; a route's pair is looked up once
            children = self._children[key] = (
                self.requests.labels(method, route, str(status)),
                self.duration.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)


class _Fixed(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def render(http: HttpMetrics | None, snapshot: MetricsSnapshot) -> bytes:
    """The Prometheus text exposition of ``snapshot`` plus this process's HTTP metrics."""
    registry = CollectorRegistry(auto_describe=False)
    families = list(cluster_families(snapshot))
    if http is not None:
        families.extend(http.registry.collect())
    registry.register(_Fixed(families))
    return generate_latest(registry)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def cluster_families(snap: MetricsSnapshot) -> Iterator[Metric]:
    """Every cluster-wide ``hub_*`` family, present (with zeros) from the first scrape."""
    q = snap.live.queue
    yield _gauge(
        "hub_queue_depth",
        "Jobs in the arq queue: waiting, deferred and running (arq keeps a job queued until it ends).",
        q.depth,
    )
    yield _gauge("hub_queue_ready", "Jobs waiting in the arq queue whose start time has come.", q.ready)
    yield _gauge(
        "hub_queue_oldest_job_age_seconds",
        "How long the oldest waiting job has waited (0 when none is waiting).",
        q.oldest_age_seconds or 0.0,
    )
    yield _gauge(
        "hub_jobs_in_progress",
        "arq jobs running now on any worker (in-progress keys of jobs still queued).",
        q.in_progress,
    )

    live, totals = snap.live, snap.totals
    yield _gauge(
        "hub_inbound_oldest_unprocessed_age_seconds",
        "Age of the oldest inbound event still waiting to be processed (0 when none).",
        live.inbound_oldest_unprocessed_age_seconds or 0.0,
    )
    yield _gauge("hub_inbound_pending", "Inbound events stored but not processed yet.", live.inbound_pending)
    yield _gauge("hub_inbound_failed", "Inbound events whose processing failed (need a look).", live.inbound_failed)
    yield _gauge("hub_deliveries_pending", "Deliveries not yet succeeded or given up.", live.deliveries_pending)
    yield _gauge("hub_deliveries_due", "Pending deliveries whose next attempt is due now.", live.deliveries_due)
    yield _gauge(
        "hub_backlog",
        "Work waiting for a worker now: unprocessed inbound events + due deliveries + ready arq jobs.",
        live.inbound_pending + live.deliveries_due + q.ready,
    )
    yield _gauge(
        "hub_deliveries_oldest_due_age_seconds",
        "How long the most overdue pending delivery has been due (0 when none).",
        live.deliveries_oldest_due_age_seconds or 0.0,
    )
    yield _gauge("hub_deliveries_failed", "Deliveries that exhausted their retries.", live.deliveries_failed)
    yield _gauge(
        "hub_endpoints_disabled", "Webhook endpoints disabled (automatically or by hand).", live.endpoints_disabled
    )
    yield ops_retrying.gauge(snap.retrying)

    counters = totals.counters
    ingest = CounterMetricFamily(
        "hub_ingest_events",
        "Inbound events: status=received counts every stored event, processed/failed/ignored the outcomes.",
        labels=["source", "status"],
    )
    for source, statuses in sorted(counters.ingest.items()):
        for status, count in sorted(statuses.items()):
            ingest.add_metric([source, status], count)
    yield ingest

    rejects = CounterMetricFamily(
        "hub_ingest_rejects",
        "Inbound requests refused before storage (bad signature, bad payload), by source and reason.",
        labels=["source", "reason"],
    )
    for source, reasons in sorted(live.rejects.items()):
        for reason, (lifetime, _recent) in sorted(reasons.items()):
            rejects.add_metric([source, reason], lifetime)
    yield rejects

    deliveries = CounterMetricFamily(
        "hub_deliveries",
        "Deliveries: status=created counts every delivery made, succeeded/failed the outcomes.",
        labels=["status"],
    )
    for status in ("created", "succeeded", "failed"):
        deliveries.add_metric([status], counters.deliveries.get(status, 0))
    yield deliveries

    attempts = CounterMetricFamily(
        "hub_delivery_attempts", "Delivery attempts by endpoint id and outcome.", labels=["endpoint", "outcome"]
    )
    for endpoint_id, (ok, failed) in sorted(totals.attempts.items()):
        attempts.add_metric([endpoint_id, "success"], ok)
        attempts.add_metric([endpoint_id, "failure"], failed)
    yield attempts

    latency = HistogramMetricFamily(
        "hub_delivery_latency_seconds",
        "Latency of recorded delivery attempts (all endpoints).",
        buckets=[(repr(float(bound)), count) for bound, count in totals.latency_buckets]
        + [("+Inf", totals.latency_count)],
        sum_value=totals.latency_sum_seconds,
    )
    yield latency

    ratio = GaugeMetricFamily(
        "hub_endpoint_success_ratio", "Share of an endpoint's attempts that succeeded, last hour.", labels=["endpoint"]
    )
    quantiles = GaugeMetricFamily(
        "hub_endpoint_latency_seconds",
        "Delivery latency quantiles of an endpoint's attempts, last hour.",
        labels=["endpoint", "quantile"],
    )
    for endpoint in snap.endpoints:
        if endpoint.success_rate is not None:
            ratio.add_metric([endpoint.id], endpoint.success_rate)
        if endpoint.p50_ms is not None and endpoint.p95_ms is not None:
            quantiles.add_metric([endpoint.id, "0.5"], endpoint.p50_ms / 1000)
            quantiles.add_metric([endpoint.id, "0.95"], endpoint.p95_ms / 1000)
    yield ratio
    yield quantiles

    jobs = CounterMetricFamily(
        "hub_jobs",
        "Work done by workers: inbound events processed (any outcome) and delivery attempts.",
        labels=["kind"],
    )
    jobs.add_metric(["ingest"], totals.jobs_ingest)
    jobs.add_metric(["delivery"], totals.jobs_delivery)
    yield jobs
    yield _gauge(
        "hub_jobs_per_second",
        "Work items per second over the last refresh interval (see hub_jobs_total).",
        totals.jobs_per_second or 0.0,
    )
    yield CounterMetricFamily("hub_orders", "Orders stored (planner estimate above 100k rows).", value=counters.orders)
    yield _gauge(
        "hub_stats_age_seconds",
        "Age of the cached lifetime counts in this scrape (they refresh at most every few seconds).",
        max(0.0, snap.generated_at - totals.computed_at),
    )

"""``/metrics``: parsed with prometheus_client's own parser, its numbers match a state made in the tables."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from hub.app import create_app
from hub.db import create_pool
from hub.ops import metrics
from hub.ops import stats as ops_stats
from hub.settings import Settings
from tests.helpers.ops_state import EP_OFF, EP_OK, EP_RETRY, seed, seed_retrying

Client = TestClient[Any, Any]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

CLUSTER_FAMILIES = {
    "hub_queue_depth",
    "hub_queue_ready",
    "hub_queue_oldest_job_age_seconds",
    "hub_jobs_in_progress",
    "hub_inbound_oldest_unprocessed_age_seconds",
    "hub_inbound_pending",
    "hub_inbound_failed",
    "hub_deliveries_pending",
    "hub_deliveries_due",
    "hub_backlog",
    "hub_deliveries_oldest_due_age_seconds",
    "hub_deliveries_failed",
    "hub_endpoints_disabled",
    "hub_deliveries_retrying",
    "hub_ingest_events",
    "hub_ingest_rejects",
    "hub_deliveries",
    "hub_delivery_attempts",
    "hub_delivery_latency_seconds",
    "hub_endpoint_success_ratio",
    "hub_endpoint_latency_seconds",
    "hub_jobs",
    "hub_jobs_per_second",
    "hub_orders",
    "hub_stats_age_seconds",
    "hub_http_requests",
    "hub_http_request_duration_seconds",
}


async def _scrape(client: Client, headers: dict[str, str] | None = None) -> tuple[set[str], Samples]:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = list(text_string_to_metric_families(await resp.text()))
    samples: Samples = {}
    for family in families:
        assert family.name.startswith("hub_"), family.name
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return {f.name for f in families}, samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_every_family_exists_from_start_up(client: Client) -> None:
    names, samples = await _scrape(client)
    assert names >= CLUSTER_FAMILIES
    assert _value(samples, "hub_queue_depth") == 0
    assert _value(samples, "hub_deliveries_total", status="failed") == 0
    assert _value(samples, "hub_jobs_total", kind="ingest") == 0
    assert _value(samples, "hub_delivery_latency_seconds_count") == 0
    assert _value(samples, "hub_orders_total") == 0


async def test_counters_match_the_state(client: Client, db: asyncpg.Connection, settings: Settings) -> None:
    from hub import queue

    assert settings.redis_url is not None
    redis = await queue.connect(settings.redis_url)
    try:
        expected = await seed(db, redis, endpoint_url="http://127.0.0.1:9/hooks")
    finally:
        await redis.aclose()
    await client.get("/healthz")
    names, samples = await _scrape(client)
    assert names >= CLUSTER_FAMILIES

    assert _value(samples, "hub_queue_depth") == expected.queue_depth == 5
    assert _value(samples, "hub_queue_ready") == expected.queue_ready == 2
    assert 119 <= _value(samples, "hub_queue_oldest_job_age_seconds") < 180
    assert _value(samples, "hub_jobs_in_progress") == expected.in_progress == 2
    assert _value(samples, "hub_inbound_pending") == expected.inbound_pending
    assert 89 <= _value(samples, "hub_inbound_oldest_unprocessed_age_seconds") < 150
    assert _value(samples, "hub_inbound_failed") == expected.inbound_failed
    assert _value(samples, "hub_deliveries_failed") == expected.deliveries_failed
    assert _value(samples, "hub_deliveries_due") == 2
    assert _value(samples, "hub_backlog") == expected.inbound_pending + 2 + expected.queue_ready
    assert _value(samples, "hub_endpoints_disabled") == expected.endpoints_disabled
    assert _value(samples, "hub_orders_total") == expected.orders

    ingest = {
        (dict(labels)["source"], dict(labels)["status"]): value
        for (name, labels), value in samples.items()
        if name == "hub_ingest_events_total"
    }
    # status="received" counts every stored event; the others count outcomes.
    assert ingest == {
        ("salla", "received"): 8,
        ("salla", "processed"): 5,
        ("salla", "failed"): 2,
        ("salla", "ignored"): 0,
        ("shopify", "received"): 4,
        ("shopify", "processed"): 3,
        ("shopify", "failed"): 0,
        ("shopify", "ignored"): 1,
    }
    assert sum(sum(by.values()) for by in expected.ingest.values()) == 12
    for source, reasons in expected.rejects.items():
        for reason, count in reasons.items():
            assert _value(samples, "hub_ingest_rejects_total", source=source, reason=reason) == count
    assert _value(samples, "hub_deliveries_total", status="created") == sum(expected.deliveries.values())
    for status in ("succeeded", "failed"):
        assert _value(samples, "hub_deliveries_total", status=status) == expected.deliveries[status]
    for endpoint, (ok, failed) in expected.attempts.items():
        assert _value(samples, "hub_delivery_attempts_total", endpoint=endpoint, outcome="success") == ok
        assert _value(samples, "hub_delivery_attempts_total", endpoint=endpoint, outcome="failure") == failed
    assert _value(samples, "hub_jobs_total", kind="ingest") == 11  # every stored event not still waiting
    assert _value(samples, "hub_jobs_total", kind="delivery") == sum(ok + f for ok, f in expected.attempts.values())

    latencies = expected.latencies_ms
    assert _value(samples, "hub_delivery_latency_seconds_count") == len(latencies)
    assert _value(samples, "hub_delivery_latency_seconds_sum") == pytest.approx(sum(latencies) / 1000)
    for bound in metrics.LATENCY_BUCKETS_SECONDS:
        under = sum(1 for ms in latencies if ms <= bound * 1000)
        assert _value(samples, "hub_delivery_latency_seconds_bucket", le=str(bound)) == under, bound
    assert _value(samples, "hub_delivery_latency_seconds_bucket", le="+Inf") == len(latencies)

    assert _value(samples, "hub_endpoint_success_ratio", endpoint=EP_OK) == pytest.approx(4 / 7)
    assert _value(samples, "hub_endpoint_success_ratio", endpoint=EP_OFF) == 0
    assert _value(samples, "hub_endpoint_latency_seconds", endpoint=EP_OK, quantile="0.95") == pytest.approx(0.37)

    # Per process: this process served the /healthz above.
    assert _value(samples, "hub_http_requests_total", method="GET", route="/healthz", status="200") == 1


async def test_retrying_deliveries_per_endpoint(client: Client, db: asyncpg.Connection, settings: Settings) -> None:
    from hub import queue

    assert settings.redis_url is not None
    redis = await queue.connect(settings.redis_url)
    try:
        await seed(db, redis, endpoint_url="http://127.0.0.1:9/hooks")
    finally:
        await redis.aclose()
    _, before = await _scrape(client)
    assert not [key for key in before if key[0] == "hub_deliveries_retrying"]  # nothing retrying: no sample
    await seed_retrying(db, endpoint_url="http://127.0.0.1:9/retrying")
    _, samples = await _scrape(client)
    retrying = {
        dict(labels)["endpoint"]: v for (name, labels), v in samples.items() if name == "hub_deliveries_retrying"
    }
    # Pending deliveries never tried (EP_OK's two) are not retrying; given-up ones are counted as failed instead.
    assert retrying == {EP_RETRY: 2}


async def test_every_process_reports_the_same_cluster_figures(
    client: Client, db: asyncpg.Connection, settings: Settings
) -> None:
    """Two API processes (two apps) scrape the same numbers: nothing comes from process memory."""
    from hub import queue

    assert settings.redis_url is not None
    redis = await queue.connect(settings.redis_url)
    try:
        await seed(db, redis, endpoint_url="http://127.0.0.1:9/hooks")
    finally:
        await redis.aclose()
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as other:
        _, first = await _scrape(client)
        _, second = await _scrape(other)
    drop = ("hub_http_", "hub_stats_age", "hub_queue_oldest", "hub_inbound_oldest", "hub_deliveries_oldest")
    keep = {k: v for k, v in first.items() if not k[0].startswith(drop)}
    assert keep == {k: v for k, v in second.items() if not k[0].startswith(drop)}


async def test_metrics_token_when_configured(settings: Settings, db: asyncpg.Connection) -> None:
    guarded = settings.model_copy(update={"metrics_token": SecretStr("scrape-me")})
    async with TestClient(TestServer(create_app(guarded), host="127.0.0.1")) as client:
        resp = await client.get("/metrics")
        assert resp.status == 401
        assert (await resp.json())["code"] == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer nope"})).status == 401
        await _scrape(client, headers={"Authorization": "Bearer scrape-me"})


async def test_aggregates_are_cached_cluster_wide(settings: Settings, db: asyncpg.Connection) -> None:
    from hub import queue

    assert settings.database_url is not None
    assert settings.redis_url is not None
    pool = await create_pool(settings.database_url, max_size=2)
    redis = await queue.connect(settings.redis_url)
    try:
        first = await ops_stats.aggregates(pool, redis)
        assert first.totals.deliveries == {"pending": 0, "succeeded": 0, "failed": 0}
        await seed(db, redis, endpoint_url="http://127.0.0.1:9/hooks")
        cached = await ops_stats.aggregates(pool, redis)
        assert cached == first  # within the refresh interval every process reads the shared copy
        fresh = await ops_stats.aggregates(pool, redis, max_age=0)
        assert fresh.totals.deliveries == {"pending": 2, "succeeded": 4, "failed": 2}
        assert fresh.totals.jobs_per_second is not None
        assert fresh.totals.jobs_per_second > 0
    finally:
        await redis.aclose()
        await pool.close()


async def test_record_reject_bounds_what_a_request_path_can_create(settings: Settings, db: asyncpg.Connection) -> None:
    from hub import queue

    assert settings.redis_url is not None
    redis = await queue.connect(settings.redis_url)
    try:
        await metrics.record_reject(redis, "Salla", "Bad Signature!")
        for i in range(metrics.MAX_REJECT_SOURCES + 5):
            await metrics.record_reject(redis, f"random-{i}", metrics.BAD_PAYLOAD)
        counts = await metrics.read_rejects(redis)
        assert counts["salla"] == {"bad_signature": (1, 1)}
        assert len(counts) == metrics.MAX_REJECT_SOURCES + 1  # the rest folded into "other"
        assert counts["other"]["bad_payload"][0] == 6
        ttl = await redis.ttl(f"hub:rejects:salla:{metrics.minute_of(__import__('time').time())}")
        assert 0 < ttl <= metrics.REJECT_BUCKET_TTL_SECONDS
    finally:
        await redis.aclose()


async def test_lifetime_counts_are_history_plus_a_fresh_tail(settings: Settings, db: asyncpg.Connection) -> None:
    """Old rows are recounted every few minutes; rows since the history's cut are counted every time."""
    from hub import queue
    from hub.ops import counts as ops_counts

    assert settings.database_url is not None
    assert settings.redis_url is not None
    pool = await create_pool(settings.database_url, max_size=2)
    redis = await queue.connect(settings.redis_url)
    try:
        await seed(db, redis, endpoint_url="http://127.0.0.1:9/hooks")
        first = await ops_counts.lifetime(pool, redis, history_max_age=0)
        assert first.ingest["shopify"] == {"processed": 3, "ignored": 1}  # three of them are history
        # A new event lands in the tail at once; a status change of an old row waits for the recount.
        await db.execute("UPDATE inbound_events SET status = 'failed' WHERE id = 'in_ops_shopify_ok_0'")
        await db.execute(
            "INSERT INTO inbound_events (id, organization_id, connection_id, source, delivery_key, headers, query, "
            "body, status, attempts, order_ids, received_at) VALUES ('in_ops_new', 'org_ops', 'con_shopify', "
            "'shopify', 'new', '{}', '{}', 'x', 'processed', 1, '[]', now())"
        )
        cached = await ops_counts.lifetime(pool, redis)
        assert cached.ingest["shopify"] == {"processed": 4, "ignored": 1}
        recounted = await ops_counts.lifetime(pool, redis, history_max_age=0)
        assert recounted.ingest["shopify"] == {"processed": 3, "failed": 1, "ignored": 1}
    finally:
        await redis.aclose()
        await pool.close()


async def test_counters_never_go_down_when_rows_leave_a_status(settings: Settings, db: asyncpg.Connection) -> None:
    """A retried failure leaves "failed"; the counter keeps it, and counts the next failure on top."""
    from hub import queue

    assert settings.database_url is not None
    assert settings.redis_url is not None
    pool = await create_pool(settings.database_url, max_size=2)
    redis = await queue.connect(settings.redis_url)
    try:
        await seed(db, redis, endpoint_url="http://127.0.0.1:9/hooks")
        before = (await ops_stats.aggregates(pool, redis, max_age=0)).totals
        assert before.counters.deliveries["failed"] == 2
        await db.execute("UPDATE deliveries SET status = 'pending' WHERE id = 'dlv_ops_failed_ok'")
        retried = (await ops_stats.aggregates(pool, redis, max_age=0)).totals
        assert retried.deliveries["failed"] == 1  # the page shows what is failed now
        assert retried.counters.deliveries["failed"] == 2  # the counter does not go back
        await db.execute("UPDATE deliveries SET status = 'failed' WHERE id = 'dlv_ops_failed_ok'")
        again = (await ops_stats.aggregates(pool, redis, max_age=0)).totals
        assert again.counters.deliveries["failed"] == 3  # it failed a second time
        assert again.jobs_ingest >= before.jobs_ingest
    finally:
        await redis.aclose()
        await pool.close()

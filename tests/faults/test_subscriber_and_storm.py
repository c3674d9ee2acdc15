"""A subscriber that goes away and comes back, and a storm of duplicated, shuffled platform webhooks."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults.checks import check_accepted_stored, check_orders, check_subscriber, record, wait_settled
from tests.faults.harness import Hub, running_hub, scaled
from tests.faults.platform import Platform, Subscriber, events_for, setup_tenant

pytestmark = [pytest.mark.faults, pytest.mark.timeout(360)]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async with running_hub(tmp_path) as running:
        yield running


@pytest.fixture
async def subscriber() -> AsyncIterator[Subscriber]:
    running = Subscriber()
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_subscriber_down_then_back_gets_everything_in_retry_under_one_webhook_id(
    hub: Hub, subscriber: Subscriber
) -> None:
    tenant = await setup_tenant(hub, subscriber.url)
    events = events_for("down", scaled(200), 5)
    platform = Platform(hub.base_url, tenant.connection_id, tenant.secret)
    down_for = 8.0

    outage: asyncio.Task[float] | None = None

    async def take_down_and_back() -> float:
        await subscriber.stop()
        await asyncio.sleep(down_for)
        await subscriber.start()
        return time.monotonic()

    async def on_progress(done: int) -> None:
        nonlocal outage
        if outage is None and done >= len(events) // 4:
            outage = asyncio.create_task(take_down_and_back())

    log = await platform.send_all(events, on_progress=on_progress)
    assert outage is not None
    back_at = await outage
    await wait_settled(hub, len(events), within=120)
    settled = time.monotonic() - back_at

    assert log.statuses == Counter({200: len(events)})
    await check_orders(hub, events, tenant.organization_id)
    delivered = await check_subscriber(hub, subscriber.received, tenant.organization_id)
    conn = await hub.connect()
    try:
        retried = await conn.fetchval(
            "SELECT count(*) FROM deliveries WHERE endpoint_id = $1 AND attempt_count > 1", tenant.endpoint_id
        )
        failed_attempts = await conn.fetchval(
            "SELECT count(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id "
            "WHERE d.endpoint_id = $1 AND NOT a.succeeded",
            tenant.endpoint_id,
        )
        ids_per_event = await conn.fetchval(
            "SELECT max(n) FROM (SELECT count(DISTINCT event_id) AS n FROM deliveries "
            "WHERE endpoint_id = $1 GROUP BY event_id) t",
            tenant.endpoint_id,
        )
    finally:
        await conn.close()
    assert retried > 0, "the subscriber was down but nothing was retried"
    assert failed_attempts > 0
    assert ids_per_event == 1
    record(
        "subscriber_down",
        ingests=len(events),
        subscriber_down_s=down_for,
        deliveries_retried=retried,
        failed_attempts=failed_attempts,
        all_delivered_after_back_s=round(settled, 2),
        **delivered,
    )


async def test_storm_of_duplicated_shuffled_webhooks_leaves_each_order_once_in_its_newest_state(
    hub: Hub, subscriber: Subscriber
) -> None:
    orders, versions, copies = scaled(1000), 5, 2  # 1,000 orders x 5 versions x 2 copies = 10,000 posts
    tenant = await setup_tenant(hub, subscriber.url)
    distinct = events_for("storm", orders, versions)
    storm = [e for e in distinct for _ in range(copies)]
    random.Random(8).shuffle(storm)  # noqa: S311 - a reproducible shuffle, not crypto
    platform = Platform(hub.base_url, tenant.connection_id, tenant.secret)

    started = time.monotonic()
    log = await platform.send_all(storm)
    burst = time.monotonic() - started
    await wait_settled(hub, len(distinct), within=180)
    total = time.monotonic() - started

    assert log.statuses == Counter({200: len(storm)}), log.statuses
    conn = await hub.connect()
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM inbound_events WHERE connection_id = $1", tenant.connection_id
        )
        count = await conn.fetchval("SELECT count(*) FROM orders WHERE organization_id = $1", tenant.organization_id)
    finally:
        await conn.close()
    assert stored == len(distinct), "a platform retry was stored twice"
    assert count == orders
    await check_accepted_stored(hub, log)
    await check_orders(hub, distinct, tenant.organization_id)
    delivered = await check_subscriber(hub, subscriber.received, tenant.organization_id)
    record(
        "storm",
        posts=len(storm),
        distinct_events=len(distinct),
        orders=orders,
        burst_seconds=round(burst, 2),
        posts_per_s=round(len(storm) / burst),
        all_done_s=round(total, 2),
        **delivered,
    )

"""A stored backlog larger than a batch: one worker drains it with two batches in flight, each event once."""

from __future__ import annotations

import asyncio

import asyncpg

from connectors.base import body_hash
from hub.bench.dataset import salla_headers, salla_template
from hub.ingest.store import InboundItem, insert_many, summarize_headers
from hub.settings import Settings
from tests.factories import make_endpoint
from tests.helpers.polling import eventually
from tests.helpers.worker import running_worker
from tests.ingest.test_pipeline import SECRET, _connection
from workers.main import started

EVENTS = 23  # over four batches of 5: the first full batch starts the helper batch


async def test_backlog_is_drained_in_overlapping_batches_and_each_event_once(
    settings: Settings, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    conn_id = await _connection(settings, db)
    org = await db.fetchval("SELECT organization_id FROM connections WHERE id = $1", conn_id)
    endpoint = await make_endpoint(settings, organization_id=org)
    created = salla_template()
    items = []
    for n in range(EVENTS):
        body = created.body(700_000 + n)
        items.append(
            InboundItem(
                organization_id=org,
                connection_id=conn_id,
                source="salla",
                delivery_key=body_hash(body),
                headers=summarize_headers(salla_headers(SECRET, body)),
                query={},
                body=body,
            )
        )
    small = settings.model_copy(update={"batch_size": 5, "webhook_retry_schedule": (3600,)})
    async with running_worker(small) as worker:
        wakeups = (await asyncio.wait_for(started(worker), 10)).wakeups
        assert wakeups is not None
        await asyncio.wait_for(wakeups.listening.wait(), 10)
        await insert_many(db, items, notify=True)  # as the API's group commit: the worker is woken by Postgres

        async def drained() -> bool:
            return not await db.fetchval("SELECT count(*) FROM inbound_events WHERE status = 'received'")

        await eventually(drained, timeout=20)

    rows = await db.fetch("SELECT status, attempts, order_ids FROM inbound_events")
    assert len(rows) == EVENTS
    assert {(r["status"], r["attempts"]) for r in rows} == {("processed", 1)}
    assert await db.fetchval("SELECT count(*) FROM orders") == EVENTS
    # one order.created each, and one delivery each for the one endpoint (read with the claim)
    assert await db.fetchval("SELECT count(*) FROM order_events WHERE type = 'order.created'") == EVENTS
    delivered = "SELECT count(DISTINCT event_id) FROM deliveries WHERE endpoint_id = $1"
    assert await db.fetchval(delivered, endpoint.id) == (await db.fetchval("SELECT count(*) FROM order_events"))

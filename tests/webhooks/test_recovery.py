"""Observable and recoverable: delivery lists, retry, recover, test events, and surviving a Redis flush."""

from __future__ import annotations

import logging
import time
from typing import Any

import asyncpg
import pytest
import redis.asyncio
from arq.connections import ArqRedis

from hub.delivery.engine import DeliveryEngine
from hub.delivery.pipeline import Shared
from hub.delivery.sender import Sender
from hub.delivery.targets import TargetPolicy
from hub.queue import QUEUE_NAME
from hub.settings import Settings
from tests.conftest import eventually
from tests.fakes.receiver import OK, Receiver, Reply, status
from tests.webhooks.conftest import Client, create_webhook, emit, org_of, running_worker, statuses, verify

log = logging.getLogger(__name__)


async def test_failed_delivery_is_listed_retried_with_the_same_webhook_id_and_recovered(
    client: Client,
    auth: dict[str, str],
    settings: Settings,
    receiver: Receiver,
    pool: asyncpg.Pool,
    arq_redis: ArqRedis,
) -> None:
    local = settings.model_copy(update={"webhook_retry_schedule": (0,)})
    receiver.always("/later", status(500))
    endpoint = await create_webhook(client, auth, receiver.url("/later"))
    org = await org_of(pool, endpoint["id"])
    base = f"/api/v1/webhooks/{endpoint['id']}/deliveries"
    async with running_worker(local):
        ids = await emit(pool, arq_redis, org, "order.created", "order.updated", "order.cancelled")
        await eventually(lambda: _all(pool, endpoint["id"], "failed", 3))

        listed = await (await client.get(f"{base}?status=failed&per_page=2", headers=auth)).json()
        assert listed["meta"] == {"current_page": 1, "per_page": 2, "total": 3, "has_next": True}
        assert {d["status"] for d in listed["data"]} == {"failed"}
        assert (await (await client.get(f"{base}?status=succeeded", headers=auth)).json())["meta"]["total"] == 0
        response = await client.get(f"{base}?status=bogus", headers=auth)
        assert response.status == 422
        assert "status" in (await response.json())["details"]
        by_type = await (await client.get(f"{base}?event_type=order.cancelled", headers=auth)).json()
        assert [d["event_type"] for d in by_type["data"]] == ["order.cancelled"]

        receiver.always("/later", OK)
        response = await client.post(f"/api/v1/deliveries/{ids[0]}/retry", headers=auth)
        assert response.status == 202
        await eventually(lambda: _status_of(pool, ids[0], "succeeded"))
        detail = (await (await client.get(f"/api/v1/deliveries/{ids[0]}", headers=auth)).json())["data"]
        assert [a["succeeded"] for a in detail["attempts"]] == [False, True]
        retried = [r for r in receiver.requests("/later") if r.headers["webhook-id"] == detail["event_id"]]
        assert len(retried) == 2  # the failed try and the retry: one webhook-id

        response = await client.post(f"/api/v1/deliveries/{ids[0]}/retry", headers=auth)
        assert response.status == 409  # already delivered

        response = await client.post(
            f"/api/v1/webhooks/{endpoint['id']}/recover", json={"since": "2000-01-01T00:00:00+00:00"}, headers=auth
        )
        assert response.status == 202
        assert (await response.json())["data"] == {"count": 2}
        await eventually(lambda: _all(pool, endpoint["id"], "succeeded", 3))
    response = await client.post(
        f"/api/v1/webhooks/{endpoint['id']}/recover", json={"since": "yesterday"}, headers=auth
    )
    assert response.status == 422
    assert "since" in (await response.json())["details"]


async def _all(pool: asyncpg.Pool, endpoint_id: str, state: str, count: int) -> bool:
    found = await statuses(pool, endpoint_id)
    return len(found) == count and all(s == state for s in found)


async def _status_of(pool: asyncpg.Pool, delivery_id: str, state: str) -> bool:
    return bool(await pool.fetchval("SELECT status = $2 FROM deliveries WHERE id = $1", delivery_id, state))


async def test_test_event_goes_through_the_real_delivery_path(
    client: Client, auth: dict[str, str], worker: Any, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    endpoint = await create_webhook(client, auth, receiver.url("/test"), event_types=["order.cancelled"])
    response = await client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=auth)
    assert response.status == 202
    delivery = (await response.json())["data"]
    [request] = await receiver.wait_for(1, "/test")
    payload = verify(endpoint["secret"], request)
    assert payload["type"] == "webhook.test"
    assert payload["id"] == delivery["event_id"] == request.headers["webhook-id"]
    assert payload["data"]["order"]["source"] == "test"
    await eventually(lambda: _status_of(pool, delivery["id"], "succeeded"))

    await client.put(f"/api/v1/webhooks/{endpoint['id']}", json={"enabled": False}, headers=auth)
    response = await client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=auth)
    assert response.status == 409


async def test_rotation_sends_both_signatures_and_each_verifies(
    client: Client, auth: dict[str, str], worker: Any, receiver: Receiver, pool: asyncpg.Pool, arq_redis: ArqRedis
) -> None:
    endpoint = await create_webhook(client, auth, receiver.url("/rotating"))
    rotated = (await (await client.post(f"/api/v1/webhooks/{endpoint['id']}/rotate-secret", headers=auth)).json())[
        "data"
    ]
    await emit(pool, arq_redis, await org_of(pool, endpoint["id"]), "order.created")
    [request] = await receiver.wait_for(1, "/rotating")
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert verify(rotated["secret"], request)["type"] == "order.created"
    assert verify(endpoint["secret"], request)["type"] == "order.created"  # the old secret still verifies


async def test_flushing_redis_mid_burst_loses_nothing(
    client: Client,
    auth: dict[str, str],
    settings: Settings,
    receiver: Receiver,
    pool: asyncpg.Pool,
    arq_redis: ArqRedis,
) -> None:
    endpoint = await create_webhook(client, auth, receiver.url("/burst"))
    org = await org_of(pool, endpoint["id"])
    assert settings.redis_url is not None
    raw = redis.asyncio.Redis.from_url(settings.redis_url)
    started = time.monotonic()
    async with running_worker(settings):
        for i in range(20):
            await emit(pool, arq_redis, org, *(["order.updated"] * 10), order_id=f"ord_burst_{i}")
            if i == 10:
                # FLUSHDB on the run's own Redis database (FLUSHALL would hit other runs sharing the server).
                claim = await raw.get("hub:test-claim")
                await raw.flushdb()
                if claim is not None:
                    await raw.set("hub:test-claim", claim, ex=3600)
        await eventually(lambda: _all(pool, endpoint["id"], "succeeded", 200), timeout=45)
    elapsed = time.monotonic() - started
    await raw.aclose()
    ids = {r.headers["webhook-id"] for r in receiver.requests("/burst")}
    assert len(ids) == 200  # every event arrived (at least once)
    log.info("burst of 200 deliveries with a Redis flush: %.1f s, %.0f deliveries/s", elapsed, 200 / elapsed)


async def test_the_sweeper_finds_deliveries_whose_wake_up_was_lost(
    client: Client,
    auth: dict[str, str],
    settings: Settings,
    receiver: Receiver,
    pool: asyncpg.Pool,
    arq_redis: ArqRedis,
) -> None:
    endpoint = await create_webhook(client, auth, receiver.url("/lost"))
    await emit(pool, None, await org_of(pool, endpoint["id"]), *(["order.updated"] * 30))  # no wake-up at all
    # Not yet past the sweeper's grace period: left alone (a wake-up may still be on its way).
    engine = DeliveryEngine.open(settings, pool, arq_redis)
    try:
        assert await engine.sweep() == 0
        await pool.execute("UPDATE deliveries SET next_attempt_at = next_attempt_at - interval '1 minute'")
        assert await engine.sweep() == 30
    finally:
        await engine.close()
    jobs = await arq_redis.zrange(QUEUE_NAME, 0, -1)
    assert jobs
    assert all(j.decode().startswith("sweep:") for j in jobs)  # fresh job ids: arq never drops them as dupes
    async with running_worker(settings):
        await eventually(lambda: _all(pool, endpoint["id"], "succeeded", 30))
    assert len(receiver.requests("/lost")) == 30


async def test_a_pipeline_that_fails_gives_back_its_hold_on_the_endpoint(
    client: Client,
    auth: dict[str, str],
    settings: Settings,
    receiver: Receiver,
    pool: asyncpg.Pool,
    arq_redis: ArqRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hub.delivery import pipeline as delivery_pipeline
    from hub.delivery.claims import claim

    endpoint = await create_webhook(client, auth, receiver.url("/flaky-db"))
    receiver.always("/flaky-db", Reply(delay=0.5))  # still sending when the next claim fails
    ids = await emit(pool, None, await org_of(pool, endpoint["id"]), *(["order.updated"] * 5))
    real_claim, calls = claim, []

    async def claim_then_fail(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) > 1:
            raise ConnectionResetError("Postgres went away")
        return await real_claim(*args, **kwargs)

    monkeypatch.setattr(delivery_pipeline, "claim", claim_then_fail)
    sender = Sender(timeout=5, policy=TargetPolicy(allow_loopback=True, allow_private=True))
    engine = DeliveryEngine(Shared(settings=settings, pool=pool, redis=arq_redis), sender)
    try:
        with pytest.raises(ConnectionResetError):
            await engine.run(ids)
        assert engine.shared.gates == {}  # nothing held: later claims may take this endpoint's rows again
        assert engine.pipeline is None
    finally:
        await engine.close()


async def test_attempts_finishing_close_together_are_recorded_in_one_statement(
    client: Client,
    auth: dict[str, str],
    settings: Settings,
    receiver: Receiver,
    pool: asyncpg.Pool,
    arq_redis: ArqRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A finished attempt waits a moment for others (RECORD_LINGER, made long here so the test does
    not race the machine): both rows are then written by one statement, so they share its ``now()``."""
    from hub.delivery import groups

    monkeypatch.setattr(groups, "RECORD_LINGER", 1.0)
    fast = await create_webhook(client, auth, receiver.url("/fast"))
    await create_webhook(client, auth, receiver.url("/slow"))
    receiver.always("/slow", Reply(delay=0.3))
    ids = await emit(pool, None, await org_of(pool, fast["id"]), "order.updated")
    assert len(ids) == 2  # one per endpoint
    engine = DeliveryEngine.open(settings, pool, arq_redis)
    try:
        assert await engine.run(ids) == 2
    finally:
        await engine.close()
    rows = await pool.fetch("SELECT status, completed_at FROM deliveries WHERE id = ANY($1::text[])", ids)
    assert [row["status"] for row in rows] == ["succeeded", "succeeded"]
    assert rows[0]["completed_at"] == rows[1]["completed_at"]

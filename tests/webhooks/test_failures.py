"""Bad answers are failed attempts retried on schedule, never a worker crash; failing endpoints get disabled."""

from __future__ import annotations

import time

import asyncpg
from arq.connections import ArqRedis

from hub.settings import Settings
from tests.conftest import eventually
from tests.fakes.receiver import GARBAGE, HANG, OK, Receiver, redirect, status
from tests.webhooks.conftest import Client, attempts, create_webhook, emit, org_of, running_worker, statuses

BAD = {
    "/moved": redirect("/elsewhere", 301),
    "/found": redirect("http://127.0.0.1:9/evil", 302),
    "/missing": status(404),
    "/gone": status(410),
    "/conflict": status(409),
    "/boom": status(500),
    "/garbage": GARBAGE,
    "/hang": HANG,
}


async def test_3xx_4xx_5xx_garbage_and_silence_are_failed_attempts_retried_on_schedule(
    client: Client,
    auth: dict[str, str],
    settings: Settings,
    receiver: Receiver,
    pool: asyncpg.Pool,
    arq_redis: ArqRedis,
) -> None:
    local = settings.model_copy(update={"webhook_retry_schedule": (0, 0), "webhook_timeout_seconds": 1.0})
    endpoints = {}
    for path, reply in BAD.items():
        receiver.always(path, reply)
        endpoints[path] = await create_webhook(client, auth, receiver.url(path), event_types=["order.created"])
    healthy = await create_webhook(client, auth, receiver.url("/healthy"), event_types=["order.updated"])
    org = await org_of(pool, healthy["id"])

    async with running_worker(local):
        await emit(pool, arq_redis, org, "order.created")

        async def all_failed() -> bool:
            for endpoint in endpoints.values():
                if await statuses(pool, endpoint["id"]) != ["failed"]:
                    return False
            return True

        await eventually(all_failed, timeout=20)
        # The worker survived all of it and still delivers.
        await emit(pool, arq_redis, org, "order.updated")
        await receiver.wait_for(1, "/healthy")

    for path, endpoint in endpoints.items():
        assert len(receiver.requests(path)) == 2, path  # schedule (0, 0): two attempts, then failed
        delivery_id = await pool.fetchval("SELECT id FROM deliveries WHERE endpoint_id = $1", endpoint["id"])
        tries = await attempts(pool, delivery_id)
        assert [t["succeeded"] for t in tries] == [False, False], path
        expected = BAD[path].status if not (BAD[path].hang or BAD[path].garbage) else None
        assert [t["status_code"] for t in tries] == [expected, expected], path
    assert receiver.requests("/elsewhere") == []  # redirects are never followed
    found = (await attempts(pool, await _delivery(pool, endpoints["/found"]["id"])))[0]
    assert "redirect not followed" in found["error"]
    assert "127.0.0.1:9/evil" in found["error"]
    hung = (await attempts(pool, await _delivery(pool, endpoints["/hang"]["id"])))[0]
    assert "timed out" in hung["error"]
    assert 900 <= hung["latency_ms"] < 3000
    missing = (await attempts(pool, await _delivery(pool, endpoints["/missing"]["id"])))[0]
    assert missing["response_excerpt"] == "nope"
    last = await pool.fetchrow("SELECT * FROM deliveries WHERE endpoint_id = $1", endpoints["/boom"]["id"])
    assert last is not None
    assert last["last_status_code"] == 500
    assert last["last_error"] == "HTTP 500"
    assert last["completed_at"] is not None


async def _delivery(pool: asyncpg.Pool, endpoint_id: str) -> str:
    delivery_id: str = await pool.fetchval("SELECT id FROM deliveries WHERE endpoint_id = $1", endpoint_id)
    return delivery_id


async def test_retry_after_stretches_the_wait(
    client: Client,
    auth: dict[str, str],
    settings: Settings,
    receiver: Receiver,
    pool: asyncpg.Pool,
    arq_redis: ArqRedis,
) -> None:
    local = settings.model_copy(update={"webhook_retry_schedule": (0, 0, 0)})
    receiver.next("/busy", status(429, retry_after="2"))
    endpoint = await create_webhook(client, auth, receiver.url("/busy"))
    async with running_worker(local):
        await emit(pool, arq_redis, await org_of(pool, endpoint["id"]), "order.created")
        first, second = await receiver.wait_for(2, "/busy", within=10)
    assert second.at - first.at >= 1.9
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


async def test_an_endpoint_failing_for_the_configured_time_is_disabled_with_its_reason(
    client: Client,
    auth: dict[str, str],
    settings: Settings,
    receiver: Receiver,
    pool: asyncpg.Pool,
    arq_redis: ArqRedis,
) -> None:
    local = settings.model_copy(
        update={"webhook_retry_schedule": (0, 1, 1, 1, 1, 1), "webhook_disable_after_seconds": 1}
    )
    receiver.always("/down", status(503))
    endpoint = await create_webhook(client, auth, receiver.url("/down"))
    org = await org_of(pool, endpoint["id"])
    async with running_worker(local):
        await emit(pool, arq_redis, org, "order.created")

        async def disabled() -> bool:
            response = await client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=auth)
            return (await response.json())["data"]["enabled"] is False

        await eventually(disabled, timeout=15)
    shown = (await (await client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=auth)).json())["data"]
    assert "HTTP 503" in shown["disabled_reason"]
    assert "failing since" in shown["disabled_reason"]
    assert shown["disabled_at"] is not None
    assert shown["failing_since"] is not None
    assert await statuses(pool, endpoint["id"]) == ["failed"]
    tries = len(receiver.requests("/down"))
    assert 2 <= tries < 6  # disabled before the schedule ran out

    # New events are no longer written for a disabled endpoint...
    await emit(pool, arq_redis, org, "order.updated")
    assert len(await statuses(pool, endpoint["id"])) == 1
    # ...and its owner can re-enable it and recover what failed.
    receiver.always("/down", OK)
    response = await client.put(f"/api/v1/webhooks/{endpoint['id']}", json={"enabled": True}, headers=auth)
    shown = (await response.json())["data"]
    assert shown["enabled"] is True
    assert shown["disabled_reason"] is None
    assert shown["failing_since"] is None
    async with running_worker(local):
        response = await client.post(
            f"/api/v1/webhooks/{endpoint['id']}/recover", json={"since": "2000-01-01T00:00:00Z"}, headers=auth
        )
        assert response.status == 202
        assert (await response.json())["data"] == {"count": 1}
        await receiver.wait_for(tries + 1, "/down")
        await eventually(lambda: _succeeded(pool, endpoint["id"]))


async def _succeeded(pool: asyncpg.Pool, endpoint_id: str) -> bool:
    return await statuses(pool, endpoint_id) == ["succeeded"]


async def test_success_clears_failing_since(
    client: Client, auth: dict[str, str], worker: object, receiver: Receiver, pool: asyncpg.Pool, arq_redis: ArqRedis
) -> None:
    receiver.next("/blip", status(500))
    endpoint = await create_webhook(client, auth, receiver.url("/blip"))
    await emit(pool, arq_redis, await org_of(pool, endpoint["id"]), "order.created")
    await receiver.wait_for(1, "/blip")
    await eventually(
        lambda: pool.fetchval("SELECT failing_since IS NOT NULL FROM webhook_endpoints WHERE id = $1", endpoint["id"])
    )
    await eventually(lambda: _succeeded(pool, endpoint["id"]))
    assert await pool.fetchval("SELECT failing_since FROM webhook_endpoints WHERE id = $1", endpoint["id"]) is None


async def test_the_first_schedule_value_delays_the_first_attempt(
    client: Client,
    auth: dict[str, str],
    settings: Settings,
    receiver: Receiver,
    pool: asyncpg.Pool,
    arq_redis: ArqRedis,
) -> None:
    local = settings.model_copy(update={"webhook_retry_schedule": (1, 0)})
    endpoint = await create_webhook(client, auth, receiver.url("/delayed"))
    async with running_worker(local):
        started = time.monotonic()
        await emit(pool, arq_redis, await org_of(pool, endpoint["id"]), "order.created")
        [request] = await receiver.wait_for(1, "/delayed", within=10)
    assert request.at - started >= 0.9
    assert request.at - started < 5  # woken by its own deferred job, not left to the sweeper

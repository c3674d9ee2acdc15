"""Events in the outbox reach their subscribers, signed, retried on schedule, recorded per attempt."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from arq.connections import ArqRedis

from tests.conftest import eventually
from tests.fakes.receiver import GARBAGE, Receiver, status
from tests.webhooks.conftest import Client, attempts, create_webhook, emit, org_of, statuses, verify


async def test_subscriber_gets_signed_events_that_verify_with_the_reference_library(
    client: Client, auth: dict[str, str], worker: Any, receiver: Receiver, pool: asyncpg.Pool, arq_redis: ArqRedis
) -> None:
    endpoint = await create_webhook(client, auth, receiver.url("/all"))
    only_cancelled = await create_webhook(client, auth, receiver.url("/cancelled"), event_types=["order.cancelled"])
    other_source = await create_webhook(client, auth, receiver.url("/salla"), source="salla")
    org = await org_of(pool, endpoint["id"])

    await emit(pool, arq_redis, org, "order.created", "order.status_changed", "order.cancelled")

    got = await receiver.wait_for(3, "/all")
    await receiver.wait_for(1, "/cancelled")
    types = []
    for request in got:
        payload = verify(endpoint["secret"], request)
        assert request.headers["webhook-id"] == payload["id"]
        assert request.headers["content-type"] == "application/json"
        assert payload["data"]["order"]["id"] == "ord_test_1"
        assert set(payload) >= {"id", "type", "created", "data"}
        types.append(payload["type"])
    assert sorted(types) == ["order.cancelled", "order.created", "order.status_changed"]
    [cancelled] = receiver.requests("/cancelled")
    assert verify(only_cancelled["secret"], cancelled)["type"] == "order.cancelled"
    # The same event reaches every subscriber under the same webhook-id.
    assert cancelled.headers["webhook-id"] in {r.headers["webhook-id"] for r in got}
    assert receiver.requests("/salla") == []
    assert await statuses(pool, other_source["id"]) == []
    await eventually(lambda: _all(pool, endpoint["id"], "succeeded", 3))


async def _all(pool: asyncpg.Pool, endpoint_id: str, state: str, count: int) -> bool:
    found = await statuses(pool, endpoint_id)
    return len(found) == count and all(s == state for s in found)


async def test_receiver_failing_three_times_then_recovering_gets_the_same_webhook_id(
    client: Client, auth: dict[str, str], worker: Any, receiver: Receiver, pool: asyncpg.Pool, arq_redis: ArqRedis
) -> None:
    receiver.next("/flaky", status(500), status(503, body=b"down for maintenance"), GARBAGE)
    endpoint = await create_webhook(client, auth, receiver.url("/flaky"))
    org = await org_of(pool, endpoint["id"])

    [delivery_id] = await emit(pool, arq_redis, org, "order.created")

    got = await receiver.wait_for(4, "/flaky", within=20)
    assert len({r.headers["webhook-id"] for r in got}) == 1
    assert len({r.body for r in got}) == 1  # byte-identical body on every retry
    for request in got:
        verify(endpoint["secret"], request)  # each attempt is freshly signed and verifies
    await eventually(lambda: _all(pool, endpoint["id"], "succeeded", 1))
    tries = await attempts(pool, delivery_id)
    assert [t["attempt_no"] for t in tries] == [1, 2, 3, 4]
    assert [t["succeeded"] for t in tries] == [False, False, False, True]
    assert [t["status_code"] for t in tries] == [500, 503, None, 200]
    assert tries[1]["response_excerpt"] == "down for maintenance"
    assert tries[2]["error"]  # garbage: no HTTP status, an error recorded instead
    assert all(t["latency_ms"] is not None and t["latency_ms"] >= 0 for t in tries)
    # The schedule (0, 1, 1, 2) spaces the retries out; compare loosely.
    gaps = [b.at - a.at for a, b in zip(got, got[1:], strict=False)]
    assert gaps[0] >= 0.9
    assert gaps[2] >= 1.9

    response = await client.get(f"/api/v1/deliveries/{delivery_id}", headers=auth)
    detail = (await response.json())["data"]
    assert detail["status"] == "succeeded"
    assert detail["attempt_count"] == 4
    assert [a["status_code"] for a in detail["attempts"]] == [500, 503, None, 200]
    assert detail["payload"]["id"] == detail["event_id"] == got[0].headers["webhook-id"]
    assert orjson.loads(got[0].body) == detail["payload"]

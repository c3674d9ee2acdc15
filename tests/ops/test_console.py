"""What ``hub up`` prints while it runs: a line per failure, a summary while traffic flows, nothing else."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from hub.ops import console
from tests.faults.platform import make_event, sign
from tests.helpers.ops_state import FAILED_INBOUND, RETRYING, seed, seed_retrying


async def test_failures_are_reported_once_each_then_a_summary(db: asyncpg.Connection, redis_client: Any) -> None:
    await seed(db, redis_client, endpoint_url="https://shop.example/webhooks", backlog=False)
    cursor = console.Cursor(
        attempt_id=0,
        failures_since=await db.fetchval("SELECT now() - interval '1 hour'"),
        summary_since=await db.fetchval("SELECT now() - interval '1 hour'"),
    )
    await seed_retrying(db, endpoint_url="https://retry.example/hooks?token=secret")
    with capture_logs() as lines:
        await console.report(db, cursor)
    failed = [line for line in lines if line["event"] == "delivery_failed"]
    retrying = [line for line in failed if line["delivery"] in RETRYING]
    assert len(retrying) == 3  # one line per failed attempt (the second delivery failed twice)
    assert {line["endpoint"] for line in retrying} == {"https://retry.example/hooks?…"}  # no secret in the log
    assert {line["status"] for line in retrying} == {500}
    assert all(line["next_retry"].startswith("in ") for line in retrying)
    assert any(line["next_retry"] == "gave up after 3 attempts" for line in failed)
    inbound = [line for line in lines if line["event"] == "inbound_event_failed"]
    assert {line["id"] for line in inbound} == set(FAILED_INBOUND)
    assert inbound[0]["source"] == "salla"
    assert inbound[0]["error"] == "Salla payload has no data.id"
    [summary] = [line for line in lines if line["event"] == "traffic"]
    assert summary["retrying"] == 2
    assert summary["deliveries_failed"] >= 3

    # Read again: nothing new, nothing repeated, and no summary while nothing flows.
    cursor.summary_since = await db.fetchval("SELECT now() - interval '20 seconds'")
    with capture_logs() as again:
        await console.report(db, cursor, summary_every=10)
    assert again == []


async def test_a_rejected_webhook_is_one_line_with_source_and_reason(
    client: TestClient[Any, Any], auth: dict[str, str]
) -> None:
    resp = await client.post("/api/v1/connections", json={"source": "generic", "name": "shop"}, headers=auth)
    connection = (await resp.json())["data"]
    event = make_event("console", 1, 0)
    headers = {**sign(connection["secret"], event.msg_id, event.body), "webhook-signature": "v1,AAAA"}
    with capture_logs() as lines:
        assert (await client.post(f"/hooks/generic/{connection['id']}", data=event.body, headers=headers)).status == 401
        assert (await client.post("/hooks/generic/conn_missing", data=event.body, headers=headers)).status == 404
        ok = sign(connection["secret"], event.msg_id, event.body)
        assert (await client.post(f"/hooks/generic/{connection['id']}", data=event.body, headers=ok)).status == 200
    rejected = [line for line in lines if line["event"] == "webhook_rejected"]
    assert [(line["source"], line["reason"].split(":")[0]) for line in rejected] == [
        ("generic", "bad signature"),
        ("generic", "unknown connection"),
    ]
    assert len(lines) == len(rejected)  # an accepted webhook adds no line

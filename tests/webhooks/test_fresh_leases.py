"""Fresh deliveries leased in the transaction that writes them (an ingest batch), under the claim's rules.

The lease commits with the rows or not at all; it never takes an endpoint another process is
sending to, never more than the endpoint's share, and never waits for the claim lock (busy: the rows
are left to a claim). A worker whose ingest cannot lease still delivers, through the claim.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import asyncpg

from hub.delivery.claims import CLAIM_LOCK, Claimed, LeaseAsk, claim
from hub.delivery.outbox import NewEvent, Writes
from tests.conftest import data_path, eventually
from tests.fakes.receiver import Receiver
from tests.webhooks.conftest import Client, create_webhook, org_of, sample_order, verify

ASK = LeaseAsk(owner="me", limit=10, per_endpoint=10, lease_seconds=30)


async def _write(
    conn: asyncpg.Connection, org: str, count: int, prefix: str = "ord_fresh", ask: LeaseAsk = ASK
) -> tuple[list[str], list[Claimed]]:
    """Write ``count`` events' deliveries in one statement that leases what ``ask`` allows."""
    events = [
        NewEvent(org, f"{prefix}_{n}", "api", "order.updated", sample_order(f"{prefix}_{n}", org)) for n in range(count)
    ]
    writes = Writes()
    ids = await writes.record(conn, events)
    return ids, await writes.run(conn, lease=ask)


async def _leases(pool: asyncpg.Pool, ids: list[str]) -> dict[str, str | None]:
    rows = await pool.fetch("SELECT id, lease_owner FROM deliveries WHERE id = ANY($1::text[])", ids)
    return {row["id"]: row["lease_owner"] for row in rows}


async def test_fresh_rows_are_leased_with_what_sending_needs_and_commit_with_the_write(
    client: Client, auth: dict[str, str], receiver: Receiver, pool: asyncpg.Pool
) -> None:
    endpoint = await create_webhook(client, auth, receiver.url("/fresh"))
    org = await org_of(pool, endpoint["id"])
    async with pool.acquire() as conn, conn.transaction():
        ids, leased = await _write(conn, org, 3)
    assert sorted(item.id for item in leased) == sorted(ids)
    item = leased[0]
    assert (item.url, item.secrets, item.endpoint_id) == (receiver.url("/fresh"), (endpoint["secret"],), endpoint["id"])
    assert item.payload["type"] == "order.updated"
    assert await _leases(pool, ids) == dict.fromkeys(ids, "me")
    # leased rows are nobody else's to claim, not even their owner's claim, while the lease lives
    assert await claim(pool, owner="other", wanted=ids, limit=10, per_endpoint=10, lease_seconds=30) == []
    assert await claim(pool, owner="me", wanted=ids, limit=10, per_endpoint=10, lease_seconds=30) == []

    # a write that rolls back takes its leases with it
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        gone, leased = await _write(conn, org, 1, prefix="ord_rolled_back")
        assert len(leased) == 1
        await transaction.rollback()
    assert await _leases(pool, gone) == {}


async def test_an_endpoint_another_process_sends_to_and_the_endpoint_share_are_respected(
    client: Client, auth: dict[str, str], receiver: Receiver, pool: asyncpg.Pool
) -> None:
    busy = await create_webhook(client, auth, receiver.url("/busy"))
    free = await create_webhook(client, auth, receiver.url("/free"))
    org = await org_of(pool, busy["id"])
    async with pool.acquire() as conn, conn.transaction():
        older, _ = await _write(conn, org, 1, prefix="ord_older", ask=LeaseAsk("nobody", 0, 10, 30))
    taken = await claim(pool, owner="other", wanted=older, limit=1, per_endpoint=10, lease_seconds=30)
    assert [item.endpoint_id for item in taken] == [busy["id"]]  # "other" now sends to /busy

    async with pool.acquire() as conn, conn.transaction():
        # 8 rows: 4 per endpoint
        ids, leased = await _write(conn, org, 4, ask=LeaseAsk("me", 10, 3, 30, held={free["id"]: 1}))
    assert {item.endpoint_id for item in leased} == {free["id"]}
    assert len(leased) == 2  # a share of 3, one of which this process already holds
    owners = await _leases(pool, ids)
    assert sorted(owner or "-" for owner in owners.values()) == ["-"] * 6 + ["me"] * 2


async def test_a_busy_claim_lock_leaves_fresh_rows_to_a_claim(
    client: Client, auth: dict[str, str], receiver: Receiver, pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    endpoint = await create_webhook(client, auth, receiver.url("/locked"))
    org = await org_of(pool, endpoint["id"])
    async with db.transaction():
        await db.execute(f"SELECT pg_advisory_xact_lock({CLAIM_LOCK})")  # a claim in progress elsewhere
        async with pool.acquire() as conn, conn.transaction():
            ids, leased = await _write(conn, org, 2)
            assert leased == []
    assert await _leases(pool, ids) == dict.fromkeys(ids)
    assert len(await claim(pool, owner="me", wanted=ids, limit=10, per_endpoint=10, lease_seconds=30)) == 2


async def test_a_worker_delivers_an_ingested_order_whether_or_not_its_ingest_could_lease(
    client: Client, auth: dict[str, str], worker: Any, receiver: Receiver, pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    endpoint = await create_webhook(client, auth, receiver.url("/ingested"))
    org = await org_of(pool, endpoint["id"])
    secret = "salla-lease-secret"
    await pool.execute(
        "INSERT INTO connections (id, organization_id, source, name, secret, settings, created) "
        "VALUES ('conn_lease_salla', $1, 'salla', 'test', $2, '{}'::jsonb, now())",
        org,
        secret,
    )
    template = json.loads(data_path("connectors", "payloads", "salla_order_created.json").read_bytes())

    async def send(order_number: int) -> None:
        template["data"]["id"] = order_number
        body = json.dumps(template).encode()
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {"X-Salla-Signature": signature, "Content-Type": "application/json"}
        response = await client.post("/hooks/salla/conn_lease_salla", data=body, headers=headers)
        assert response.status == 200, await response.text()

    async def received(count: int) -> bool:
        return len(receiver.requests("/ingested")) >= count

    await send(9_100_001)  # leased by the ingest batch itself
    await eventually(lambda: received(1), timeout=15)
    async with db.transaction():  # a claim elsewhere holds the lock while the next batch commits
        await db.execute(f"SELECT pg_advisory_xact_lock({CLAIM_LOCK})")
        await send(9_100_002)
        await eventually(
            lambda: pool.fetchval("SELECT count(*) = 0 FROM inbound_events WHERE status = 'received'"), timeout=15
        )
    await eventually(lambda: received(2), timeout=15)
    externals = sorted(
        verify(endpoint["secret"], r)["data"]["order"]["external_id"] for r in receiver.requests("/ingested")
    )
    assert externals == ["9100001", "9100002"]
    owners = await pool.fetch("SELECT status, lease_owner FROM deliveries WHERE endpoint_id = $1", endpoint["id"])
    assert [row["status"] for row in owners] == ["succeeded", "succeeded"]

"""Chat-agent pull sync against a fake seed-000 remote on a real port: paging, retries, upserts, job, CLI."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest

from hub import db as hub_db
from hub import queue
from hub.platforms import chat_sync
from hub.platforms.chat_client import ChatAgentClient, pinned_session
from hub.platforms.chat_remote import (
    PermanentRemoteError,
    RetryPolicy,
    SyncNotPossible,
    TransientRemoteError,
    parse_page,
    parse_retry_after,
)
from hub.settings import Settings
from tests.fakes.chat_agent_server import API_KEY, FakeChatAgent, make_order
from tests.helpers.polling import eventually


@pytest.fixture
async def pool(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[asyncpg.Pool]:
    """The hub's own kind of pool (JSON codecs), on a clean database."""
    assert settings.database_url is not None
    created = await hub_db.create_pool(settings.database_url, max_size=4)
    yield created
    await created.close()


async def _connection(
    db: asyncpg.Connection, base_url: str, *, conn_id: str = "conn_agent", last_synced_at: datetime | None = None
) -> str:
    org = await db.fetchval("SELECT id FROM organizations WHERE name = 'acme' AND NOT is_test")
    await db.execute(
        "INSERT INTO connections (id, organization_id, source, name, secret, settings, last_synced_at, created) "
        "VALUES ($1, $2, 'chat_agent', 'agent', 'whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0', $3::jsonb, $4, now())",
        conn_id,
        org,
        {"base_url": base_url, "api_key": API_KEY},
        last_synced_at,
    )
    return conn_id


class Sleeps:
    """Records the waits a sync asks for instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _options(sleeps: Sleeps, *, max_tries: int = 4) -> chat_sync.SyncOptions:
    policy = RetryPolicy(max_tries=max_tries, base_delay=0.5, max_delay=30)
    return chat_sync.SyncOptions(policy=policy, allow_loopback=True, sleep=sleeps)


async def _sync(
    pool: asyncpg.Pool, conn_id: str, *, sleeps: Sleeps | None = None, since: date | None = None, **kw: Any
) -> chat_sync.SyncProgress:
    pages: list[int] = []
    async with pool.acquire() as conn, pinned_session(allow_loopback=True) as http:
        target = await chat_sync.load_target(conn, connection_id=conn_id)
        remote = ChatAgentClient(http, base_url=target.base_url, api_key=target.api_key)
        progress = await chat_sync.run_sync(
            conn,
            target=target,
            remote=remote,
            since=since,
            options=_options(sleeps or Sleeps(), **kw),
            on_progress=lambda p: pages.append(p.pages_done),
        )
    assert pages == list(range(1, progress.pages_done + 1))
    return progress


# ---- pure pieces ---------------------------------------------------------------------------------


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 4, 5, 10, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Sun, 05 Apr 2026 10:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Sun, 05 Apr 2026 09:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_tries=10, base_delay=1.0, max_delay=10.0)
    assert 0.5 <= policy.delay(1, None) <= 1.0
    assert 4.0 <= policy.delay(4, None) <= 8.0
    assert policy.delay(9, None) <= 10.0
    assert policy.delay(1, 3.0) == 3.0
    assert policy.delay(1, 3600.0) == 10.0


@pytest.mark.parametrize("body", [b"<html>", b"[]", b'{"data": {}}', b'{"data": [1, 2]}'])
def test_a_body_that_is_not_seed_000s_list_is_permanent(body: bytes) -> None:
    with pytest.raises(PermanentRemoteError):
        parse_page(body)


def test_page_meta_is_read_when_sane() -> None:
    page = parse_page(b'{"data": [{"id": 1}], "meta": {"current_page": 1, "per_page": 50, "total": 51}}')
    assert (page.orders, page.per_page, page.total) == ([{"id": 1}], 50, 51)
    assert parse_page(b'{"data": [], "meta": {"per_page": 0, "total": "x"}}').per_page is None


# ---- the sync against the fake remote ------------------------------------------------------------


async def test_pages_through_everything_and_upserts_each_order_once(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    started = datetime.now(UTC)
    async with FakeChatAgent(orders=[make_order(n) for n in range(1, 251)]) as fake:
        conn_id = await _connection(db, fake.base_url)
        progress = await _sync(pool, conn_id)
    assert (progress.pages_done, progress.pages_total) == (3, 3)
    assert (progress.orders_seen, progress.orders_total, progress.created) == (250, 250, 250)
    since = (started - timedelta(days=30)).date().isoformat()
    assert [r.query for r in fake.requests] == [
        {"date_from": since, "page": str(n), "per_page": "100"} for n in (1, 2, 3)
    ]
    assert {r.authorization for r in fake.requests} == {f"Bearer {API_KEY}"}
    rows = await db.fetch("SELECT external_id, created_by, total_amount FROM orders WHERE source = 'chat_agent'")
    assert sorted(int(r["external_id"]) for r in rows) == list(range(1, 251))
    assert await db.fetchval("SELECT count(*) FROM order_events WHERE type = 'order.created'") == 250
    synced = await db.fetchval("SELECT last_synced_at FROM connections WHERE id = $1", conn_id)
    assert synced is not None
    assert started <= synced <= datetime.now(UTC)  # the time the sync started, recorded once it completed


async def test_a_second_sync_changes_only_what_changed_remotely(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    orders = [make_order(n) for n in range(1, 6)]
    async with FakeChatAgent(orders=orders) as fake:
        conn_id = await _connection(db, fake.base_url)
        first_started = datetime.now(UTC)
        await _sync(pool, conn_id)
        later = (datetime.now(UTC) + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        orders[0].update(status="confirmed", updated_at=later)
        again = await _sync(pool, conn_id)
    assert (again.created, again.updated, again.unchanged) == (0, 1, 4)
    # The second sync starts where the first began (seed 000 filters by date).
    assert fake.requests[-1].query["date_from"] == first_started.date().isoformat()
    status = await db.fetchval("SELECT status FROM orders WHERE external_id = '1'")
    assert status == "confirmed"
    assert await db.fetchval("SELECT count(*) FROM orders") == 5


async def test_429_and_5xx_are_retried_honouring_retry_after(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    sleeps = Sleeps()
    async with FakeChatAgent(orders=[make_order(n) for n in range(1, 4)]) as fake:
        conn_id = await _connection(db, fake.base_url)
        fake.fail(429, retry_after="7")
        fake.fail(503, times=2)
        progress = await _sync(pool, conn_id, sleeps=sleeps)
    assert progress.created == 3
    assert [r.status for r in fake.requests] == [429, 503, 503, 200]
    assert sleeps.waits[0] == 7.0
    assert 0.5 <= sleeps.waits[1] <= 1.0
    assert 1.0 <= sleeps.waits[2] <= 2.0


async def test_a_remote_that_keeps_failing_stops_after_bounded_tries(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    orders = [make_order(n) for n in range(1, 151)]
    async with FakeChatAgent(orders=orders) as fake:
        conn_id = await _connection(db, fake.base_url)

        class FailAfterFirstPage(ChatAgentClient):
            async def fetch_orders(self, *, date_from: date, page: int, per_page: int) -> Any:
                if page == 2:
                    fake.fail(500)
                return await super().fetch_orders(date_from=date_from, page=page, per_page=per_page)

        async with pool.acquire() as conn, pinned_session(allow_loopback=True) as http:
            target = await chat_sync.load_target(conn, connection_id=conn_id)
            remote = FailAfterFirstPage(http, base_url=target.base_url, api_key=target.api_key)
            with pytest.raises(TransientRemoteError, match="still failing after 3 tries") as caught:
                await chat_sync.run_sync(conn, target=target, remote=remote, options=_options(Sleeps(), max_tries=3))
    assert caught.value.progress is not None
    assert caught.value.progress.pages_done == 1
    # The first page is committed; the sync point did not move, so the next run repeats from there.
    assert await db.fetchval("SELECT count(*) FROM orders") == 100
    assert await db.fetchval("SELECT last_synced_at FROM connections WHERE id = $1", conn_id) is None


async def test_a_wrong_key_is_not_retried(pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]) -> None:
    async with FakeChatAgent(orders=[make_order(1)], api_key="another-key") as fake:
        conn_id = await _connection(db, fake.base_url)
        with pytest.raises(PermanentRemoteError, match="HTTP 401"):
            await _sync(pool, conn_id)
    assert len(fake.requests) == 1


async def test_remote_with_a_smaller_page_size_is_paged_by_its_own_meta(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    async with FakeChatAgent(orders=[make_order(n) for n in range(1, 61)], max_per_page=25) as fake:
        conn_id = await _connection(db, fake.base_url)
        progress = await _sync(pool, conn_id)
    assert (progress.pages_done, progress.pages_total, progress.created) == (3, 3, 60)


async def test_an_unreadable_order_is_kept_as_a_failed_event_and_the_rest_goes_on(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    broken = make_order(2)
    del broken["id"]
    async with FakeChatAgent(orders=[make_order(1), broken, make_order(3)]) as fake:
        conn_id = await _connection(db, fake.base_url)
        progress = await _sync(pool, conn_id)
        again = await _sync(pool, conn_id)
    assert (progress.created, progress.failed, again.failed) == (2, 1, 1)
    events = await db.fetch("SELECT status, error, topic, body FROM inbound_events WHERE connection_id = $1", conn_id)
    assert len(events) == 1  # the second sync did not store it twice
    assert events[0]["status"] == "failed"
    assert "id" in events[0]["error"]
    assert json.loads(events[0]["body"])["data"]["order"]["customer_name"] == "Customer 2"


async def test_since_and_last_synced_at_set_date_from(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    async with FakeChatAgent(orders=[]) as fake:
        conn_id = await _connection(db, fake.base_url, last_synced_at=datetime(2026, 3, 1, 23, 0, tzinfo=UTC))
        await _sync(pool, conn_id)
        await _sync(pool, conn_id, since=date(2025, 1, 2))
    assert [r.query["date_from"] for r in fake.requests] == ["2026-03-01", "2025-01-02"]


async def test_connections_that_cannot_be_pulled(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(SyncNotPossible, match="no connection"):
            await chat_sync.load_target(conn, connection_id="conn_nope")
        conn_id = await _connection(db, "http://127.0.0.1:9")
        await db.execute("UPDATE connections SET settings = '{}'::jsonb WHERE id = $1", conn_id)
        with pytest.raises(SyncNotPossible, match="base_url"):
            await chat_sync.load_target(conn, connection_id=conn_id)


async def test_loopback_base_url_is_refused_unless_allowed(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    async with (
        FakeChatAgent(orders=[make_order(1)]) as fake,
        pool.acquire() as conn,
        pinned_session(allow_loopback=True) as http,
    ):
        conn_id = await _connection(db, fake.base_url)
        target = await chat_sync.load_target(conn, connection_id=conn_id)
        remote = ChatAgentClient(http, base_url=target.base_url, api_key=target.api_key)
        with pytest.raises(SyncNotPossible, match="loopback"):
            await chat_sync.run_sync(conn, target=target, remote=remote, options=chat_sync.SyncOptions())
    assert fake.requests == []


async def test_one_sync_per_connection_at_a_time(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    async with FakeChatAgent(orders=[make_order(1)]) as fake:
        conn_id = await _connection(db, fake.base_url)
        async with pool.acquire() as holder:
            await holder.execute("SELECT pg_advisory_lock($1)", chat_sync._lock_key(conn_id))
            with pytest.raises(SyncNotPossible, match="already running"):
                await _sync(pool, conn_id)
        progress = await _sync(pool, conn_id)  # released with the session that held it
    assert progress.created == 1


# ---- the arq job, the cron and the CLI ----------------------------------------------------------


async def test_the_job_syncs_through_a_real_worker(db: asyncpg.Connection, auth: dict[str, str], worker: Any) -> None:
    async with FakeChatAgent(orders=[make_order(n) for n in range(1, 4)]) as fake:
        conn_id = await _connection(db, fake.base_url)
        await queue.enqueue(worker.pool, "sync_chat_agent", conn_id, job_id=f"test:{conn_id}")

        async def synced() -> Any:
            return await db.fetchval("SELECT last_synced_at FROM connections WHERE id = $1", conn_id)

        await eventually(synced)
    assert await db.fetchval("SELECT count(*) FROM orders WHERE source = 'chat_agent'") == 3


async def test_the_cron_schedules_each_pullable_connection_once_per_slot(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str], settings: Settings
) -> None:
    from workers.chat_sync import schedule_chat_syncs
    from workers.context import CTX_KEY

    pullable = await _connection(db, "https://agent.example.com", conn_id="conn_pull")
    deleted = await _connection(db, "https://agent.example.com", conn_id="conn_gone")
    await db.execute("UPDATE connections SET deleted_at = now() WHERE id = $1", deleted)
    await _connection(db, "https://agent.example.com", conn_id="conn_push_only")
    await db.execute("UPDATE connections SET settings = '{}'::jsonb WHERE id = 'conn_push_only'")
    assert settings.redis_url is not None
    redis = await queue.connect(settings.redis_url)
    try:
        # The cron uses only the pool and Redis of the worker's context.
        ctx = {CTX_KEY: SimpleNamespace(pool=pool, redis=redis)}
        assert await schedule_chat_syncs(ctx) == 1
        assert await schedule_chat_syncs(ctx) == 1
        jobs = await redis.queued_jobs(queue_name=queue.QUEUE_NAME)
    finally:
        await redis.aclose()
    assert [j.args for j in jobs if j.function == "sync_chat_agent"] == [(pullable,)]


async def test_cli_sync_prints_progress_and_a_summary(
    db: asyncpg.Connection, auth: dict[str, str], settings: Settings, tmp_path: Any
) -> None:
    assert settings.database_url is not None
    assert settings.redis_url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {
        "HUB_DATABASE_URL": settings.database_url,
        "HUB_REDIS_URL": settings.redis_url,
        "HUB_WEBHOOK_ALLOW_LOOPBACK": "true",
        "HUB_LOG_LEVEL": "warning",
    }
    async with FakeChatAgent(orders=[make_order(n) for n in range(1, 121)]) as fake:
        conn_id = await _connection(db, fake.base_url)
        args = ["sync", "chat-agent", "--connection", conn_id, "--since", "2020-01-01", "--data-dir", str(tmp_path)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0, err.decode()
        missing = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub", "sync", "chat-agent", "--connection", "conn_nope", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, missing_err = await asyncio.wait_for(missing.communicate(), timeout=60)
    text = out.decode()
    assert "120 orders" in text
    assert "120 created" in text
    assert [r.query["date_from"] for r in fake.requests] == ["2020-01-01", "2020-01-01"]
    assert await db.fetchval("SELECT count(*) FROM orders") == 120
    assert missing.returncode == 1
    assert "no connection conn_nope" in missing_err.decode()


async def test_the_session_itself_refuses_names_resolving_to_loopback(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    async with FakeChatAgent(orders=[make_order(1)]) as fake:
        conn_id = await _connection(db, fake.base_url.replace("127.0.0.1", "localhost"))
        # Past the up-front check (allowed here), the pinned resolver still refuses the address it
        # would dial: a name that re-resolves to loopback after the check cannot slip through.
        async with pool.acquire() as conn, pinned_session() as http:
            target = await chat_sync.load_target(conn, connection_id=conn_id)
            remote = ChatAgentClient(http, base_url=target.base_url, api_key=target.api_key)
            with pytest.raises(PermanentRemoteError, match="refused"):
                await chat_sync.run_sync(conn, target=target, remote=remote, options=_options(Sleeps()))
    assert fake.requests == []

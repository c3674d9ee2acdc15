"""The chat-agent pull through the platform sync engine, against a fake remote on a real port.

Paging, retries, bounded tries, a revoked key, unreadable orders, the start point, the SSRF guard,
one sync at a time, the old ``sync_chat_agent`` job through a real worker, and both ``hub sync`` usages.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from hub import db as hub_db
from hub import queue
from hub.platforms import sync
from hub.platforms.chat_client import pinned_session
from hub.platforms.chat_remote import (
    AuthRevoked,
    PermanentRemoteError,
    RetryPolicy,
    SyncNotPossible,
    TransientRemoteError,
    parse_page,
    parse_retry_after,
)
from hub.platforms.targets import load_target
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
    db: asyncpg.Connection, base_url: str, *, conn_id: str = "conn_agent", sync_state: dict[str, Any] | None = None
) -> str:
    # pull = false: the worker's scheduler leaves it alone, so only what a test runs syncs it.
    org = await db.fetchval("SELECT id FROM organizations WHERE name = 'acme' AND NOT is_test")
    await db.execute(
        "INSERT INTO connections (id, organization_id, source, name, secret, settings, sync, created) "
        "VALUES ($1, $2, 'chat_agent', 'agent', 'whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0', $3::jsonb, $4::jsonb, now())",
        conn_id,
        org,
        {"base_url": base_url, "api_key": API_KEY},
        sync_state or {},
    )
    return conn_id


class Sleeps:
    """Records the waits a sync asks for instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _options(sleeps: Sleeps | None = None, *, max_tries: int = 4, allow_loopback: bool = True) -> sync.SyncOptions:
    policy = RetryPolicy(max_tries=max_tries, base_delay=0.5, max_delay=30)
    return sync.SyncOptions(policy=policy, sleep=sleeps or Sleeps(), allow_loopback=allow_loopback)


async def _sync(
    pool: asyncpg.Pool,
    conn_id: str,
    *,
    options: sync.SyncOptions | None = None,
    since: datetime | None = None,
    session: aiohttp.ClientSession | None = None,
    on_page: Any = None,
) -> sync.SyncRun:
    pages: list[int] = []

    def report(run: sync.SyncRun) -> None:
        pages.append(run.pages)
        if on_page is not None:
            on_page(run)

    async with session or pinned_session(allow_loopback=True) as http:
        run, _ = await sync.run_sync(
            pool, connection_id=conn_id, session=http, options=options or _options(), since=since, on_progress=report
        )
    assert pages == list(range(1, run.pages + 1))
    return run


async def _state(db: asyncpg.Connection, conn_id: str) -> dict[str, Any]:
    state: dict[str, Any] = await db.fetchval("SELECT sync FROM connections WHERE id = $1", conn_id)
    return state


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
def test_a_body_that_is_not_the_order_list_is_permanent(body: bytes) -> None:
    with pytest.raises(PermanentRemoteError):
        parse_page(body)


def test_page_meta_is_read_when_sane() -> None:
    page = parse_page(b'{"data": [{"id": 1}], "meta": {"current_page": 1, "per_page": 50, "total": 51}}')
    assert (page.orders, page.per_page, page.total) == ([{"id": 1}], 50, 51)
    assert parse_page(b'{"data": [], "meta": {"per_page": 0, "total": "x"}}').per_page is None


# ---- the engine against the fake remote ----------------------------------------------------------


async def test_pages_through_everything_and_upserts_each_order_once(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    started = datetime.now(UTC)
    async with FakeChatAgent(orders=[make_order(n) for n in range(1, 251)]) as fake:
        conn_id = await _connection(db, fake.base_url)
        run = await _sync(pool, conn_id)
    assert (run.mode, run.pages, run.total) == ("backfill", 3, 250)
    assert (run.orders_seen, run.created, run.missed) == (250, 250, 0)  # a backfill counts nothing as missed
    since = (started - timedelta(days=30)).date().isoformat()
    assert [r.query for r in fake.requests] == [
        {"date_from": since, "page": str(n), "per_page": "100"} for n in (1, 2, 3)
    ]
    assert {r.authorization for r in fake.requests} == {f"Bearer {API_KEY}"}
    rows = await db.fetch("SELECT external_id FROM orders WHERE source = 'chat_agent'")
    assert sorted(int(r["external_id"]) for r in rows) == list(range(1, 251))
    assert await db.fetchval("SELECT count(*) FROM order_events WHERE type = 'order.created'") == 250
    state = await _state(db, conn_id)
    cursor = datetime.fromisoformat(state["cursor"].replace("Z", "+00:00"))
    assert started <= cursor <= datetime.now(UTC)  # where this sync started, recorded once it completed
    assert (state["state"], state["orders_seen"]) == ("idle", 250)
    assert await db.fetchval("SELECT last_synced_at FROM connections WHERE id = $1", conn_id) is not None


async def test_a_second_sync_changes_only_what_changed_remotely(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    orders = [make_order(n) for n in range(1, 6)]
    async with FakeChatAgent(orders=orders) as fake:
        conn_id = await _connection(db, fake.base_url)
        await _sync(pool, conn_id)
        cursor = datetime.fromisoformat((await _state(db, conn_id))["cursor"].replace("Z", "+00:00"))
        later = (datetime.now(UTC) + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        orders[0].update(status="confirmed", updated_at=later)
        again = await _sync(pool, conn_id)
    assert again.mode == "reconcile"
    assert (again.created, again.changed, again.unchanged, again.missed) == (0, 1, 4, 1)
    # The reconcile starts at the first sync's cursor minus the overlap (the remote filters by date).
    overlap = timedelta(seconds=_options().overlap_seconds)
    assert fake.requests[-1].query["date_from"] == (cursor - overlap).date().isoformat()
    assert await db.fetchval("SELECT status FROM orders WHERE external_id = '1'") == "confirmed"
    assert await db.fetchval("SELECT count(*) FROM orders") == 5


async def test_429_and_5xx_are_retried_honouring_retry_after(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    sleeps = Sleeps()
    async with FakeChatAgent(orders=[make_order(n) for n in range(1, 4)]) as fake:
        conn_id = await _connection(db, fake.base_url)
        fake.fail(429, retry_after="7")
        fake.fail(503, times=2)
        run = await _sync(pool, conn_id, options=_options(sleeps))
    assert run.created == 3
    assert [r.status for r in fake.requests] == [429, 503, 503, 200]
    assert sleeps.waits[0] == 7.0
    assert 0.5 <= sleeps.waits[1] <= 1.0
    assert 1.0 <= sleeps.waits[2] <= 2.0


async def test_a_remote_that_keeps_failing_stops_after_bounded_tries(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    async with FakeChatAgent(orders=[make_order(n) for n in range(1, 151)]) as fake:
        conn_id = await _connection(db, fake.base_url)
        with pytest.raises(TransientRemoteError, match="still failing after 3 tries") as caught:
            # once page 1 is stored, the remote starts failing for good
            await _sync(pool, conn_id, options=_options(max_tries=3), on_page=lambda _run: fake.fail(500, times=10))
    assert isinstance(caught.value.progress, sync.SyncRun)
    assert caught.value.progress.pages == 1
    assert [r.status for r in fake.requests] == [200, 500, 500, 500]
    # The first page is committed; the cursor did not move, so the next run repeats from the same point.
    assert await db.fetchval("SELECT count(*) FROM orders") == 100
    state = await _state(db, conn_id)
    assert state["state"] == "failed"
    assert "still failing" in state["last_error"]
    assert "cursor" not in state


async def test_a_wrong_key_is_not_retried_and_needs_attention(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    async with FakeChatAgent(orders=[make_order(1)], api_key="another-key") as fake:
        conn_id = await _connection(db, fake.base_url)
        with pytest.raises(AuthRevoked, match="HTTP 401"):
            await _sync(pool, conn_id)
    assert len(fake.requests) == 1
    state = await _state(db, conn_id)
    assert state["state"] == "needs_attention"
    assert "401" in state["last_error"]


async def test_remote_with_a_smaller_page_size_is_paged_by_its_own_meta(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    async with FakeChatAgent(orders=[make_order(n) for n in range(1, 61)], max_per_page=25) as fake:
        conn_id = await _connection(db, fake.base_url)
        run = await _sync(pool, conn_id)
    assert (run.pages, run.total, run.created) == (3, 60, 60)
    assert [r.query["page"] for r in fake.requests] == ["1", "2", "3"]


async def test_an_unreadable_order_is_kept_as_a_failed_event_and_the_rest_goes_on(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    broken = make_order(2)
    del broken["id"]
    async with FakeChatAgent(orders=[make_order(1), broken, make_order(3)]) as fake:
        conn_id = await _connection(db, fake.base_url)
        first = await _sync(pool, conn_id)
        again = await _sync(pool, conn_id)
    assert (first.created, first.failed, again.failed) == (2, 1, 1)
    assert sorted(await db.fetchval("SELECT array_agg(external_id) FROM orders")) == ["1", "3"]
    events = await db.fetch("SELECT status, error, body FROM inbound_events WHERE connection_id = $1", conn_id)
    assert len(events) == 1  # the second sync did not store it twice
    assert events[0]["status"] == "failed"
    assert "id" in events[0]["error"]
    # kept as the chat agent's webhook would carry it, so a retry after a fix parses it again
    assert json.loads(events[0]["body"])["data"]["order"]["customer_name"] == "Customer 2"
    assert (await _state(db, conn_id))["orders_failed"] == 2  # once per read


async def test_since_and_the_cursor_set_date_from(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    async with FakeChatAgent(orders=[]) as fake:
        conn_id = await _connection(db, fake.base_url, sync_state={"cursor": "2026-03-01T23:00:00Z"})
        await _sync(pool, conn_id)  # cursor minus the 300 s overlap: still 1 March
        await _sync(pool, conn_id, since=datetime(2025, 1, 2, tzinfo=UTC))
    assert [r.query["date_from"] for r in fake.requests] == ["2026-03-01", "2025-01-02"]


async def test_connections_that_cannot_be_pulled(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(SyncNotPossible, match="no connection"):
            await load_target(conn, "conn_nope")
        conn_id = await _connection(db, "http://127.0.0.1:9")
        await db.execute("UPDATE connections SET settings = '{}'::jsonb WHERE id = $1", conn_id)
        with pytest.raises(SyncNotPossible, match="no platform credentials"):
            await load_target(conn, conn_id)
        await db.execute("UPDATE connections SET deleted_at = now() WHERE id = $1", conn_id)
        with pytest.raises(SyncNotPossible, match="no connection"):
            await load_target(conn, conn_id)
    other = await _connection(db, "http://127.0.0.1:9", conn_id="conn_other")
    async with pinned_session(allow_loopback=True) as http:
        with pytest.raises(SyncNotPossible, match="is a chat_agent connection, not shopify"):
            await sync.run_sync(pool, connection_id=other, session=http, options=_options(), source="shopify")


async def test_loopback_base_url_is_refused_unless_allowed(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    async with FakeChatAgent(orders=[make_order(1)]) as fake:
        conn_id = await _connection(db, fake.base_url)
        with pytest.raises(SyncNotPossible, match="loopback"):
            await _sync(pool, conn_id, options=_options(allow_loopback=False))
    assert fake.requests == []
    state = await _state(db, conn_id)
    assert state["state"] == "failed"
    assert "loopback" in state["last_error"]


async def test_one_sync_per_connection_at_a_time(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    async with FakeChatAgent(orders=[make_order(1)]) as fake:
        conn_id = await _connection(db, fake.base_url)
        async with pool.acquire() as holder:
            await holder.execute("SELECT pg_advisory_lock($1)", sync.lock_key(conn_id))
            with pytest.raises(SyncNotPossible, match="already running"):
                await _sync(pool, conn_id)
        run = await _sync(pool, conn_id)  # released with the session that held it
    assert run.created == 1


async def test_the_session_itself_refuses_names_resolving_to_loopback(
    pool: asyncpg.Pool, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    async with FakeChatAgent(orders=[make_order(1)]) as fake:
        conn_id = await _connection(db, fake.base_url.replace("127.0.0.1", "localhost"))
        # Past the up-front check (allowed here), the pinned resolver still refuses the address it
        # would dial: a name that re-resolves to loopback after the check cannot slip through.
        with pytest.raises(PermanentRemoteError, match="refused"):
            await _sync(pool, conn_id, session=pinned_session())
    assert fake.requests == []


# ---- the old job name and the CLI ----------------------------------------------------------------


async def test_the_old_job_name_syncs_through_a_real_worker(
    db: asyncpg.Connection, auth: dict[str, str], worker: Any
) -> None:
    async with FakeChatAgent(orders=[make_order(n) for n in range(1, 4)]) as fake:
        conn_id = await _connection(db, fake.base_url)
        await queue.enqueue(worker.pool, "sync_chat_agent", conn_id, job_id=f"test:{conn_id}")

        async def synced() -> bool:
            return (await _state(db, conn_id)).get("state") == "idle"

        await eventually(synced, timeout=20)
    assert await db.fetchval("SELECT count(*) FROM orders WHERE source = 'chat_agent'") == 3
    assert await db.fetchval("SELECT last_synced_at FROM connections WHERE id = $1", conn_id) is not None


async def _hub(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_sync_both_usages_print_progress_and_a_summary(
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
    data = ["--data-dir", str(tmp_path)]
    async with FakeChatAgent(orders=[make_order(n) for n in range(1, 121)]) as fake:
        conn_id = await _connection(db, fake.base_url)
        code, old, err = await _hub(env, "sync", "chat-agent", "--connection", conn_id, "--since", "2020-01-01", *data)
        assert code == 0, err
        code, new, err = await _hub(env, "sync", conn_id, "--since", "2020-01-01T00:00:00Z", *data)
        assert code == 0, err
        missing = await _hub(env, "sync", "conn_nope", *data)
        missing_old = await _hub(env, "sync", "chat-agent", "--connection", "conn_nope", *data)
        bad_since = await _hub(env, "sync", conn_id, "--since", "last week", *data)
        usage = await _hub(env | {"COLUMNS": "200"}, "sync", "--help")
    assert "120/120" in old.splitlines()[0]  # the bar's last frame, then the summary
    assert "Synced 120 orders from 2020-01-01 in 2 pages: 120 created, 0 updated, 0 unchanged" in old
    assert f"Synced {conn_id} (reconcile): 120 orders since 2020-01-01T00:00:00Z in 2 pages: 0 created" in new
    assert "120 unchanged" in new
    assert [r.query["date_from"] for r in fake.requests] == ["2020-01-01"] * 4
    assert await db.fetchval("SELECT count(*) FROM orders") == 120
    for code, out, err in (missing, missing_old):
        assert code == 1
        assert "no connection conn_nope" in err
        assert out == ""  # no bar before the first page
    assert bad_since[0] == 2
    assert "--since" in bad_since[2]
    assert "ISO 8601" in bad_since[2]
    assert usage[0] == 0
    assert "CONNECTION_ID" in usage[1]
    assert "chat-agent --connection ID" in usage[1]

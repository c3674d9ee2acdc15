"""Real Postgres and Redis for every test run, isolated from other runs.

With ``HUB_TEST_DATABASE_URL`` / ``HUB_TEST_REDIS_URL`` set (CI: the machine's Postgres 15 and
Redis 7), a fresh database ``hub_test_<random>`` is created for the run and dropped afterwards, and
a Redis database number is claimed for the run and flushed. Otherwise embedded servers are started
under a temporary folder and stopped at the end, also on failure.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from hub.app import create_app
from hub.migrate import upgrade
from hub.settings import Settings, asyncpg_dsn

# Re-exported for the test modules outside this change's scope (tests/webhooks, tests/test_worker.py,
# tests/platforms, ...) that still import them from here; drop once they import tests.factories and
# tests.helpers directly (issue 17).
from tests.factories import make_key as make_key
from tests.helpers.files import data_path as data_path
from tests.helpers.polling import eventually as eventually
from tests.helpers.worker import running_worker as running_worker

#: Every table, children before parents (the foreign keys' order).
TABLES = (
    "delivery_attempts",
    "deliveries",
    "webhook_endpoints",
    "order_events",
    "idempotency_keys",
    "orders",
    "inbound_events",
    "connections",
    "products",
    "contacts",
    "api_keys",
    "organizations",
)
# DELETE, not TRUNCATE: a test leaves a few rows, which DELETE removes in about a millisecond, while
# TRUNCATE rewrites every table's files (about 100 ms a test, over a minute for the suite).
EMPTY_TABLES = "; ".join(f"DELETE FROM {table}" for table in TABLES)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(asyncpg_dsn(url))
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def embedded_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str] | None]:
    """Embedded servers when the run has no service URLs; None otherwise."""
    if os.environ.get("HUB_TEST_DATABASE_URL") and os.environ.get("HUB_TEST_REDIS_URL"):
        yield None
        return
    from hub.embedded import EmbeddedServers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        servers = EmbeddedServers(tmp_path_factory.mktemp("embedded"))
        try:
            urls = servers.start()
            yield urls.database_url, urls.redis_url
        finally:
            servers.stop()


@pytest.fixture(scope="session")
def database_url(embedded_urls: tuple[str, str] | None) -> Iterator[str]:
    """A fresh, migrated database for this run, dropped at the end."""
    admin = os.environ.get("HUB_TEST_DATABASE_URL") or (embedded_urls[0] if embedded_urls else "")
    name = f"hub_test_{secrets.token_hex(4)}"

    async def admin_exec(sql: str) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(admin))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    import asyncio

    asyncio.run(admin_exec(f'CREATE DATABASE "{name}"'))
    url = _with_database(admin, name)
    try:
        upgrade(url)
        yield url
    finally:
        asyncio.run(admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url(embedded_urls: tuple[str, str] | None) -> Iterator[str]:
    """A Redis database claimed for this run (flushed before and after)."""
    base = os.environ.get("HUB_TEST_REDIS_URL")
    if not base:
        assert embedded_urls is not None
        yield embedded_urls[1]
        return
    claim = f"hub:test-claim:{secrets.token_hex(4)}"
    parts = urlsplit(base)
    for number in range(15, 0, -1):
        url = urlunsplit((parts.scheme, parts.netloc, f"/{number}", "", ""))
        client = redis.Redis.from_url(url)
        try:
            if client.dbsize() == 0 and client.set("hub:test-claim", claim, nx=True, ex=3600):
                break
        finally:
            client.close()
    else:  # pragma: no cover - fifteen concurrent runs
        pytest.fail("no free Redis database to claim for this test run")
    try:
        yield url
    finally:
        client = redis.Redis.from_url(url)
        client.flushdb()
        client.close()


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for tests: loopback endpoints allowed, retry schedule compressed."""
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path_factory.mktemp("data"),
        webhook_allow_loopback=True,
        webhook_retry_schedule=(0, 1, 1, 2),
        webhook_timeout_seconds=3,
        sweep_after_seconds=2,
        log_format="console",
        log_level="warning",
    )


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the run's database, every table emptied first."""
    assert settings.database_url is not None
    from hub.db import _init_connection

    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    await _init_connection(conn)  # JSONB as Python values, as in the app
    await conn.execute(EMPTY_TABLES)
    r = redis.asyncio.Redis.from_url(settings.redis_url or "")
    claim = await r.get("hub:test-claim")
    await r.flushdb()
    if claim is not None:
        await r.set("hub:test-claim", claim, ex=3600)
    await r.aclose()
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def client(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[TestClient[Any, Any]]:
    """The real app, served on 127.0.0.1, on a clean database."""
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as test_client:
        yield test_client


@pytest.fixture
async def api_key(settings: Settings, db: asyncpg.Connection) -> str:
    """A live key for organization 'acme'."""
    return await make_key(settings)


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    """Headers authenticating as 'acme'."""
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture
def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def worker(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[Any]:
    """A real worker for the run's settings, running until the test ends."""
    async with running_worker(settings) as instance:
        yield instance

"""``hub migrate`` waits a bounded time for a Postgres that is not accepting connections yet.

The late server is the test run's real Postgres behind a TCP relay that starts listening only
after a delay, as a compose stack's database does while its image initialises.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from hub.migrate import upgrade
from hub.settings import asyncpg_dsn


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _at(url: str, host: str, port: int, database: str | None = None) -> str:
    parts = urlsplit(asyncpg_dsn(url))
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@{host}:{port}" if user else f"{host}:{port}"
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def test_migrate_waits_for_a_database_that_starts_late(database_url: str) -> None:
    target = urlsplit(asyncpg_dsn(database_url))
    if not target.hostname or target.hostname.startswith("/"):
        pytest.skip("the test database is on a Unix socket; the relay needs TCP")
    port = _free_port()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(target.hostname, target.port or 5432)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    started = time.monotonic()
    migrating = asyncio.create_task(asyncio.to_thread(upgrade, _at(database_url, "127.0.0.1", port), wait=20))
    await asyncio.sleep(1.5)  # connections are refused meanwhile
    assert not migrating.done()
    server = await asyncio.start_server(relay, "127.0.0.1", port)
    try:
        await asyncio.wait_for(migrating, 30)
    finally:
        server.close()
    assert time.monotonic() - started >= 1.5


async def test_migrate_gives_up_after_its_bound() -> None:
    url = f"postgresql://postgres@127.0.0.1:{_free_port()}/nothing"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.to_thread(upgrade, url, wait=1.0)
    assert time.monotonic() - started < 10


async def test_migrate_does_not_wait_on_a_missing_database(database_url: str) -> None:
    target = urlsplit(asyncpg_dsn(database_url))
    if not target.hostname or target.hostname.startswith("/"):
        pytest.skip("the test database is on a Unix socket")
    url = _at(database_url, target.hostname, target.port or 5432, database="hub_no_such_database")
    started = time.monotonic()
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await asyncio.to_thread(upgrade, url, wait=30)
    assert time.monotonic() - started < 10

"""Postgres and Redis for one bench run, isolated from everything else and removed afterwards.

* ``HUB_DATABASE_URL`` and ``HUB_REDIS_URL`` set: those servers are used, but the bench creates a
  fresh database ``hub_bench_<random>`` (dropped at the end) and claims an empty Redis database
  number (flushed at the end), so it never touches existing data.
* Else, a running ``hub up`` on ``--data-dir``: the same, on its embedded servers.
* Else: embedded Postgres and Redis are started in ``--data-dir`` (or a temporary folder) and
  stopped at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import redis

from hub.embedded import EmbeddedServers, read_runtime
from hub.migrate import upgrade
from hub.settings import Settings, asyncpg_dsn

CLAIM_KEY = "hub:bench-claim"


class BenchError(RuntimeError):
    """The bench could not set up or run something it needs."""


class Unavailable(BenchError):
    """A piece of the hub a phase measures is not in this build (its figures are reported missing)."""


@dataclass(frozen=True, slots=True)
class Infra:
    """Where this run's data lives."""

    database_url: str
    redis_url: str
    workdir: Path
    embedded: bool


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (libpq URIs with ``?host=/socket`` included)."""
    parts = urlsplit(asyncpg_dsn(url))
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def with_redis_db(url: str, number: int) -> str:
    """``url`` on Redis database ``number`` (``redis://host/N`` or ``unix://path?db=N``)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        query["db"] = str(number)
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit((parts.scheme, parts.netloc, f"/{number}", parts.query, ""))


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _claim_redis(base: str, token: str) -> str:
    """An empty Redis database number, marked as ours (15 down to 1; 0 is usually in use)."""
    for number in range(15, 0, -1):
        url = with_redis_db(base, number)
        client = redis.Redis.from_url(url)
        try:
            if client.dbsize() == 0 and client.set(CLAIM_KEY, token, nx=True, ex=3600):
                if client.dbsize() == 1:  # nobody else claimed it between our check and our claim
                    return url
                client.delete(CLAIM_KEY)
        finally:
            client.close()
    raise BenchError(f"no empty Redis database (1-15) to run the bench in at {base}")


def _release_redis(url: str, token: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        if client.get(CLAIM_KEY) in (token.encode(), None):
            client.flushdb()
    finally:
        client.close()


@contextlib.contextmanager
def open_infra(settings: Settings, *, data_dir: Path | None, log: Callable[[str], None]) -> Iterator[Infra]:
    """Set up the run's database and Redis; tear everything down on the way out."""
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    servers: EmbeddedServers | None = None
    database_url: str | None = None
    redis_url: str | None = None
    admin_url, redis_base = settings.database_url, settings.redis_url
    token = secrets.token_hex(8)
    try:
        if not (admin_url and redis_base) and data_dir is not None and (running := read_runtime(data_dir)):
            log(f"Using the running hub's embedded servers in {data_dir}")
            admin_url, redis_base = admin_url or running.database_url, redis_base or running.redis_url
        if not (admin_url and redis_base):
            servers = EmbeddedServers(data_dir or workdir / "embedded")
            if not servers.try_lock():
                raise BenchError(f"{servers.data_dir} is locked by another hub; pass another --data-dir")
            log(f"Starting embedded Postgres and Redis in {servers.data_dir}")
            urls = servers.start()
            admin_url, redis_base = admin_url or urls.database_url, redis_base or urls.redis_url
        name = f"hub_bench_{token}"
        asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
        database_url = with_database(admin_url, name)
        log(f"Created database {name}; migrating")
        upgrade(database_url)
        redis_url = _claim_redis(redis_base, token)
        yield Infra(database_url=database_url, redis_url=redis_url, workdir=workdir, embedded=servers is not None)
    finally:
        if redis_url is not None:
            with contextlib.suppress(Exception):
                _release_redis(redis_url, token)
        if database_url is not None and admin_url is not None:
            with contextlib.suppress(Exception):
                asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "hub_bench_{token}" WITH (FORCE)'))
        if servers is not None:
            servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)

"""Database access: a SQLAlchemy async engine (SQLModel sessions) and a raw asyncpg pool.

Services use sessions for ordinary CRUD; the hot paths of ingestion and delivery use the asyncpg
pool directly (prepared statements, batched writes).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Generic, TypeAlias, TypeVar

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from hub.settings import asyncpg_dsn, sqlalchemy_url

Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
"""A connection from :func:`create_pool` (pooled proxy) or opened directly; both work everywhere."""


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(value: Any) -> str:
    """JSON text for JSONB columns (Decimals as strings, datetimes as ISO)."""
    return orjson.dumps(value, default=_json_default).decode()


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """The async engine for ``url`` (a libpq URI or a SQLAlchemy URL)."""
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        json_serializer=dumps,
        json_deserializer=orjson.loads,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def _init_connection(conn: Conn) -> None:
    await conn.set_type_codec("jsonb", encoder=dumps, decoder=orjson.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=dumps, decoder=orjson.loads, schema="pg_catalog")


async def _keep_session(conn: Conn) -> None:
    """Release without asyncpg's reset query: the hub keeps no session state (xact locks, SET LOCAL only)."""


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool[asyncpg.Record]:
    """A raw asyncpg pool with JSON codecs, for the hot paths."""
    pool = await asyncpg.create_pool(
        asyncpg_dsn(url),
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        command_timeout=60,
        reset=_keep_session,
    )
    assert pool is not None
    return pool


K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """A database answer saved for a second or two in this process: ``key → value`` with the time each
    was stored, emptied when it reaches ``max_entries``. Each reader passes its own time to live (a module
    constant tests may change). Used for an API key's principal, an inbound connection's row and an order
    list's estimated total: a lookup saved, never state."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: dict[K, tuple[float, V]] = {}
        self._max_entries = max_entries

    def get(self, key: K, ttl: float) -> tuple[V] | None:
        """``(value,)`` if ``key`` was stored less than ``ttl`` seconds ago (a value may be None), else None."""
        hit = self._entries.get(key)
        if hit is None or time.monotonic() - hit[0] >= ttl:
            return None
        return (hit[1],)

    def put(self, key: K, value: V) -> None:
        """Store ``value`` for ``key`` as of now."""
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = (time.monotonic(), value)

    def pop(self, key: K) -> None:
        """Forget ``key`` (the next read looks it up again)."""
        self._entries.pop(key, None)


@dataclass(frozen=True, slots=True)
class Part:
    """One step of a composed statement: a CTE ``name AS (sql)`` whose ``sql`` numbers its own ``args`` from $1."""

    name: str
    sql: str
    args: tuple[Any, ...] = ()


def columns_of(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """``rows`` turned into ``width`` column lists, for ``unnest($1::type[], …)`` (empty lists for no rows)."""
    return [list(column) for column in zip(*rows, strict=True)] or [[] for _ in range(width)]


_PLACEHOLDER = re.compile(r"\$(\d+)")


@lru_cache(maxsize=1024)
def _renumbered(sql: str, offset: int) -> str:
    """``sql`` with each ``$n`` made ``$(n + offset)`` (cached: a hot path composes the same few parts)."""
    return _PLACEHOLDER.sub(lambda m: f"${int(m.group(1)) + offset}", sql) if offset else sql


def compose(parts: Sequence[Part], final: Part) -> tuple[str, list[Any]]:
    """One statement (one round trip) running ``parts`` as CTEs, in order, then ``final``'s query.

    Each part's placeholders are renumbered after the previous parts' arguments. Postgres runs every
    data-modifying CTE exactly once, whether or not the final query reads it; all of them see the
    snapshot taken when the statement starts (not each other's rows), and foreign keys and unique
    constraints are checked as each row is written or at the statement's end, as for separate statements.
    """
    args: list[Any] = []

    def numbered(part: Part) -> str:
        offset = len(args)
        args.extend(part.args)
        return _renumbered(part.sql, offset)

    ctes = [f"{part.name} AS ({numbered(part)})" for part in parts]
    query = numbered(final)
    return (f"WITH {', '.join(ctes)}\n{query}" if ctes else query), args


@asynccontextmanager
async def _transaction(conn: Conn, begin: str) -> AsyncIterator[None]:
    """``begin`` (``BEGIN`` and what goes with it, one simple-protocol message), then commit on
    success or roll back on any error (a failed rollback leaves the connection to the pool's
    release, which rolls back or discards it)."""
    try:
        await conn.execute(begin)
        yield
    except BaseException:
        if not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")


def locked_transaction(conn: Conn, key: int) -> contextlib.AbstractAsyncContextManager[None]:
    """A transaction that starts by taking the transaction-level advisory lock ``key``.

    ``BEGIN`` and the lock go in one round trip, where ``conn.transaction()`` and a separate lock
    statement would take two.
    """
    return _transaction(conn, f"BEGIN; SELECT pg_advisory_xact_lock({int(key)})")


def generic_plan_transaction(conn: Conn) -> contextlib.AbstractAsyncContextManager[None]:
    """A transaction whose prepared statements run on their generic (cached) plans.

    For the ingest batch: PostgreSQL 15 re-plans its one composed write on every call (0.35 ms of
    the server per batch, more than a third of the statement; ``docs/benchmarks.md``), because the
    write's custom plans, which see each array's length, always look cheaper than the generic one.
    PostgreSQL 16 picks the generic plan by itself. The setting goes with ``BEGIN`` (one round trip,
    as ``conn.transaction()``) and ends with the transaction. ``hub_lock_orders`` keeps ``auto``
    (migration ``0011``): its statements' generic plans are ten times slower.
    """
    return _transaction(conn, "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan")


@asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session in one transaction: committed on success, rolled back on error."""
    async with factory() as session, session.begin():
        yield session


async def driver_connection(session: AsyncSession) -> Conn:
    """The asyncpg connection under ``session``'s transaction (for the shared raw-SQL helpers)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    return driver  # type: ignore[no-any-return]

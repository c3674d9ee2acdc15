"""``hub.db``'s one-round-trip transactions (an advisory lock, generic plans), committed or rolled back."""

from __future__ import annotations

import asyncpg
import pytest

from hub.db import generic_plan_transaction, locked_transaction
from hub.settings import Settings, asyncpg_dsn

KEY = 0x7465737478616374  # "testxact"


async def _connect(settings: Settings) -> asyncpg.Connection:
    assert settings.database_url is not None
    return await asyncpg.connect(asyncpg_dsn(settings.database_url))


async def test_commits_and_holds_the_lock_until_then(settings: Settings) -> None:
    conn, other = await _connect(settings), await _connect(settings)
    try:
        await conn.execute("CREATE TEMP TABLE seen (n int)")
        async with locked_transaction(conn, KEY):
            assert conn.is_in_transaction()
            await conn.execute("INSERT INTO seen VALUES (1)")
            assert await other.fetchval("SELECT pg_try_advisory_xact_lock($1)", KEY) is False
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT count(*) FROM seen") == 1
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", KEY) is True
        await other.execute("SELECT pg_advisory_unlock($1)", KEY)
    finally:
        await conn.close()
        await other.close()


async def test_an_error_rolls_back_and_releases_the_lock(settings: Settings) -> None:
    conn, other = await _connect(settings), await _connect(settings)
    try:
        await conn.execute("CREATE TEMP TABLE seen (n int)")

        async def insert_then_fail() -> None:
            async with locked_transaction(conn, KEY):
                await conn.execute("INSERT INTO seen VALUES (1)")
                await conn.execute("SELECT 1 / 0")

        with pytest.raises(asyncpg.DivisionByZeroError):
            await insert_then_fail()
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT count(*) FROM seen") == 0
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", KEY) is True
        await other.execute("SELECT pg_advisory_unlock($1)", KEY)
    finally:
        await conn.close()
        await other.close()


async def test_a_pool_connection_released_inside_a_transaction_gives_up_its_locks(settings: Settings) -> None:
    from hub.db import create_pool

    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    other = await _connect(settings)
    try:
        async with pool.acquire() as conn:
            await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({KEY})")  # its user never ends it
        async with pool.acquire() as conn:  # the same connection, handed out again
            assert not conn.is_in_transaction()
        assert await other.fetchval("SELECT pg_try_advisory_xact_lock($1)", KEY) is True
    finally:
        await other.close()
        await pool.close()


async def test_generic_plans_last_as_long_as_the_transaction(settings: Settings) -> None:
    conn = await _connect(settings)
    try:
        default = await conn.fetchval("SHOW plan_cache_mode")
        await conn.execute("CREATE TEMP TABLE seen (n int)")
        async with generic_plan_transaction(conn):
            assert conn.is_in_transaction()
            assert await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
            await conn.execute("INSERT INTO seen VALUES (1)")
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SHOW plan_cache_mode") == default
        assert await conn.fetchval("SELECT count(*) FROM seen") == 1

        async def insert_then_fail() -> None:
            async with generic_plan_transaction(conn):
                await conn.execute("INSERT INTO seen VALUES (2)")
                await conn.execute("SELECT 1 / 0")

        with pytest.raises(asyncpg.DivisionByZeroError):
            await insert_then_fail()
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SHOW plan_cache_mode") == default
        assert await conn.fetchval("SELECT count(*) FROM seen") == 1
    finally:
        await conn.close()


async def test_the_order_lock_function_keeps_its_own_plan_mode(settings: Settings) -> None:
    """Inside the ingest batch's generic-plan transaction, ``hub_lock_orders`` still plans as by default
    (migration 0011): a function's ``SET`` holds while it runs, whatever its caller set."""
    conn = await _connect(settings)
    try:
        config = await conn.fetchval("SELECT proconfig FROM pg_proc WHERE proname = 'hub_lock_orders'")
        assert "plan_cache_mode=auto" in config
        assert "enable_seqscan=off" in config  # migration 0010's settings are kept
    finally:
        await conn.close()

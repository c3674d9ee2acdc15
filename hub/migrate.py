"""Schema migrations with Alembic, configured in code so they run from an installed package.

:func:`upgrade` first waits, for a bounded time, until the database accepts connections: in a
compose stack or a Kubernetes Job, ``hub migrate`` may start while Postgres is still starting up.
Errors that waiting cannot cure (bad password, missing database) fail at once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import structlog
from alembic import command
from alembic.config import Config

from hub.settings import asyncpg_dsn

MIGRATIONS = Path(__file__).parent / "migrations"
#: How long :func:`upgrade` waits for a database that is not accepting connections yet.
CONNECT_WAIT_SECONDS = 60.0

log = structlog.get_logger("hub.migrate")

# Only what a server that is starting (or not reachable yet) answers; asyncpg's
# CannotConnectNowError is SQLSTATE 57P03, "the database system is starting up".
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, name not resolvable yet
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
)


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at our migrations and at ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["url"] = url
    return config


async def wait_for_database(url: str, within: float = CONNECT_WAIT_SECONDS) -> None:
    """Return once ``url`` accepts a connection; re-raise the last transient error after ``within`` s."""
    deadline = time.monotonic() + within
    delay = 0.25
    while True:
        try:
            connection = await asyncpg.connect(asyncpg_dsn(url), timeout=5)
        except _TRANSIENT as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            log.warning("database not ready, retrying", error=str(exc) or type(exc).__name__, retry_in=delay)
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 5.0)
        else:
            await connection.close()
            return


def upgrade(url: str, revision: str = "head", *, wait: float = CONNECT_WAIT_SECONDS) -> None:
    """Bring the database at ``url`` to ``revision`` (blocking; runs its own event loop).

    Waits up to ``wait`` seconds for the server to accept connections first.
    """
    if wait > 0:
        asyncio.run(wait_for_database(url, wait))
    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    """:func:`upgrade` from async code (Alembic's env runs its own loop, so use a thread)."""
    await asyncio.to_thread(upgrade, url, revision)

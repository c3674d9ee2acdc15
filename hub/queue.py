"""Redis and arq plumbing shared by the API and the workers.

Jobs carry ids only. Enqueuing also pushes to a wake-up list that idle workers block on
(``BLPOP``), so a job starts within milliseconds instead of after arq's poll delay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

QUEUE_NAME = "hub:queue"
WAKE_KEY = "hub:wake"


def redis_settings(url: str) -> RedisSettings:
    """arq settings for ``redis://host:port/db`` or ``unix:///path/redis.sock?db=N``."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        db = int(parse_qs(parts.query).get("db", ["0"])[0])
        return RedisSettings(unix_socket_path=parts.path, database=db, conn_timeout=2, conn_retries=2)
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 2
    settings.conn_retries = 2
    return settings


async def connect(url: str) -> ArqRedis:
    """An arq Redis pool on our queue."""
    return await create_pool(redis_settings(url), default_queue_name=QUEUE_NAME)


async def enqueue(redis: ArqRedis, function: str, *args: Any, job_id: str | None = None, defer: float = 0) -> None:
    """Enqueue ``function(*args)`` and wake an idle worker (ids only in ``args``)."""
    await redis.enqueue_job(function, *args, _job_id=job_id, _defer_by=defer or None)
    if not defer:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.lpush(WAKE_KEY, b"1")
            pipe.ltrim(WAKE_KEY, 0, 63)
            await pipe.execute()


INGEST_WAKE = "hub:wake:ingest"


DELIVERY_WAKE = "hub:wake:deliveries"
#: A wake list nobody drains (no worker running) keeps at most this many entries; the sweeper
#: finds whatever the trimmed ones pointed at, since the database holds the work itself.
WAKE_LIST_MAX = 10_000


async def wake_ids(redis: ArqRedis, key: str, ids: Sequence[str]) -> None:
    """Wake the workers' drain loop for ``key`` with these ids as a hint (one round trip)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.lpush(key, orjson.dumps(list(ids)))
        pipe.ltrim(key, 0, WAKE_LIST_MAX - 1)
        await pipe.execute()


def wake_payload(raw: bytes | str) -> list[str]:
    """The ids of one :func:`wake_ids` entry (anything else in the list is ignored)."""
    try:
        ids = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []

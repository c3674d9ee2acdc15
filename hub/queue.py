"""The one place that names arq jobs and wakes workers (Redis plumbing shared by the API and the workers).

Job names are a wire contract (workers register them, queued jobs carry them): never rename one
without keeping the old name registered. Jobs carry ids only.

Wake-ups make committed work prompt; they never make it happen: the database row is the work, so
every ``wake_*`` here is best effort (a failure is logged and reported as ``False``) and the
sweeper finds whatever a lost wake-up pointed at. Call them only after the commit. Fresh ingest
events need no call: their insert notifies Postgres (``hub.ingest.store.NOTIFY_CHANNEL``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import structlog
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from redis.exceptions import RedisError

QUEUE_NAME = "hub:queue"
#: arq job names (wire contracts).
INGEST_JOB = "ingest_events"
DELIVER_JOB = "deliver_webhooks"
CHAT_SYNC_JOB = "sync_chat_agent"
PLATFORM_SYNC_JOB = "sync_connection"

#: The Redis list a running worker blocks on for freshly committed deliveries (entries: JSON id lists).
DELIVERY_WAKE = "hub:wake:deliveries"
#: A wake list nobody drains (no worker running) keeps at most this many entries; the sweeper
#: finds whatever the trimmed ones pointed at, since the database holds the work itself.
WAKE_LIST_MAX = 10_000
#: Ids one wake-up names at most: a woken pipeline claims other due rows after the named ones anyway.
WAKE_IDS_MAX = 2_000

log = structlog.get_logger("hub.queue")


@dataclass(frozen=True, slots=True)
class Retried:
    """A row put back to work: its status before, whether a worker was woken at once, the row as reset."""

    id: str
    previous_status: str
    enqueued: bool
    # every column as the reset committed it (before the woken worker could change it)
    row: dict[str, Any] = field(default_factory=dict)


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
    """Enqueue ``function(*args)`` (ids only in ``args``); raises if Redis is away.

    arq silently drops a job whose id it still holds, so callers that mean "once more" pass a fresh id.
    """
    await redis.enqueue_job(function, *args, _job_id=job_id, _defer_by=defer or None)


async def wake_job(redis: ArqRedis, function: str, ids: list[str], *, job_id: str, defer: float = 0) -> bool:
    """Best effort :func:`enqueue` of ``function(ids)``: ``False`` (and a warning) if Redis is away."""
    try:
        await enqueue(redis, function, ids, job_id=job_id, defer=defer)
    except (RedisError, OSError) as exc:  # redis' ConnectionError is not the builtin one
        log.warning("wake_failed", job=function, job_id=job_id, count=len(ids), error=repr(exc))
        return False
    return True


async def wake_deliveries(redis: ArqRedis | None, delivery_ids: Sequence[str]) -> bool:
    """Wake a running worker's delivery pipeline for committed delivery rows (no arq job; best effort)."""
    if redis is None or not delivery_ids:
        return False
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.lpush(DELIVERY_WAKE, orjson.dumps(list(delivery_ids[:WAKE_IDS_MAX])))
            pipe.ltrim(DELIVERY_WAKE, 0, WAKE_LIST_MAX - 1)
            await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("wake_failed", key=DELIVERY_WAKE, count=len(delivery_ids), error=repr(exc))
        return False
    return True


def wake_payload(raw: bytes | str) -> list[str]:
    """The ids of one :func:`wake_deliveries` entry (anything else in the list is ignored)."""
    try:
        ids = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []

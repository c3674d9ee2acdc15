"""Rejected inbound requests (bad signature, bad payload), counted in Redis per source and reason.

They are never stored in Postgres, so the receiver counts them with :func:`record_reject`;
:func:`read_rejects` gives the ops page and ``/metrics`` their lifetime and recent counts.
"""

from __future__ import annotations

import re
import time
from typing import Any

#: Reject reasons the receiver reports (any other ``[a-z0-9_]`` name is kept as given).
BAD_SIGNATURE = "bad_signature"
BAD_PAYLOAD = "bad_payload"

REJECTS_KEY = "hub:rejects:{source}"
REJECTS_MINUTE_KEY = "hub:rejects:{source}:{minute}"
REJECT_SOURCES_KEY = "hub:rejects:sources"
REJECT_BUCKET_TTL_SECONDS = 2 * 3600
# The source comes from the request path: cap what an attacker posting to random paths can create.
MAX_REJECT_SOURCES = 100
_NAME = re.compile(r"[^a-z0-9_]+")


def _label(value: str, *, limit: int = 40) -> str:
    cleaned = _NAME.sub("_", value.strip().lower()).strip("_")[:limit]
    return cleaned or "other"


def minute_of(timestamp: float) -> int:
    """The epoch minute ``timestamp`` falls in (the suffix of per-minute reject buckets)."""
    return int(timestamp // 60)


async def record_reject(redis: Any, source: str, reason: str) -> None:
    """Count one rejected inbound request of ``source`` (``reason``: :data:`BAD_SIGNATURE`, …).

    Increments field ``reason`` of the Redis hash ``hub:rejects:{source}`` (lifetime, read by
    ``hub_ingest_rejects_total``) and of the per-minute hash ``hub:rejects:{source}:{minute}``
    (expires after 2 h; the ops page sums the last five). Best effort: a Redis failure is raised to
    the caller, which should not let it change the answer it gives the platform.
    """
    source, reason = _label(source), _label(reason)
    if not await redis.sismember(REJECT_SOURCES_KEY, source) and (
        await redis.scard(REJECT_SOURCES_KEY) >= MAX_REJECT_SOURCES
    ):
        source = "other"
    bucket = REJECTS_MINUTE_KEY.format(source=source, minute=minute_of(time.time()))
    pipe = redis.pipeline(transaction=False)
    pipe.sadd(REJECT_SOURCES_KEY, source)
    pipe.hincrby(REJECTS_KEY.format(source=source), reason, 1)
    pipe.hincrby(bucket, reason, 1)
    pipe.expire(bucket, REJECT_BUCKET_TTL_SECONDS)
    await pipe.execute()


async def read_rejects(redis: Any, *, last_minutes: int = 5) -> dict[str, dict[str, tuple[int, int]]]:
    """``{source: {reason: (lifetime, last_minutes)}}`` from the counters :func:`record_reject` keeps."""
    sources = sorted(_text(s) for s in await redis.smembers(REJECT_SOURCES_KEY))
    if not sources:
        return {}
    now_minute = minute_of(time.time())
    minutes = range(now_minute - last_minutes + 1, now_minute + 1)
    pipe = redis.pipeline(transaction=False)
    for source in sources:
        pipe.hgetall(REJECTS_KEY.format(source=source))
        for minute in minutes:
            pipe.hgetall(REJECTS_MINUTE_KEY.format(source=source, minute=minute))
    replies: list[dict[Any, Any]] = await pipe.execute()
    result: dict[str, dict[str, tuple[int, int]]] = {}
    step = 1 + len(minutes)
    for index, source in enumerate(sources):
        lifetime, *buckets = replies[index * step : (index + 1) * step]
        recent: dict[str, int] = {}
        for bucket in buckets:
            for reason, count in bucket.items():
                recent[_text(reason)] = recent.get(_text(reason), 0) + int(count)
        reasons = {_text(r): int(c) for r, c in lifetime.items()}
        result[source] = {r: (reasons.get(r, 0), recent.get(r, 0)) for r in sorted(set(reasons) | set(recent))}
    return result


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

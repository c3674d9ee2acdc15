"""The arq queue's figures for the ops page and ``/metrics``: depth, due, deferred, oldest, running.

Read from Redis on every call (``ZCARD``, ``ZCOUNT``, a ``SCAN`` for in-progress keys); cheap and
exact, so never cached.
"""

from __future__ import annotations

import time

from arq.connections import ArqRedis
from pydantic import BaseModel

from hub import queue

__all__ = ["IN_PROGRESS_PREFIX", "QueueStats", "queue_stats"]

IN_PROGRESS_PREFIX = "arq:in-progress:"


class QueueStats(BaseModel):
    """The arq queue: a sorted set scored by the time (ms) each job may start."""

    #: Every job in the queue: waiting, deferred and running (arq removes a job when it ends).
    depth: int
    #: Waiting jobs whose start time has come.
    ready: int
    #: Jobs whose start time is still ahead.
    deferred: int
    #: How long the oldest waiting job has waited (None: nothing waiting).
    oldest_age_seconds: float | None
    #: Jobs running now on any worker.
    in_progress: int


async def _running(redis: ArqRedis) -> set[str]:
    """Ids of jobs a worker is running now.

    arq marks a running job with ``arq:in-progress:<id>`` and keeps it in the queue until it ends,
    but it also keeps a finished cron job's key for 60 s (so the cron does not run twice): only a
    key whose job is still queued is a job in flight.
    """
    ids = [
        _text(key).removeprefix(IN_PROGRESS_PREFIX)
        async for key in redis.scan_iter(match=IN_PROGRESS_PREFIX + "*", count=1000)
    ]
    if not ids:
        return set()
    pipe = redis.pipeline(transaction=False)
    for job_id in ids:
        pipe.zscore(queue.QUEUE_NAME, job_id)
    scores = await pipe.execute()
    return {job_id for job_id, score in zip(ids, scores, strict=True) if score is not None}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def queue_stats(redis: ArqRedis, *, now: float | None = None) -> QueueStats:
    """The arq queue: depth (``ZCARD``, running jobs included, as arq keeps them queued until done),
    jobs waiting whose time has come, deferred ones, the oldest waiting job, and jobs running now."""
    now_ms = (time.time() if now is None else now) * 1000
    running = await _running(redis)
    pipe = redis.pipeline(transaction=False)
    pipe.zcard(queue.QUEUE_NAME)
    pipe.zcount(queue.QUEUE_NAME, "-inf", now_ms)
    # The oldest waiting job is among the first len(running) + 1 due ones.
    pipe.zrangebyscore(queue.QUEUE_NAME, "-inf", now_ms, start=0, num=len(running) + 1, withscores=True)
    depth, due, first = await pipe.execute()
    waiting = [float(score) for member, score in first if _text(member) not in running]
    age = max(0.0, (now_ms - waiting[0]) / 1000) if waiting else None
    ready = max(0, int(due) - len(running))
    return QueueStats(
        depth=int(depth),
        ready=ready,
        deferred=max(0, int(depth) - int(due)),
        oldest_age_seconds=age,
        in_progress=len(running),
    )

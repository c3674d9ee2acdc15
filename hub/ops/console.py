"""What ``hub up`` tells its operator while it runs: each failure as it happens, and a periodic summary.

:func:`watch` reads the ledger every few seconds (the API and the worker need not know it runs)
and logs one line per failed delivery attempt (endpoint, status, next retry), one per inbound event
whose processing failed (source, error), and, while traffic flows, one summary line per minute.
Rejected webhooks are logged where they are refused (:mod:`hub.api.hooks`). Nothing is logged per
successful request, and the level follows ``HUB_LOG_LEVEL`` like every other line (failures are
warnings, the summary is info). A burst of failures is capped at :data:`MAX_LINES` lines per read.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog

from hub.db import Conn, create_pool
from hub.ops import retrying
from hub.ops.retrying import display_url

__all__ = ["Cursor", "report", "run", "start", "watch"]

log = structlog.get_logger("hub.console")

POLL_SECONDS = 2.0
SUMMARY_SECONDS = 60.0
MAX_LINES = 20


@dataclass
class Cursor:
    """Where the previous read stopped: the last attempt seen, and the ledger's clock at that read."""

    attempt_id: int
    failures_since: datetime
    summary_since: datetime


async def start(conn: Conn) -> Cursor:
    """A cursor at "now": what happened before ``hub up`` started is not reported again."""
    row = await conn.fetchrow("SELECT coalesce(max(id), 0) AS id, now() AS now FROM delivery_attempts")
    assert row is not None
    return Cursor(attempt_id=row["id"], failures_since=row["now"], summary_since=row["now"])


def _next(status: str, next_attempt_at: datetime | None, now: datetime, attempts: int) -> str:
    if status == "failed":
        return f"gave up after {attempts} attempts"
    if status == "succeeded":
        return "succeeded since"
    if next_attempt_at is None:
        return "now"
    seconds = max(0, round((next_attempt_at - now).total_seconds()))
    return f"in {seconds // 60}m {seconds % 60}s" if seconds >= 60 else f"in {seconds}s"


async def _delivery_failures(conn: Conn, cursor: Cursor, now: datetime) -> None:
    # Attempt ids only grow; one recorded by a transaction still open at this read may be skipped,
    # which a console can afford (the ledger, the ops page and hub status still have it).
    upper: int = await conn.fetchval("SELECT coalesce(max(id), $1) FROM delivery_attempts", cursor.attempt_id)
    window = (cursor.attempt_id, upper)
    cursor.attempt_id = upper
    rows = await conn.fetch(
        "SELECT a.status_code, a.error, a.attempt_no, d.id AS delivery_id, d.status, d.next_attempt_at, "
        "d.attempt_count, e.url FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id "
        "JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE a.id > $1 AND a.id <= $2 AND NOT a.succeeded "
        "ORDER BY a.id LIMIT $3",
        *window,
        MAX_LINES,
    )
    for row in rows:
        log.warning(
            "delivery_failed",
            endpoint=display_url(row["url"]),
            status=row["status_code"] or row["error"] or "no answer",
            attempt=row["attempt_no"],
            next_retry=_next(row["status"], row["next_attempt_at"], now, row["attempt_count"]),
            delivery=row["delivery_id"],
        )
    if len(rows) == MAX_LINES:
        total = await conn.fetchval(
            "SELECT count(*) FROM delivery_attempts WHERE id > $1 AND id <= $2 AND NOT succeeded", *window
        )
        if total > MAX_LINES:
            log.warning("delivery_failed_more", count=total - MAX_LINES, see="hub status")


async def _inbound_failures(conn: Conn, cursor: Cursor, now: datetime) -> None:
    rows = await conn.fetch(
        "SELECT id, source, topic, error FROM inbound_events WHERE status = 'failed' AND processed_at > $1 "
        "AND processed_at <= $2 ORDER BY processed_at, id LIMIT $3",
        cursor.failures_since,
        now,
        MAX_LINES + 1,
    )
    for row in rows[:MAX_LINES]:
        log.warning("inbound_event_failed", source=row["source"], topic=row["topic"], error=row["error"], id=row["id"])
    if len(rows) > MAX_LINES:
        log.warning("inbound_event_failed_more", see="hub status")
    cursor.failures_since = now


async def _summary(conn: Conn, cursor: Cursor, now: datetime) -> None:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM inbound_events WHERE received_at > $1 AND received_at <= $2) AS received, "
        "(SELECT count(*) FROM delivery_attempts WHERE started_at > $1 AND started_at <= $2 AND succeeded) AS ok, "
        "(SELECT count(*) FROM delivery_attempts WHERE started_at > $1 AND started_at <= $2 AND NOT succeeded) "
        "AS failed",
        cursor.summary_since,
        now,
    )
    seconds = round((now - cursor.summary_since).total_seconds())
    cursor.summary_since = now
    if row is None or not (row["received"] or row["ok"] or row["failed"]):
        return  # quiet while nothing flows
    held = await retrying.endpoints(conn)
    log.info(
        "traffic",
        last=f"{seconds}s",
        webhooks_received=row["received"],
        deliveries_ok=row["ok"],
        deliveries_failed=row["failed"],
        retrying=sum(e.retrying for e in held),
    )


async def report(conn: Conn, cursor: Cursor, *, summary_every: float = SUMMARY_SECONDS) -> None:
    """Log what happened since ``cursor`` (moving it on), and the summary when one is due."""
    now: datetime = await conn.fetchval("SELECT now()")
    await _delivery_failures(conn, cursor, now)
    await _inbound_failures(conn, cursor, now)
    if (now - cursor.summary_since).total_seconds() >= summary_every:
        await _summary(conn, cursor, now)


async def watch(pool: asyncpg.Pool, *, poll: float = POLL_SECONDS, summary_every: float = SUMMARY_SECONDS) -> None:
    """Report until cancelled; a failed read is retried at the next poll (the hub keeps running)."""
    async with pool.acquire() as conn:
        cursor = await start(conn)
    while True:
        await asyncio.sleep(poll)
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            async with pool.acquire() as conn:
                await report(conn, cursor, summary_every=summary_every)


async def run(database_url: str) -> None:
    """:func:`watch` on a pool of its own (one connection), until cancelled."""
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        await watch(pool)
    finally:
        await pool.close()

"""Durable storage of raw inbound requests, with group commit.

A platform's webhook is acknowledged (200) only once its raw request is committed in Postgres.
One commit per request would cap ingestion at the database's fsync rate; instead, requests that
arrive while commits are in flight wait for the next one, and each commit stores all of them in a
single multi-row ``INSERT … ON CONFLICT DO NOTHING``. Up to :data:`IN_FLIGHT` commits run at once,
so the process parses the next requests and Postgres writes the next group while one group's
commit waits for its WAL flush. Every caller still learns the outcome of
*its* row only after that row's commit, so a 200 keeps meaning "committed". Nothing that matters
lives only in memory: an item is either committed (and answered) or its request fails.

A platform's retry of the same delivery (same connection + delivery key) is stored once; the retry
is answered 200 with ``duplicate: true`` so the platform stops retrying.

The same statement wakes the workers (``pg_notify``, delivered when it commits), so the way from a
committed webhook to a worker takes no round trip of the API's own and never depends on Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from hub.db import Conn, dumps
from hub.ids import new_id

MAX_GROUP = 500
#: Commits a process has in flight at once (each on its own connection) ...
IN_FLIGHT = 2
#: ... a further one starting only once this many requests wait (tiny groups would cost a commit each).
MIN_EXTRA_GROUP = 4
REDACTED_HEADERS = frozenset({"cookie", "proxy-authorization", "authorization"})

log = structlog.get_logger("hub.inbound")


@dataclass(slots=True)
class InboundItem:
    """One raw request waiting to be stored."""

    organization_id: str
    connection_id: str
    source: str
    delivery_key: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    id: str = field(default_factory=lambda: new_id("ie"))
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class Stored:
    """The outcome for one item: its event id and whether it was a retry already stored."""

    id: str
    duplicate: bool


#: The Postgres channel a committed group notifies (no payload: the database says what is due).
NOTIFY_CHANNEL = "hub_inbound_events"

_INSERT = """
INSERT INTO inbound_events (id, organization_id, connection_id, source, delivery_key, headers, query, body,
                            status, attempts, order_ids, received_at)
SELECT i, o, c, s, k, h::jsonb, q::jsonb, b, 'received', 0, '[]'::jsonb, r
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[],
            $9::timestamptz[]) AS t(i, o, c, s, k, h, q, b, r)
ON CONFLICT (connection_id, delivery_key) DO NOTHING
RETURNING id
"""
# The same insert, notifying NOTIFY_CHANNEL once if it stored a row: Postgres delivers the notification
# to every listening worker when (and only if) the insert commits, with no round trip of its own.
_INSERT_AND_NOTIFY = f"""
WITH stored AS ({_INSERT.strip()}),
woken AS (SELECT count(*) AS n FROM (SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM stored LIMIT 1) AS wake)
SELECT stored.id FROM stored CROSS JOIN woken
"""


async def insert_many(conn: Conn, items: list[InboundItem], *, notify: bool = False) -> list[Stored]:
    """Insert ``items`` in one statement; duplicates resolve to the id already stored.

    Outside a transaction the insert commits by itself; the duplicates' lookup after it only reads.
    ``notify``: wake the listening workers (:data:`NOTIFY_CHANNEL`) when it commits.
    """
    inserted = {
        row["id"]
        for row in await conn.fetch(
            _INSERT_AND_NOTIFY if notify else _INSERT,
            [i.id for i in items],
            [i.organization_id for i in items],
            [i.connection_id for i in items],
            [i.source for i in items],
            [i.delivery_key for i in items],
            [dumps(i.headers) for i in items],  # JSON text, cast per row: cheaper to send than jsonb[]
            [dumps(i.query) for i in items],
            [i.body for i in items],
            [i.received_at for i in items],
        )
    }
    missing = [i for i in items if i.id not in inserted]
    existing: dict[tuple[str, str], str] = {}
    if missing:
        rows = await conn.fetch(
            "SELECT id, connection_id, delivery_key FROM inbound_events "
            "WHERE (connection_id, delivery_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            [i.connection_id for i in missing],
            [i.delivery_key for i in missing],
        )
        existing = {(r["connection_id"], r["delivery_key"]): r["id"] for r in rows}
    return [
        Stored(i.id, False) if i.id in inserted else Stored(existing.get((i.connection_id, i.delivery_key), i.id), True)
        for i in items
    ]


class GroupCommitter:
    """Batches concurrent :meth:`store` calls into shared commits (up to ``in_flight`` at a time per process).

    ``notify``: each commit wakes the listening workers through Postgres (:data:`NOTIFY_CHANNEL`).
    """

    def __init__(
        self,
        pool: asyncpg.Pool[asyncpg.Record],
        *,
        notify: bool = False,
        max_group: int = MAX_GROUP,
        in_flight: int = IN_FLIGHT,
    ) -> None:
        self._db = pool
        self._notify = notify
        self._max_group = max_group
        self._pending: list[tuple[InboundItem, asyncio.Future[Stored]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight = in_flight
        self._flushing: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start the flushing task (inside a running loop)."""
        self._task = asyncio.create_task(self._run(), name="inbound-group-commit")

    async def close(self) -> None:
        """Flush what is pending, then stop."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._flushing:
            await asyncio.wait(self._flushing)
        while self._pending:
            await self._flush(self._take())

    async def store(self, item: InboundItem) -> Stored:
        """Store ``item`` durably; returns once its commit is done (raises if it failed)."""
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending and self._may_flush():
                task = asyncio.create_task(self._flush(self._take()))
                self._flushing.add(task)
                task.add_done_callback(self._flushed)

    def _may_flush(self) -> bool:
        if not self._flushing:
            return True
        return len(self._flushing) < self._in_flight and len(self._pending) >= MIN_EXTRA_GROUP

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._flushing.discard(task)
        self._wakeup.set()  # a commit slot is free: what waits goes next

    def _take(self) -> list[tuple[InboundItem, asyncio.Future[Stored]]]:
        group, self._pending = self._pending[: self._max_group], self._pending[self._max_group :]
        return group

    async def _flush(self, group: list[tuple[InboundItem, asyncio.Future[Stored]]]) -> None:
        try:
            # No explicit transaction: the insert is one statement, so it commits on its own (atomic and
            # durable when it returns) and BEGIN/COMMIT would be two more round trips per group.
            async with self._db.acquire() as conn:
                results = await insert_many(conn, [item for item, _ in group], notify=self._notify)
        except Exception as exc:  # every waiter of this group gets the failure: nothing was stored
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), stored in zip(group, results, strict=True):
            if not future.done():
                future.set_result(stored)


def summarize_headers(headers: Any, *, keep: int = 40) -> dict[str, str]:
    """Headers kept with the raw body: lower-case names, credentials redacted (they are secrets)."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in REDACTED_HEADERS:
            out[lower] = "[redacted]"
            continue
        out[lower] = value if len(value) <= 2000 else value[:2000]
        if len(out) >= keep:
            break
    return out

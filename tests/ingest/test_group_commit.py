"""Group commit: concurrent requests share commits, two groups may be in flight, nothing is lost or doubled."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import asyncpg

from hub.db import create_pool
from hub.ingest.store import NOTIFY_CHANNEL, GroupCommitter, InboundItem, Stored
from hub.settings import Settings
from tests.ingest.test_pipeline import _connection

KEYS = 10


class _Watched(GroupCommitter):
    """Notes how many commits were in flight at once."""

    peak = 0

    async def _flush(self, group: list[tuple[InboundItem, asyncio.Future[Stored]]]) -> None:
        self.peak = max(self.peak, len(self._flushing))
        await super()._flush(group)


def _item(org: str, conn_id: str, n: int) -> InboundItem:
    return InboundItem(
        organization_id=org,
        connection_id=conn_id,
        source="salla",
        delivery_key=f"key-{n % KEYS}",  # every key arrives several times, in the same and in other groups
        headers={},
        query={},
        body=b'{"n": %d}' % n,
    )


async def test_overlapping_groups_store_each_delivery_once_and_answer_every_caller(
    settings: Settings, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    assert settings.database_url is not None
    conn_id = await _connection(settings, db)
    org = await db.fetchval("SELECT organization_id FROM connections WHERE id = $1", conn_id)
    pool = await create_pool(settings.database_url, max_size=4)
    committer = _Watched(pool, max_group=8, in_flight=2)
    committer.start()
    try:
        first = [_item(org, conn_id, n) for n in range(60)]
        results = await asyncio.gather(*(committer.store(item) for item in first))
        # stored but not yet committed when close() begins: close still commits them
        late = [asyncio.create_task(committer.store(_item(org, conn_id, n))) for n in range(60, 66)]
        await asyncio.sleep(0)
        await committer.close()
        results += await asyncio.wait_for(asyncio.gather(*late), 5)
    finally:
        await pool.close()

    rows = await db.fetch("SELECT id, delivery_key FROM inbound_events")
    assert len(rows) == KEYS
    stored = {row["delivery_key"]: row["id"] for row in rows}
    answers: dict[str, set[str]] = defaultdict(set)
    for n, result in enumerate(results):
        answers[f"key-{n % KEYS}"].add(result.id)
    assert answers == {key: {row_id} for key, row_id in stored.items()}  # every caller learns the stored id
    assert sum(not result.duplicate for result in results) == KEYS
    assert committer.peak == 2  # groups overlapped


async def test_a_notifying_committer_wakes_listeners_only_for_groups_that_stored_something(
    settings: Settings, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    assert settings.database_url is not None
    conn_id = await _connection(settings, db)
    org = await db.fetchval("SELECT organization_id FROM connections WHERE id = $1", conn_id)
    heard: asyncio.Queue[str] = asyncio.Queue()

    def hear(_conn: object, _pid: int, channel: str, _payload: object) -> None:
        heard.put_nowait(channel)

    await db.add_listener(NOTIFY_CHANNEL, hear)
    pool = await create_pool(settings.database_url, max_size=2)
    quiet, loud = GroupCommitter(pool), GroupCommitter(pool, notify=True)
    quiet.start()
    loud.start()
    try:
        await quiet.store(_item(org, conn_id, 1))
        await asyncio.sleep(0.2)
        assert heard.empty()  # the plain insert wakes nobody
        assert not (await loud.store(_item(org, conn_id, 2))).duplicate
        assert await asyncio.wait_for(heard.get(), 5) == NOTIFY_CHANNEL
        assert (await loud.store(_item(org, conn_id, 12))).duplicate  # key-2 again: nothing new to process
        await asyncio.sleep(0.2)
        assert heard.empty()
    finally:
        await quiet.close()
        await loud.close()
        await pool.close()
        await db.remove_listener(NOTIFY_CHANNEL, hear)

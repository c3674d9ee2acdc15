"""The checks every fault test ends with, and the figures it records for docs/reliability.md."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from tests.faults.harness import SCALE, T0, Hub
from tests.faults.platform import Event, SendLog, order_state

# ---- checks ---------------------------------------------------------------------------------------


@dataclass
class Progress:
    """Where the pipeline stands, from the database."""

    inbound: int
    received: int
    processed: int
    deliveries: int
    delivered: int
    failed_deliveries: int
    events: int

    @property
    def settled(self) -> bool:
        return self.received == 0 and self.delivered == self.deliveries == self.events


async def progress(hub: Hub) -> Progress | None:
    """The pipeline's counters, or None while the database is unreachable."""
    try:
        conn = await asyncio.wait_for(hub.connect(), 5)
    except (OSError, asyncpg.PostgresError, TimeoutError, asyncpg.InterfaceError):
        return None
    try:
        row = await conn.fetchrow(
            """
            SELECT (SELECT count(*) FROM inbound_events) AS inbound,
                   (SELECT count(*) FROM inbound_events WHERE status = 'received') AS received,
                   (SELECT count(*) FROM inbound_events WHERE status = 'processed') AS processed,
                   (SELECT count(*) FROM deliveries) AS deliveries,
                   (SELECT count(*) FROM deliveries WHERE status = 'succeeded') AS delivered,
                   (SELECT count(*) FROM deliveries WHERE status = 'failed') AS failed_deliveries,
                   (SELECT count(*) FROM order_events) AS events
            """
        )
    finally:
        await conn.close()
    assert row is not None
    return Progress(**dict(row))


async def wait_settled(hub: Hub, expected_inbound: int, *, within: float = 120.0) -> float:
    """Wait until every expected inbound event is processed and every delivery succeeded; seconds taken."""
    started = time.monotonic()
    last: Progress | None = None
    while True:
        last = await progress(hub) or last
        if last is not None and last.inbound >= expected_inbound and last.settled:
            return time.monotonic() - started
        if last is not None and last.failed_deliveries:
            raise AssertionError(f"deliveries failed for good: {last}")
        if time.monotonic() - started > within:
            logs = "\n".join(f"---- {p.name}\n{p.tail(2000)}" for p in hub.procs)
            raise AssertionError(f"not settled within {within} s: {last}\n{logs}")
        await asyncio.sleep(0.25)


async def check_orders(hub: Hub, events: Sequence[Event], organization_id: str) -> None:
    """Every order exactly once, each in the state of its newest event."""
    newest: dict[str, int] = {}
    for event in events:
        newest[event.external_id] = max(newest.get(event.external_id, -1), event.version)
    conn = await hub.connect()
    try:
        rows = await conn.fetch(
            "SELECT external_id, status, notes, total_amount, source_updated_at FROM orders "
            "WHERE organization_id = $1 AND deleted_at IS NULL",
            organization_id,
        )
    finally:
        await conn.close()
    ids = Counter(r["external_id"] for r in rows)
    duplicated = [i for i, n in ids.items() if n > 1]
    assert not duplicated, f"orders stored more than once: {duplicated[:5]}"
    assert set(ids) == set(newest), f"missing {len(set(newest) - set(ids))}, unexpected {len(set(ids) - set(newest))}"
    wrong = []
    for row in rows:
        version = newest[row["external_id"]]
        state = order_state(version)
        got = (row["status"], row["notes"], row["total_amount"], row["source_updated_at"])
        want = (state["status"], state["notes"], Decimal(state["total_amount"]), T0 + timedelta(minutes=version))
        if got != want:
            wrong.append((row["external_id"], got, want))
    assert not wrong, f"{len(wrong)} orders not in their newest state, e.g. {wrong[:5]}"


async def check_accepted_stored(hub: Hub, log: SendLog) -> None:
    """Every inbound id that got a 200 exists and was processed."""
    conn = await hub.connect()
    try:
        rows = await conn.fetch(
            "SELECT id, status FROM inbound_events WHERE id = ANY($1::text[])", list(log.accepted.values())
        )
    finally:
        await conn.close()
    found = {r["id"]: r["status"] for r in rows}
    missing = set(log.accepted.values()) - set(found)
    assert not missing, f"{len(missing)} events answered 200 are not stored, e.g. {sorted(missing)[:5]}"
    unprocessed = {i: s for i, s in found.items() if s != "processed"}
    assert not unprocessed, f"{len(unprocessed)} accepted events not processed: {list(unprocessed.items())[:5]}"


async def check_subscriber(hub: Hub, received: Sequence[Any], organization_id: str) -> dict[str, int]:
    """Every emitted event reached the subscriber at least once, always under its own webhook-id.

    Returns ``{"events": n, "requests": m, "redelivered": k}``.
    """
    conn = await hub.connect()
    try:
        event_ids = {
            r["id"] for r in await conn.fetch("SELECT id FROM order_events WHERE organization_id = $1", organization_id)
        }
    finally:
        await conn.close()
    got: Counter[str] = Counter()
    for request in received:
        body_id = json.loads(request.body)["id"]
        assert request.headers["webhook-id"] == body_id, "a delivery came with a webhook-id not its event's"
        got[body_id] += 1
    missing = event_ids - set(got)
    assert not missing, f"{len(missing)} of {len(event_ids)} events never reached the subscriber"
    assert set(got) <= event_ids, "the subscriber got events the hub does not know"
    return {"events": len(event_ids), "requests": sum(got.values()), "redelivered": sum(n - 1 for n in got.values())}


# ---- figures --------------------------------------------------------------------------------------

#: Where :func:`record` keeps the figures of the last run (docs/reliability.md quotes them).
FIGURES = Path(os.environ.get("HUB_FAULTS_FIGURES") or Path(tempfile.gettempdir()) / "orderhub-fault-figures.json")


def record(test: str, **figures: Any) -> None:
    """Keep ``figures`` of ``test`` in :data:`FIGURES` and print them (``pytest -s`` shows them)."""
    try:
        data = json.loads(FIGURES.read_text())
    except (OSError, ValueError):
        data = {}
    data[test] = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "scale": SCALE, **figures}
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    sys.stderr.write(f"figures {test}: {json.dumps(figures)}\n")

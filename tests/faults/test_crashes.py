"""Crashes and lost infrastructure in the middle of a burst: nothing accepted is lost.

Each test runs a whole hub (``hub serve`` + ``hub worker``) on its own embedded Postgres and Redis,
sends a burst of signed ``generic`` webhooks (several versions of each order, clocks increasing)
while a subscriber receives ``order.*``, breaks something half-way, and then checks DESIGN's
promises: every order exactly once in its newest state, every emitted event delivered at least
once under its own ``webhook-id``, every 200 stored and processed, and no 5xx (503 only while
Postgres is down). The time to full recovery is recorded for docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.receiver import Receiver
from tests.faults.checks import check_accepted_stored, check_orders, check_subscriber, record, wait_settled
from tests.faults.harness import Hub, running_hub, scaled
from tests.faults.platform import Platform, events_for, setup_tenant

pytestmark = [pytest.mark.faults, pytest.mark.timeout(360)]

ORDERS = 500
VERSIONS = 10  # 500 orders x 10 versions = 5,000 signed ingests
#: DESIGN "Data flow": after a worker is SIGKILLed or Redis is flushed, everything completes within 60 s.
RECOVERY_BOUND = 60.0

Fault = Callable[[Hub], Coroutine[Any, Any, dict[str, Any]]]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async with running_hub(tmp_path) as running:
        yield running


@pytest.fixture
async def hub_at_defaults(tmp_path: Path) -> AsyncIterator[Hub]:
    """A hub with the shipped sweep and lease settings: the 60 s bound is proven at the defaults."""
    async with running_hub(tmp_path, at_defaults=True) as running:
        yield running


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


async def burst_with_fault(
    hub: Hub, receiver: Receiver, run: str, fault: Fault, *, at: float = 0.5, retry_5xx: bool = False
) -> dict[str, Any]:
    """Send the burst, start ``fault`` once ``at`` of it is answered, wait until all settled; check everything."""
    tenant = await setup_tenant(hub, receiver.url("/hook"))
    events = events_for(run, scaled(ORDERS), VERSIONS)
    platform = Platform(hub.base_url, tenant.connection_id, tenant.secret, retry_5xx=retry_5xx)
    fault_task: asyncio.Task[dict[str, Any]] | None = None
    fault_at = 0.0

    async def on_progress(done: int) -> None:
        nonlocal fault_task, fault_at
        if fault_task is None and done >= len(events) * at:
            fault_at = time.monotonic()
            fault_task = asyncio.create_task(fault(hub))

    started = time.monotonic()
    log = await platform.send_all(events, on_progress=on_progress)
    burst_over = time.monotonic()
    assert fault_task is not None
    fault_figures = await fault_task
    fault_over = time.monotonic()
    await wait_settled(hub, len(events), within=180)
    settled_at = time.monotonic()

    assert len(log.accepted) == len(events), f"only {len(log.accepted)} of {len(events)} accepted: {log.statuses}"
    await check_accepted_stored(hub, log)
    await check_orders(hub, events, tenant.organization_id)
    delivered = await check_subscriber(hub, receiver.requests("/hook"), tenant.organization_id)
    return {
        "ingests": len(events),
        "orders": scaled(ORDERS),
        "burst_seconds": round(burst_over - started, 2),
        "burst_rate_per_s": round(len(events) / (burst_over - started)),
        "statuses": {str(k): v for k, v in sorted(log.statuses.items())},
        "senders_saw_503_for_s": round((log.last_503_at or 0.0) - (log.first_503_at or 0.0), 2),
        # from the end of the fault (worker restarted, Redis/Postgres back) to everything processed and delivered
        "recovery_after_fault_s": round(settled_at - fault_over, 2),
        "fault_to_all_done_s": round(settled_at - fault_at, 2),
        "last_202_to_all_done_s": round(settled_at - burst_over, 2),
        **delivered,
        **fault_figures,
    }


async def test_baseline_burst_without_a_fault(hub: Hub, receiver: Receiver) -> None:
    """The same burst with nothing broken: the figures the faults are compared with."""

    async def nothing(hub: Hub) -> dict[str, Any]:
        return {}

    figures = await burst_with_fault(hub, receiver, "calm", nothing)
    assert figures["statuses"] == {"200": figures["ingests"]}
    record("baseline", **figures)


async def test_worker_sigkilled_mid_burst_loses_nothing(hub_at_defaults: Hub, receiver: Receiver) -> None:
    async def kill_and_restart(hub: Hub) -> dict[str, Any]:
        worker = next(p for p in hub.procs if p.name == "worker" and p.alive)
        code = await hub.signal(worker, signal.SIGKILL)
        killed = time.monotonic()
        await asyncio.sleep(2)  # the burst goes on with no worker at all
        await hub.start_worker()
        return {"exit_code": code, "down_s": round(time.monotonic() - killed, 2)}

    figures = await burst_with_fault(hub_at_defaults, receiver, "kill", kill_and_restart)
    assert figures["statuses"] == {"200": figures["ingests"]}, "a sender saw something other than 200"
    assert figures["exit_code"] == -signal.SIGKILL
    assert figures["recovery_after_fault_s"] < RECOVERY_BOUND
    record("worker_sigkill", **figures)


async def test_redis_flushed_mid_burst_loses_nothing(hub: Hub, receiver: Receiver) -> None:
    async def flush(hub: Hub) -> dict[str, Any]:
        await hub.flush_redis()
        return {}

    figures = await burst_with_fault(hub, receiver, "flush", flush)
    assert figures["statuses"] == {"200": figures["ingests"]}, "a sender saw something other than 200"
    assert figures["recovery_after_fault_s"] < RECOVERY_BOUND
    assert all(p.alive for p in hub.procs), "a process died of the flush"
    record("redis_flushall", **figures)


async def test_redis_restarted_mid_burst_loses_nothing(hub: Hub, receiver: Receiver) -> None:
    async def restart(hub: Hub) -> dict[str, Any]:
        away = hub.restart_redis()
        return {"redis_down_s": round(away, 2)}

    figures = await burst_with_fault(hub, receiver, "rrestart", restart)
    assert figures["statuses"] == {"200": figures["ingests"]}, "a sender saw something other than 200"
    assert figures["recovery_after_fault_s"] < RECOVERY_BOUND
    assert all(p.alive for p in hub.procs), "a process died when Redis restarted"
    record("redis_restart", **figures)


async def test_postgres_stopped_mid_burst_503_then_recovers_by_itself(hub: Hub, receiver: Receiver) -> None:
    async def outage(hub: Hub) -> dict[str, Any]:
        started = time.monotonic()
        await hub.stop_postgres()
        await asyncio.sleep(3)
        await hub.start_postgres()
        return {"postgres_down_s": round(time.monotonic() - started, 2)}

    figures = await burst_with_fault(hub, receiver, "pgdown", outage, at=0.3, retry_5xx=True)
    statuses = {int(k): v for k, v in figures["statuses"].items()}
    assert 503 in statuses, "Postgres was down but no sender saw 503"
    assert set(statuses) <= {200, 503}, f"senders saw {statuses}: only 200 and 503 are acceptable"
    assert all(p.alive for p in hub.procs), "a process died while Postgres was down"
    record("postgres_stop", **figures)

"""Graceful shutdown: SIGTERM to a worker hands its jobs back; SIGTERM to the API answers what is in flight."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults.checks import check_accepted_stored, check_orders, check_subscriber, record, wait_settled
from tests.faults.harness import Hub, running_hub, scaled
from tests.faults.platform import Platform, Subscriber, events_for, make_event, setup_tenant, sign
from tests.helpers.polling import eventually

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async with running_hub(tmp_path) as running:
        yield running


async def test_sigterm_to_a_worker_hands_back_its_jobs_and_nothing_is_stuck(hub: Hub) -> None:
    subscriber = Subscriber(delay=0.2)  # a slowish endpoint, so deliveries are in flight at SIGTERM
    await subscriber.start()
    try:
        tenant = await setup_tenant(hub, subscriber.url)
        events = events_for("term", scaled(200), 5)
        platform = Platform(hub.base_url, tenant.connection_id, tenant.secret)
        await platform.send_all(events)
        worker = next(p for p in hub.procs if p.name == "worker")

        async def delivering() -> bool:  # ingest and deliveries under way
            return bool(subscriber.received)

        await eventually(delivering, timeout=60, interval=0.01)
        in_flight = len(subscriber.received)
        sent_at = time.monotonic()
        code = await hub.signal(worker, signal.SIGTERM, wait=30)
        stop_s = time.monotonic() - sent_at
        restarted = time.monotonic()
        await hub.start_worker()
        await wait_settled(hub, len(events), within=120)
        settled = time.monotonic() - restarted

        assert code == 0, worker.tail()
        await check_accepted_stored(hub, platform.log)
        await check_orders(hub, events, tenant.organization_id)
        delivered = await check_subscriber(hub, subscriber.received, tenant.organization_id)
    finally:
        await subscriber.stop()
    assert in_flight < delivered["events"], "everything was delivered before SIGTERM: nothing was in flight"
    record(
        "worker_sigterm",
        exit_code=code,
        worker_stopped_in_s=round(stop_s, 2),
        delivered_before_sigterm=in_flight,
        all_done_after_restart_s=round(settled, 2),
        **delivered,
    )


async def test_sigterm_to_the_api_answers_requests_in_flight(hub: Hub) -> None:
    subscriber = Subscriber()
    await subscriber.start()
    try:
        await _sigterm_api_mid_requests(hub, subscriber)
    finally:
        await subscriber.stop()


async def _sigterm_api_mid_requests(hub: Hub, subscriber: Subscriber) -> None:
    tenant = await setup_tenant(hub, subscriber.url)
    assert hub.api is not None
    path = f"/hooks/generic/{tenant.connection_id}"
    events = [make_event("inflight", n, 0) for n in range(20)]
    connections = []
    for event in events:
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        headers = sign(tenant.secret, event.msg_id, event.body)
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(event.body)}\r\n"
        head += "Expect: 100-continue\r\n"  # the server's "100 Continue" says the request is being handled
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode())
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        writer.write(event.body[: len(event.body) // 2])  # half the body: its handler now waits for the rest
        await writer.drain()
        connections.append((reader, writer))

    # A burst of complete requests is under way too when SIGTERM lands (those after it are refused).
    burst = Platform(hub.base_url, tenant.connection_id, tenant.secret)
    burst.give_up_after = 0  # a refused connection after SIGTERM is not retried here
    burst_task = asyncio.create_task(burst.send_all([make_event("burst", n, 0) for n in range(scaled(3000))]))

    async def bursting() -> bool:
        return bool(burst.log.accepted)

    await eventually(bursting, timeout=30, interval=0.01)
    sent_at = time.monotonic()
    await hub.signal(hub.api, signal.SIGTERM, wait=None)

    async def stopped_listening() -> bool:  # the API's shutdown has begun: new connections are refused
        try:
            _, probe = await asyncio.open_connection("127.0.0.1", hub.port)
        except OSError:
            return True
        probe.close()
        return False

    await eventually(stopped_listening, timeout=30, interval=0.01)
    for (_, writer), event in zip(connections, events, strict=True):
        writer.write(event.body[len(event.body) // 2 :])
        await writer.drain()
    answers = []
    for reader, writer in connections:
        raw = await asyncio.wait_for(reader.read(), 30)  # the server closes after answering
        writer.close()
        status_line, _, rest = raw.partition(b"\r\n")
        answers.append((status_line.decode(), rest))
    await burst_task
    code = await hub.wait_exit(hub.api, 40)
    stopped = time.monotonic() - sent_at

    statuses = Counter(line for line, _ in answers)
    assert statuses == Counter({"HTTP/1.1 200 OK": len(events)}), statuses
    assert code == 0, hub.api.tail()
    ids = [json.loads(rest.partition(b"\r\n\r\n")[2])["data"]["id"] for _, rest in answers]
    for event, ie_id in zip(events, ids, strict=True):
        burst.log.accepted[event.msg_id] = ie_id
    assert set(burst.log.statuses) <= {0, 200}, f"a request got {burst.log.statuses} while the API stopped"
    await wait_settled(hub, len(burst.log.accepted), within=60)
    await check_accepted_stored(hub, burst.log)
    record(
        "api_sigterm",
        in_flight_answered=len(events),
        burst_statuses={str(k): v for k, v in sorted(burst.log.statuses.items())},
        api_stopped_in_s=round(stopped, 2),
        exit_code=code,
    )

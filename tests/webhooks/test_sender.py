"""The sender connects only to addresses the SSRF policy checked, at delivery time, and follows nothing."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from arq.connections import ArqRedis

from hub.delivery.sender import Sender
from hub.delivery.targets import TargetPolicy
from hub.settings import Settings
from tests.conftest import eventually
from tests.fakes.receiver import Receiver
from tests.webhooks.conftest import Client, attempts, create_webhook, emit, org_of, running_worker, statuses

LOOPBACK_OK = TargetPolicy(allow_loopback=True)
BODY = b'{"id":"evt_1"}'


class FakeDns:
    """A resolver that answers every name with fixed addresses and remembers what it was asked."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        return self.addresses


async def test_a_name_is_dialled_at_the_address_that_was_checked(receiver: Receiver) -> None:
    dns = FakeDns("127.0.0.1")
    sender = Sender(timeout=3, policy=LOOPBACK_OK, resolver=dns)
    try:
        outcome = await sender.send(receiver.url("/named", host="hooks.merchant.test"), BODY, {"x-test": "1"})
    finally:
        await sender.close()
    assert outcome.succeeded, outcome
    [request] = receiver.requests("/named")
    assert request.headers["host"] == f"hooks.merchant.test:{receiver.port}"
    assert request.body == BODY
    assert dns.calls == ["hooks.merchant.test"]


async def test_any_forbidden_address_among_the_records_refuses_the_delivery(receiver: Receiver) -> None:
    for addresses, reason in (
        (("127.0.0.1", "10.0.0.8"), "private address"),
        (("169.254.169.254",), "cloud metadata address"),
        (("fe80::1",), "link-local address"),
        (("::ffff:192.168.0.1",), "private address"),
    ):
        sender = Sender(timeout=3, policy=LOOPBACK_OK, resolver=FakeDns(*addresses))
        try:
            outcome = await sender.send(receiver.url("/rebound", host="hooks.merchant.test"), BODY, {})
        finally:
            await sender.close()
        assert not outcome.succeeded
        assert outcome.status_code is None
        assert outcome.error is not None
        assert outcome.error.startswith("refused")
        assert reason in outcome.error
    assert receiver.requests("/rebound") == []


async def test_dns_that_changes_after_registration_is_caught_at_delivery(receiver: Receiver) -> None:
    # Registration-time check passed (it resolved to loopback, allowed here); now the name points inside.
    sender = Sender(timeout=3, policy=LOOPBACK_OK, resolver=FakeDns("127.0.0.1"))
    try:
        assert (await sender.send(receiver.url("/dns", host="hooks.merchant.test"), BODY, {})).succeeded
    finally:
        await sender.close()
    sender = Sender(timeout=3, policy=LOOPBACK_OK, resolver=FakeDns("10.20.30.40"))
    try:
        outcome = await sender.send(receiver.url("/dns", host="hooks.merchant.test"), BODY, {})
    finally:
        await sender.close()
    assert outcome.error is not None
    assert "10.20.30.40: private address" in outcome.error
    assert len(receiver.requests("/dns")) == 1


async def test_ip_literals_are_checked_without_a_resolver(receiver: Receiver) -> None:
    sender = Sender(timeout=3, policy=TargetPolicy(allow_loopback=False))
    try:
        outcome = await sender.send(receiver.url("/literal"), BODY, {})
    finally:
        await sender.close()
    assert outcome.error == "refused: 127.0.0.1 is a loopback address"
    assert receiver.requests("/literal") == []


async def test_the_worker_refuses_loopback_when_it_is_not_allowed(
    client: Client,
    auth: dict[str, str],
    settings: Settings,
    receiver: Receiver,
    pool: asyncpg.Pool,
    arq_redis: ArqRedis,
) -> None:
    # Registered while loopback was allowed; the worker runs with production's policy.
    endpoint = await create_webhook(client, auth, receiver.url("/internal"))
    strict = settings.model_copy(update={"webhook_allow_loopback": False, "webhook_retry_schedule": (0, 0)})
    async with running_worker(strict):
        [delivery_id] = await emit(pool, arq_redis, await org_of(pool, endpoint["id"]), "order.created")
        await eventually(lambda: _failed(pool, endpoint["id"]))
    tries = await attempts(pool, delivery_id)
    assert len(tries) == 2
    assert all(t["error"] == "refused: 127.0.0.1 is a loopback address" for t in tries)
    assert receiver.requests("/internal") == []


async def _failed(pool: asyncpg.Pool, endpoint_id: str) -> bool:
    return await statuses(pool, endpoint_id) == ["failed"]

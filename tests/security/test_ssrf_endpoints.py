"""SSRF: merchant endpoint URLs aimed at the hub's own network are refused, by address, by name and by redirect.

Registration (``POST`` / ``PUT /api/v1/webhooks``) answers 422 naming ``url`` for private, loopback
(unless allowed), link-local and cloud-metadata targets, written as literals, in IPv4 tricks, or as
DNS names that resolve there (``localhost`` and this machine's own name resolve locally; other names
go through the service's injectable resolver). A receiver answering a redirect to the metadata
address is a failed attempt whose ``Location`` is recorded and never followed.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub import db as hub_db
from hub.app import create_app
from hub.delivery import endpoints as svc
from hub.delivery.targets import TargetPolicy
from hub.errors import ValidationFailed
from hub.settings import Settings
from tests.fakes.receiver import Receiver, redirect
from tests.helpers.polling import eventually

Client = TestClient[Any, Any]

REFUSED = [
    # loopback, also in disguise
    "http://127.0.0.1/hook",
    "http://127.1.2.3:8080/hook",
    "http://[::1]/hook",
    "http://2130706433/hook",
    "http://0x7f.1/hook",
    "http://0177.0.0.1/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://localhost/hook",
    "http://localhost./hook",
    "http://LOCALHOST:9000/hook",
    # private networks
    "http://10.0.0.5/hook",
    "http://172.16.3.4/hook",
    "http://192.168.1.1/hook",
    "http://[fd12:3456::1]/hook",
    "http://100.64.0.1/hook",
    # link-local and cloud metadata
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.170.2/v2/credentials",
    "http://169.254.10.1/hook",
    "http://[fe80::1]/hook",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://100.100.100.200/latest/meta-data/",
    # nothing at all
    "http://0.0.0.0/hook",
    "http://[::]/hook",
]


@pytest.fixture
async def strict(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[Client]:
    """The app as production runs it: loopback and private targets not allowed."""
    production = settings.model_copy(update={"webhook_allow_loopback": False, "webhook_allow_private": False})
    async with TestClient(TestServer(create_app(production), host="127.0.0.1")) as test_client:
        yield test_client


@pytest.mark.parametrize("url", [*REFUSED, f"http://{socket.gethostname()}/hook"])
async def test_registration_refuses_internal_targets(strict: Client, auth: dict[str, str], url: str) -> None:
    resp = await strict.post("/api/v1/webhooks", json={"url": url, "event_types": ["order.*"]}, headers=auth)
    body = await resp.json()
    if url.endswith(f"//{socket.gethostname()}/hook") and resp.status == 201:  # pragma: no cover - a public hostname
        pytest.skip("this machine's name resolves to a public address")
    assert resp.status == 422, body
    assert set(body["details"]) == {"url"}, body


async def test_an_update_cannot_move_an_endpoint_inside(strict: Client, auth: dict[str, str]) -> None:
    created = await strict.post(
        "/api/v1/webhooks", json={"url": "https://93.184.215.14/hook", "event_types": ["order.*"]}, headers=auth
    )
    assert created.status == 201, await created.text()
    endpoint = (await created.json())["data"]
    for url in ("http://169.254.169.254/", "http://localhost/", "http://10.1.1.1/"):
        resp = await strict.put(f"/api/v1/webhooks/{endpoint['id']}", json={"url": url}, headers=auth)
        assert resp.status == 422
        assert "url" in (await resp.json())["details"]
    got = await strict.get(f"/api/v1/webhooks/{endpoint['id']}", headers=auth)
    assert (await got.json())["data"]["url"] == "https://93.184.215.14/hook"


def _resolver(answers: Sequence[str]) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        return list(answers)

    return resolve


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["10.20.30.40"], "private"),
        (["169.254.169.254"], "metadata"),
        (["fd00:ec2::254"], "metadata"),
        (["93.184.215.14", "192.168.0.10"], "private"),  # one bad record is enough
        (["::ffff:10.0.0.1"], "private"),
        (["127.0.0.1"], "loopback"),
    ],
)
async def test_names_resolving_inside_are_refused_at_registration(
    settings: Settings, db: asyncpg.Connection, answers: list[str], reason: str
) -> None:
    engine = hub_db.create_engine(settings.database_url or "", pool_size=1)
    try:
        async with hub_db.session_scope(hub_db.session_factory(engine)) as session:
            with pytest.raises(ValidationFailed) as refused:
                await svc.create_webhook(
                    session,
                    organization_id="org_nobody",
                    data=svc.WebhookCreate(url="https://hooks.merchant.example/in", event_types=["order.*"]),
                    policy=TargetPolicy(allow_loopback=False, allow_private=False),
                    resolver=_resolver(answers),
                )
    finally:
        await engine.dispose()
    assert set(refused.value.details) == {"url"}
    assert reason in refused.value.details["url"]


async def test_a_redirect_to_the_metadata_address_is_a_failed_attempt_never_followed(
    client: Client, auth: dict[str, str], db: asyncpg.Connection, worker: Any
) -> None:
    async with Receiver() as receiver:
        receiver.always("/to-metadata", redirect("http://169.254.169.254/latest/meta-data/iam/", 302))
        receiver.always("/to-trap", redirect(receiver.url("/trap"), 307))
        for path in ("/to-metadata", "/to-trap"):
            created = await client.post(
                "/api/v1/webhooks", json={"url": receiver.url(path), "event_types": ["order.*"]}, headers=auth
            )
            assert created.status == 201, await created.text()
            endpoint = (await created.json())["data"]
            sent = await client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=auth)
            assert sent.status == 202, await sent.text()
            delivery_id = (await sent.json())["data"]["id"]

            async def first_attempt(delivery_id: str = delivery_id) -> Any:
                return await db.fetchrow(
                    "SELECT status_code, succeeded, error FROM delivery_attempts WHERE delivery_id = $1", delivery_id
                )

            attempt = await eventually(first_attempt)
            assert attempt["succeeded"] is False
            assert attempt["status_code"] in (302, 307)
            assert "redirect not followed" in attempt["error"]
        assert receiver.requests("/trap") == []
        assert "169.254.169.254" in (
            await db.fetchval("SELECT error FROM delivery_attempts WHERE status_code = 302 LIMIT 1")
        )

"""Test data made through the hub's own services, never raw ``INSERT``s copied into test files.

Each factory opens a short session on the run's database (as ``hub keys create`` does), calls the
service the API calls, commits, and returns the ids and secrets a test needs. ``signed_headers``
builds the headers each source's platform signs an inbound webhook with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.settings import Settings

#: Sources whose signing secret the platform issues (the hub cannot generate one for them).
PLATFORM_ISSUED_SECRETS = frozenset({"salla", "shopify"})


@dataclass(frozen=True, slots=True)
class Org:
    """An organization and a live API key for it."""

    id: str
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass(frozen=True, slots=True)
class Made:
    """A created row's id and its secret (a connection's inbound secret, an endpoint's signing secret)."""

    id: str
    secret: str


@asynccontextmanager
async def session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """A committed-on-success session on the run's database, on an engine of its own."""
    from hub import db as hub_db

    assert settings.database_url is not None
    engine = hub_db.create_engine(settings.database_url, pool_size=1)
    try:
        async with hub_db.session_scope(hub_db.session_factory(engine)) as scoped:
            yield scoped
    finally:
        await engine.dispose()


async def make_org(settings: Settings, *, name: str = "acme", test: bool = False) -> Org:
    """A new API key for organization ``name`` (created if new), as ``hub keys create`` makes it."""
    from hub.tenancy.api_keys import create_key

    async with session(settings) as scoped:
        new = await create_key(scoped, org_name=name, test=test)
    return Org(id=new.organization_id, key=new.secret)


async def make_key(settings: Settings, *, org: str = "acme", test: bool = False) -> str:
    """A new API key (and its organization) through the service; the key itself."""
    return (await make_org(settings, name=org, test=test)).key


async def make_connection(
    settings: Settings,
    *,
    organization_id: str,
    source: str = "salla",
    name: str = "test",
    secret: str | None = None,
    config: dict[str, Any] | None = None,
) -> Made:
    """A connection through ``create_connection`` (the service's rules apply: a bad ``config`` is refused).

    Salla and Shopify issue their own signing secret, so one is made up for them when none is given;
    the other sources get the one the service generates.
    """
    from hub.platforms.connections import ConnectionCreate, create_connection

    if secret is None and source in PLATFORM_ISSUED_SECRETS:
        secret = f"{source}-secret-{secrets.token_hex(8)}"
    data = ConnectionCreate(source=source, name=name, secret=secret, settings=config or {})
    async with session(settings) as scoped:
        row = await create_connection(scoped, organization_id=organization_id, data=data)
    return Made(id=row.id, secret=row.secret or "")


async def make_endpoint(
    settings: Settings,
    *,
    organization_id: str,
    url: str = "http://127.0.0.1:9/hook",
    event_types: Sequence[str] = ("order.*",),
    source: str | None = None,
    enabled: bool = True,
) -> Made:
    """A webhook endpoint through ``create_webhook`` (loopback URLs allowed, as the test settings say)."""
    from hub.delivery.endpoints import WebhookCreate, create_webhook
    from hub.delivery.targets import TargetPolicy

    data = WebhookCreate.model_validate(
        {"url": url, "event_types": list(event_types), "source": source, "enabled": enabled}
    )
    policy = TargetPolicy(allow_loopback=settings.webhook_allow_loopback, allow_private=settings.webhook_allow_private)
    async with session(settings) as scoped:
        row = await create_webhook(scoped, organization_id=organization_id, data=data, policy=policy)
    return Made(id=row.id, secret=row.secret)


def _hmac(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def standard_webhook_headers(secret: str, msg_id: str, body: bytes, *, at: datetime | None = None) -> dict[str, str]:
    """Standard Webhooks headers (``generic`` and ``chat_agent``): ``whsec_`` secret, ``v1,`` signature."""
    ts = str(int(time.time() if at is None else at.timestamp()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
        "content-type": "application/json",
    }


def signed_headers(source: str, body: bytes, secret: str, *, msg_id: str = "msg_1", **extra: str) -> dict[str, str]:
    """The headers ``source``'s platform sends ``body`` with, signed with the connection's ``secret``.

    Zid signs nothing: its token rides in the inbound URL (``?token=``), so only the JSON type is set.
    """
    json_type = {"Content-Type": "application/json"}
    if source == "salla":
        signature = _hmac(secret, body).hex()
        headers = {"X-Salla-Signature": signature, "X-Salla-Security-Strategy": "Signature", **json_type}
    elif source == "shopify":
        headers = {"X-Shopify-Hmac-Sha256": base64.b64encode(_hmac(secret, body)).decode(), **json_type}
    elif source == "woocommerce":
        headers = {"X-WC-Webhook-Signature": base64.b64encode(_hmac(secret, body)).decode(), **json_type}
    elif source in ("generic", "chat_agent"):
        headers = standard_webhook_headers(secret, msg_id, body, at=datetime.now(UTC))
    elif source == "zid":
        headers = dict(json_type)
    else:
        raise ValueError(f"no signing rule for source {source!r}")
    return {**headers, **extra}

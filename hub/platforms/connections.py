"""Connections: an organization's link to one source, with the secret that source signs with.

A connection's secret is shown once, when it is created, and never again: it is what proves a
platform's request authentic (Salla, Shopify, WooCommerce HMAC keys; the Standard Webhooks secret of
the chat agent and ``generic``; Zid's URL token). Source ``settings`` are free-form per source;
platform credentials in them (``hub.platforms.registry``: Shopify, WooCommerce, Salla, Zid, the chat
agent) enable pull sync (``pull``), are checked whole (a token without its shop → 422 naming the
field) and are masked in every view.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

import connectors
from connectors._standard_webhooks import secret_key as standard_webhooks_key
from connectors.base import SignatureError
from hub import ssrf
from hub.delivery import signing
from hub.errors import NotFound
from hub.ids import new_id
from hub.models import Connection
from hub.platforms import registry
from hub.platforms.sync_state import SubscriptionOut, SyncOut, sync_out

#: Sources the hub knows by name, whether or not their connector module is loaded in this build.
KNOWN_SOURCES = frozenset({"salla", "zid", "shopify", "woocommerce", "chat_agent", "generic"})
#: Sources whose senders verify with Standard Webhooks (``whsec_`` secrets we can generate).
STANDARD_WEBHOOK_SOURCES = frozenset({"chat_agent", "generic"})
#: Zid's only authentication is the token in the URL, so a guessable one is refused.
MIN_TOKEN_LENGTH = 16
MAX_SETTINGS_BYTES = 16_384
# Settings keys whose values are credentials: shown masked, never in full.
_SENSITIVE_KEY = re.compile(r"key|secret|token|password|authorization", re.IGNORECASE)


def allowed_sources() -> frozenset[str]:
    """Source names a connection may use: every registered connector plus the known names."""
    return KNOWN_SOURCES | frozenset(connectors.REGISTRY)


class ConnectionCreate(BaseModel):
    """Body of ``POST /api/v1/connections``.

    Rules that depend on the source read ``source`` from the already-validated fields (declared
    first), so every 422 names the field at fault.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source: str = Field(min_length=1, max_length=50)
    name: str = Field(min_length=1, max_length=200)
    secret: str | None = Field(default=None, min_length=1, max_length=512, validate_default=True)
    settings: dict[str, Any] = Field(default_factory=dict, validate_default=True)

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value not in allowed_sources():
            raise _invalid(f"unknown source; expected one of: {', '.join(sorted(allowed_sources()))}")
        return value

    @field_validator("secret")
    @classmethod
    def _secret_for_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        source = info.data.get("source")
        if source is None:  # already reported under `source`
            return value
        if value is None:
            if source in {"salla", "shopify"}:
                raise _invalid(f"required for {source} (the signing secret the platform issues)")
            return None
        if source == "zid" and len(value) < MIN_TOKEN_LENGTH:
            raise _invalid(f"a zid token is its only proof of origin; use at least {MIN_TOKEN_LENGTH} characters")
        if source in STANDARD_WEBHOOK_SOURCES:
            # The very derivation the connector verifies with, so a secret accepted here can verify.
            try:
                standard_webhooks_key(value)
            except SignatureError as exc:
                raise _invalid("expected a Standard Webhooks secret, whsec_<base64>") from exc
        return value

    @field_validator("settings")
    @classmethod
    def _settings_for_source(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if len(orjson.dumps(value)) > MAX_SETTINGS_BYTES:
            raise _invalid(f"at most {MAX_SETTINGS_BYTES} bytes of JSON")
        source = info.data.get("source")
        if source == "chat_agent":
            return _chat_agent_settings(value)
        errors = registry.settings_errors(source, value) if isinstance(source, str) else {}
        if errors:
            raise _invalid("; ".join(f"{name}: {why}" for name, why in sorted(errors.items())))
        return value


def _invalid(message: str) -> PydanticCustomError:
    # A custom error keeps the message as written (a plain ValueError gets a "Value error, " prefix).
    return PydanticCustomError("value_error", message)


def _chat_agent_settings(settings: dict[str, Any]) -> dict[str, Any]:
    base_url = settings.get("base_url")
    api_key = settings.get("api_key")
    if base_url is None:
        if api_key is not None:
            raise _invalid("base_url: required with api_key (pull sync needs both)")
        return settings
    if not isinstance(base_url, str):
        raise _invalid("base_url: expected an http(s) URL")
    try:
        normalized = ssrf.validate_url(base_url)
    except ssrf.UnsafeUrlError as exc:
        raise _invalid(f"base_url: {exc.reason}") from exc
    if not isinstance(api_key, str) or not api_key.strip():
        raise _invalid("api_key: required with base_url (the remote's Bearer key)")
    # Paths are joined onto the base URL, so a trailing slash would double up.
    return {**settings, "base_url": normalized.rstrip("/"), "api_key": api_key.strip()}


class ConnectionOut(BaseModel):
    """A connection as the API returns it; ``secret`` only in the answer to its creation."""

    id: str
    source: str
    name: str
    settings: dict[str, Any]
    inbound_url: str
    last_synced_at: datetime | None
    created: datetime
    sync: SyncOut
    subscriptions: list[SubscriptionOut]
    secret: str | None = None


def mask(value: Any) -> str:
    """``sk_live_••••1234``: enough to recognise a credential, not enough to use it."""
    text = str(value)
    if len(text) < 12:
        return "••••"
    # Only a short type prefix (``sk_live_``) is kept; an underscore deeper in is part of the key.
    prefix = text[: text[:10].rfind("_") + 1]
    return f"{prefix}••••{text[-4:]}"


def public_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings with every credential-like value masked."""
    return {k: mask(v) if _SENSITIVE_KEY.search(k) and v is not None else v for k, v in settings.items()}


def inbound_url(connection: Connection, *, base_url: str, with_token: bool) -> str:
    """Where the platform posts: ``{base}/hooks/{source}/{id}``, plus ``?token=`` for Zid at creation.

    Zid's token is its secret, so like every secret it appears only in the creation answer.
    """
    url = f"{base_url.rstrip('/')}/hooks/{connection.source}/{connection.id}"
    if connection.source == "zid" and with_token:
        url += "?token=" + quote(connection.secret, safe="")
    return url


def connection_out(connection: Connection, *, base_url: str, reveal_secret: bool = False) -> ConnectionOut:
    """The public view of a connection row."""
    return ConnectionOut(
        id=connection.id,
        source=connection.source,
        name=connection.name,
        settings=public_settings(connection.settings),
        inbound_url=inbound_url(connection, base_url=base_url, with_token=reveal_secret),
        last_synced_at=connection.last_synced_at,
        created=connection.created,
        sync=sync_out(connection.sync, pull=connection.pull),
        subscriptions=[SubscriptionOut.model_validate(s) for s in connection.subscriptions],
        secret=connection.secret if reveal_secret else None,
    )


def _new_secret(source: str) -> str:
    if source in STANDARD_WEBHOOK_SOURCES:
        return signing.new_secret()
    # Zid's URL token, and WooCommerce's secret the merchant pastes into its webhook form.
    return secrets.token_urlsafe(24)


async def create_connection(session: AsyncSession, *, organization_id: str, data: ConnectionCreate) -> Connection:
    """Store a new connection, generating its secret when the source lets us choose one."""
    connection = Connection(
        id=new_id("conn"),
        organization_id=organization_id,
        source=data.source,
        name=data.name,
        secret=data.secret or _new_secret(data.source),
        settings=data.settings,
        pull=registry.can_pull(data.source, data.settings),
    )
    session.add(connection)
    await session.flush()
    return connection


async def get_connection(session: AsyncSession, *, organization_id: str, connection_id: str) -> Connection:
    """The organization's live connection, or 404 (also for another organization's or a deleted one)."""
    connection = await session.get(Connection, connection_id)
    if connection is None or connection.organization_id != organization_id or connection.deleted_at is not None:
        raise NotFound("Connection not found", details={"id": connection_id})
    return connection


async def list_connections(
    session: AsyncSession, *, organization_id: str, offset: int, limit: int, source: str | None = None
) -> tuple[list[Connection], int]:
    """A page of live connections (newest first) and the total."""
    where = [col(Connection.organization_id) == organization_id, col(Connection.deleted_at).is_(None)]
    if source:
        where.append(col(Connection.source) == source)
    total = (await session.execute(select(func.count()).select_from(Connection).where(*where))).scalar_one()
    rows = await session.execute(
        select(Connection)
        .where(*where)
        .order_by(col(Connection.created).desc(), col(Connection.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows.scalars()), total


async def delete_connection(session: AsyncSession, *, organization_id: str, connection_id: str) -> Connection:
    """Soft-delete: its inbound URL stops answering, its past events and orders stay."""
    connection = await get_connection(session, organization_id=organization_id, connection_id=connection_id)
    connection.deleted_at = datetime.now(UTC)
    session.add(connection)
    await session.flush()
    return connection

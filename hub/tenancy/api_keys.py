"""Organizations and API keys: keys are shown once, stored as SHA-256, and map to one organization.

A ``sk_test_`` key maps to the organization's test twin, so test data never mixes with live data.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.ids import new_id
from hub.keys import Principal
from hub.models import ApiKey, Organization

KEY_PREFIXES = {"live": "sk_live_", "test": "sk_test_"}


def hash_key(key: str) -> str:
    """The stored form of a key (keys are 256-bit random, so a plain SHA-256 is enough)."""
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(key: str) -> bool:
    """Cheap shape check before any database round trip."""
    return any(key.startswith(p) for p in KEY_PREFIXES.values()) and 20 <= len(key) <= 200


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly made key: ``secret`` is shown once and never stored."""

    id: str
    organization_id: str
    organization_name: str
    mode: str
    secret: str


async def get_or_create_org(session: AsyncSession, *, name: str, test: bool, currency: str = "SAR") -> Organization:
    """The organization named ``name`` (its test twin when ``test``), created if missing."""
    live = (
        await session.execute(
            select(Organization).where(col(Organization.name) == name, col(Organization.is_test).is_(False))
        )
    ).scalar_one_or_none()
    if live is None:
        live = Organization(id=new_id("org"), name=name, is_test=False, default_currency=currency)
        session.add(live)
        await session.flush()
    if not test:
        return live
    twin = (
        await session.execute(
            select(Organization).where(col(Organization.live_id) == live.id, col(Organization.is_test).is_(True))
        )
    ).scalar_one_or_none()
    if twin is None:
        twin = Organization(id=new_id("org"), name=name, is_test=True, live_id=live.id, default_currency=currency)
        session.add(twin)
        await session.flush()
    return twin


async def create_key(session: AsyncSession, *, org_name: str, test: bool = False, name: str | None = None) -> NewKey:
    """Create (if needed) the organization and a new key for it."""
    org = await get_or_create_org(session, name=org_name, test=test)
    mode = "test" if test else "live"
    secret = KEY_PREFIXES[mode] + secrets.token_urlsafe(32)
    key = ApiKey(
        id=new_id("key"), organization_id=org.id, key_hash=hash_key(secret), prefix=secret[:12], mode=mode, name=name
    )
    session.add(key)
    await session.flush()
    return NewKey(id=key.id, organization_id=org.id, organization_name=org_name, mode=mode, secret=secret)


async def list_keys(session: AsyncSession) -> list[tuple[ApiKey, Organization]]:
    """Every key with its organization, newest first."""
    rows = await session.execute(
        select(ApiKey, Organization)
        .join(Organization, col(Organization.id) == col(ApiKey.organization_id))
        .order_by(col(ApiKey.created).desc())
    )
    return [(k, o) for k, o in rows.tuples()]


async def revoke_key(session: AsyncSession, *, key_id: str) -> bool:
    """Revoke a key; False when no active key has that id."""
    result = await session.execute(
        update(ApiKey)
        .where(col(ApiKey.id) == key_id, col(ApiKey.revoked_at).is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def authenticate(pool: asyncpg.Pool, *, key: str) -> Principal | None:
    """The principal for an active key, or None (one indexed lookup on the key's hash)."""
    if not looks_like_key(key):
        return None
    row = await pool.fetchrow(
        "SELECT id, organization_id, mode FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", hash_key(key)
    )
    if row is None:
        return None
    return Principal(organization_id=row["organization_id"], key_id=row["id"], mode=row["mode"])

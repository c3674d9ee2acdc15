"""A connection as the pull-sync engine needs it, loaded only when it can be pulled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.db import Conn
from hub.platforms import registry
from hub.platforms.chat_remote import SyncNotPossible


@dataclass(frozen=True, slots=True)
class Target:
    """A connection as the engine needs it."""

    id: str
    organization_id: str
    source: str
    name: str
    secret: str
    settings: dict[str, Any]
    sync: dict[str, Any]
    subscriptions: list[dict[str, Any]]
    default_currency: str
    last_synced_at: datetime | None = None


async def load_target(conn: Conn, connection_id: str) -> Target:
    """The connection, if it can be pulled; SyncNotPossible otherwise."""
    row = await conn.fetchrow(
        "SELECT c.*, o.default_currency FROM connections c JOIN organizations o ON o.id = c.organization_id "
        "WHERE c.id = $1",
        connection_id,
    )
    if row is None or row["deleted_at"] is not None:
        raise SyncNotPossible(f"no connection {connection_id}")
    settings = dict(row["settings"] or {})
    if not registry.can_pull(row["source"], settings):
        raise SyncNotPossible(f"connection {connection_id} has no platform credentials in its settings")
    return Target(
        id=row["id"],
        organization_id=row["organization_id"],
        source=row["source"],
        name=row["name"],
        secret=row["secret"],
        settings=settings,
        sync=dict(row["sync"] or {}),
        subscriptions=list(row["subscriptions"] or []),
        default_currency=row["default_currency"],
        last_synced_at=row["last_synced_at"],
    )

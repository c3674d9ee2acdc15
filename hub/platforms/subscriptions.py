"""The hub's webhook subscriptions at a platform: make sure each topic points at the connection.

The address is the connection's ``inbound_url`` built from ``HUB_PUBLIC_URL`` (Zid's with its token);
without that setting the hub cannot tell the platform where it is, so it subscribes nothing and says so
in the connection's state rather than guessing a host. A subscription the platform removed (Shopify
deletes one after failed deliveries, WooCommerce disables one) is created again and marked
``recreated``, which the log and the connection's ``subscriptions`` show.
"""

from __future__ import annotations

from typing import Any

import structlog

from hub.db import Conn
from hub.models import Connection
from hub.platforms import sync_state
from hub.platforms.chat_remote import AuthRevoked, RemoteError
from hub.platforms.connections import inbound_url
from hub.platforms.pull import PlatformClient
from hub.platforms.targets import Target

log = structlog.get_logger("hub.platform_sync")

NO_PUBLIC_URL = "HUB_PUBLIC_URL is not set: the hub cannot tell the platform where to send webhooks"


def address_of(target: Target, public_url: str) -> str:
    """The URL the platform posts to."""
    connection = Connection(
        id=target.id,
        organization_id=target.organization_id,
        source=target.source,
        name=target.name,
        secret=target.secret,
    )
    return inbound_url(connection, base_url=public_url, with_token=True)


def _same(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


async def ensure(conn: Conn, target: Target, client: PlatformClient, *, public_url: str | None) -> list[dict[str, Any]]:
    """Create the subscriptions that are missing; store and return the list."""
    if not client.topics:
        return []
    if not public_url:
        pending = [{"topic": t, "platform_id": None, "status": "not_subscribed"} for t in client.topics]
        await sync_state.set_subscriptions(conn, target.id, pending, error=NO_PUBLIC_URL)
        return pending
    address = address_of(target, public_url)
    existing = {w.topic: w for w in await client.list_webhooks() if _same(w.address, address)}
    had = {s.get("topic") for s in target.subscriptions if s.get("platform_id")}
    subs: list[dict[str, Any]] = []
    failures: list[str] = []
    for topic in client.topics:
        found = existing.get(topic)
        if found is not None:
            subs.append({"topic": topic, "platform_id": found.platform_id, "status": "active"})
            continue
        try:
            made = await client.create_webhook(topic=topic, address=address)
        except AuthRevoked:
            raise
        except RemoteError as exc:  # one topic refused (e.g. not offered to this app): the others still count
            failures.append(f"{topic}: {exc}")
            subs.append({"topic": topic, "platform_id": None, "status": "failed"})
            continue
        status = "recreated" if topic in had else "created"
        if status == "recreated":
            log.warning("platform_subscription_recreated", connection_id=target.id, source=target.source, topic=topic)
        subs.append({"topic": topic, "platform_id": made.platform_id, "status": status})
    error = ("subscribing failed: " + "; ".join(failures))[:1000] if failures else None
    await sync_state.set_subscriptions(conn, target.id, subs, error=error)
    return subs

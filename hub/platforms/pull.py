"""What a platform pull client is: the one interface the sync engine (``hub.platforms.sync``) drives.

One module per platform (``shopify``, ``woocommerce``, ``salla``, ``zid``) implements
:class:`PlatformClient` against the platform's documented REST API, and is the only code that talks
to that platform. A client makes requests and reads answers; it never writes to the database, and it
normalizes nothing itself (``normalize`` delegates to the pure connector in ``connectors/``).

Errors (the tree lives in ``hub.platforms.chat_remote``; clients raise only these):

- ``TransientRemoteError(retry_after=…)``: 429, 5xx, network error, timeout. The engine waits
  (``Retry-After`` first) and asks again, a bounded number of times.
- ``AuthRevoked``: 401/403: the token was revoked or the app uninstalled; the connection goes to
  ``needs_attention`` with the platform's reason, and nothing is retried until its credentials change.
- ``PermanentRemoteError``: any other answer that asking again will not fix (404, a body that is not
  what the docs say).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from connectors.base import NormalizedOrder

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class OrdersPage:
    """One page of the platform's order list.

    ``orders`` are the platform's own order objects, as its API returns them (what ``normalize``
    reads). ``next_cursor`` is opaque to the engine (a Shopify ``page_info``, a WooCommerce page
    number, …); None when this page was the last. ``total`` is how many orders the platform says
    match, when it says (progress bars only).
    """

    orders: list[dict[str, Any]]
    next_cursor: str | None
    total: int | None = None


@dataclass(frozen=True, slots=True)
class RemoteWebhook:
    """A webhook subscription as the platform lists it."""

    topic: str
    platform_id: str
    address: str


@dataclass(frozen=True, slots=True)
class InboundForm:
    """A pulled order written as the platform's own webhook would carry it, so a failed one is kept as an
    inbound event that the connector parses again when it is retried (after a fix)."""

    topic: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes


class PlatformClient(Protocol):
    """A platform's REST API, as far as the hub needs it."""

    source: str
    #: The platform's own topic names the hub subscribes to (at least order created and updated).
    topics: tuple[str, ...]

    async def fetch_orders(self, *, since: datetime, cursor: str | None) -> OrdersPage:
        """The page after ``cursor`` (None: the first) of orders changed since ``since``, oldest first
        where the platform can sort; includes every status (cancelled, refunded, …)."""

    async def list_webhooks(self) -> list[RemoteWebhook]:
        """The webhook subscriptions the platform holds for this store/app."""

    async def create_webhook(self, *, topic: str, address: str) -> RemoteWebhook:
        """Subscribe ``address`` to ``topic``; for platforms that sign with a per-webhook secret, the
        connection's secret is that secret (so its webhooks verify with the connection)."""

    def normalize(self, order: Mapping[str, Any]) -> NormalizedOrder:
        """The platform's order object in the unified model (pure; raises ``ConnectorError``)."""

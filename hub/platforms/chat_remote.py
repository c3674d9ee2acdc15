"""The remote side of the chat-agent pull: one page of seed 000's order list, its errors, retrying it.

Pure: the HTTP request itself is made by ``hub.platforms.chat_client`` (the only aiohttp user), which turns
each answer into a :class:`RemotePage` or one of the errors below.

Error tree::

    SyncError                 the sync did not complete (``progress`` says how far it got)
    ├── SyncNotPossible       unknown/deleted connection, not chat_agent, no base_url, busy, unsafe URL
    └── RemoteError           the remote's answer
        ├── TransientRemoteError   429 / 5xx / network: retried, then raised
        └── PermanentRemoteError   401, 404, redirects, a body that is not seed 000's list
            └── AuthRevoked        401/403 from a platform: token revoked, app uninstalled
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import orjson
import structlog

log = structlog.get_logger("hub.chat_sync")


class SyncError(Exception):
    """The sync stopped before the end; ``progress`` is what was committed until then."""

    def __init__(self, message: str, *, progress: Any = None) -> None:
        # ``progress`` is the engine's ``hub.platforms.sync.SyncRun`` (not imported: no cycle)
        super().__init__(message)
        self.progress = progress


class SyncNotPossible(SyncError):
    """Nothing was fetched: the connection cannot be synced now."""


class RemoteError(SyncError):
    """The remote did not give a usable page."""


class TransientRemoteError(RemoteError):
    """Worth asking again: 429, 5xx, a network error or a timeout."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentRemoteError(RemoteError):
    """Asking again gives the same answer: bad key, wrong URL, not seed 000's shape."""


class AuthRevoked(PermanentRemoteError):
    """The platform refused the credentials (401/403); the message is the platform's reason."""


@dataclass(frozen=True, slots=True)
class RemotePage:
    """One page of ``GET /api/v1/orders``: the orders and the ``meta`` numbers the remote stated."""

    orders: list[dict[str, Any]]
    per_page: int | None = None
    total: int | None = None


class OrdersRemote(Protocol):
    """A system speaking seed 000's ``GET /api/v1/orders``."""

    async def fetch_orders(self, *, date_from: date, page: int, per_page: int) -> RemotePage:
        """One page; raises :class:`TransientRemoteError` or :class:`PermanentRemoteError`."""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds, also decimal as Shopify writes ``2.0``, or an
    HTTP date); None if absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def parse_page(body: bytes) -> RemotePage:
    """Read seed 000's list envelope ``{"data": [...], "meta": {...}}``; PermanentRemoteError otherwise."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PermanentRemoteError(f"the remote's answer is not JSON: {body[:200]!r}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise PermanentRemoteError("the remote's answer has no 'data' list (not a chat-commerce order list)")
    orders = payload["data"]
    if not all(isinstance(o, dict) for o in orders):
        raise PermanentRemoteError("the remote's 'data' holds something other than order objects")
    meta = payload.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    return RemotePage(orders=orders, per_page=_positive_int(meta.get("per_page")), total=_count(meta.get("total")))


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries: ``max_tries`` requests per page, exponential backoff with jitter, capped waits."""

    max_tries: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        if retry_after is not None:
            # The remote knows when it will serve again; a hostile or silly value is capped.
            return min(retry_after, self.max_delay)
        backoff = self.base_delay * 2.0 ** (attempt - 1)
        return min(backoff * random.uniform(0.5, 1.0), self.max_delay)  # jitter spreads retries of many syncs


Sleep = Callable[[float], Awaitable[None]]


async def fetch_with_retries(
    remote: OrdersRemote, *, date_from: date, page: int, per_page: int, policy: RetryPolicy, sleep: Sleep
) -> RemotePage:
    """One page, retrying transient failures as ``policy`` allows."""
    for attempt in range(1, policy.max_tries + 1):
        try:
            return await remote.fetch_orders(date_from=date_from, page=page, per_page=per_page)
        except TransientRemoteError as exc:
            if attempt == policy.max_tries:
                raise TransientRemoteError(
                    f"page {page}: still failing after {attempt} tries: {exc}", retry_after=exc.retry_after
                ) from exc
            wait = policy.delay(attempt, exc.retry_after)
            log.info("chat_sync_retry", page=page, attempt=attempt, wait_s=round(wait, 3), error=str(exc))
            await sleep(wait)
    raise AssertionError("unreachable: max_tries >= 1")  # pragma: no cover

"""The HTTP client of the chat-agent pull: seed 000's ``GET /api/v1/orders`` over aiohttp.

The only place the pull touches aiohttp. It makes one request per call and translates the answer
into ``hub.platforms.chat_remote`` terms: a :class:`RemotePage`, a :class:`TransientRemoteError`
(429, 5xx, network, timeout; ``Retry-After`` read) or a :class:`PermanentRemoteError` (anything
else). It never follows redirects: the key is sent only to the configured base URL. Its session
dials only addresses the SSRF policy allowed, through the webhook sender's pinned resolver, so the
address checked is the address connected to (no DNS-rebinding window).
"""

from __future__ import annotations

from datetime import date

import aiohttp

from hub import ssrf
from hub.delivery.sender import PinnedResolver
from hub.delivery.targets import TargetPolicy
from hub.platforms.chat_remote import (
    AuthRevoked,
    PermanentRemoteError,
    RemotePage,
    TransientRemoteError,
    parse_page,
    parse_retry_after,
)

MAX_BODY_BYTES = 32 * 1024 * 1024  # 100 orders are far below this; a runaway answer is not read to the end


def pinned_session(*, allow_loopback: bool = False, allow_private: bool = False) -> aiohttp.ClientSession:
    """A client session that connects only to policy-checked addresses (no proxy from the environment)."""
    policy = TargetPolicy(allow_loopback=allow_loopback, allow_private=allow_private)
    connector = aiohttp.TCPConnector(resolver=PinnedResolver(policy), use_dns_cache=False)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)


class ChatAgentClient:
    """``GET {base_url}/api/v1/orders`` with ``Authorization: Bearer {api_key}``."""

    def __init__(self, session: aiohttp.ClientSession, *, base_url: str, api_key: str, timeout: float = 30.0) -> None:
        self._session = session
        self._url = base_url.rstrip("/") + "/api/v1/orders"
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def fetch_orders(self, *, date_from: date, page: int, per_page: int) -> RemotePage:
        """One page of orders created since ``date_from``."""
        params = {"date_from": date_from.isoformat(), "page": str(page), "per_page": str(per_page)}
        try:
            async with self._session.get(
                self._url, params=params, headers=self._headers, timeout=self._timeout, allow_redirects=False
            ) as resp:
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                body = await read_capped(resp)
        except ssrf.UnsafeUrlError as exc:  # the name now resolves somewhere it must not
            raise PermanentRemoteError(f"base_url refused: {exc.reason}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientRemoteError(f"GET {self._url} page {page}: {type(exc).__name__}: {exc}") from exc
        if status == 429 or status >= 500:
            raise TransientRemoteError(f"HTTP {status} on page {page}", retry_after=parse_retry_after(retry_after))
        if status in (401, 403):
            excerpt = body[:300].decode("utf-8", "replace")
            raise AuthRevoked(f"HTTP {status} from GET {self._url}: {excerpt}")
        if status != 200:
            excerpt = body[:300].decode("utf-8", "replace")
            raise PermanentRemoteError(f"HTTP {status} from GET {self._url} page {page}: {excerpt}")
        return parse_page(body)


async def read_capped(resp: aiohttp.ClientResponse) -> bytes:
    """The body, refused (PermanentRemoteError) past MAX_BODY_BYTES: a runaway answer is not read to the end."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PermanentRemoteError(f"the remote's answer is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)

"""The HTTP edge of outbound webhooks: one POST per attempt, nothing followed, nothing trusted.

* Connections go only to addresses the SSRF policy checked, through the hub's one guarded client
  (:func:`hub.ssrf_http.pinned_session`), re-checked on every new connection because an endpoint's
  DNS can change long after registration. IP-literal hosts are checked before the request.
* Redirects are never followed (a 3xx is a failed attempt naming its ``Location``); no proxy from
  the environment, no cookie jar (receivers of different tenants may share a host).
* Each attempt has a total timeout; only the first :data:`EXCERPT_BYTES` of the answer are read.
* Whatever happens on the wire comes back as an :class:`Outcome`, never as an exception: an
  endpoint answering garbage must not take a worker down.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import aiohttp

from hub.delivery.policy import EXCERPT_BYTES, Outcome, excerpt, parse_retry_after
from hub.delivery.targets import TargetPolicy, literal_address
from hub.ssrf import Resolver, UnsafeUrlError
from hub.ssrf_http import PinnedResolver, pinned_session

__all__ = ["USER_AGENT", "PinnedResolver", "Sender"]

USER_AGENT = "Orderhub-Webhooks/1.0 (+https://www.standardwebhooks.com/)"


class Sender:
    """POSTs signed webhook bodies through one pooled, pinned HTTP client."""

    def __init__(
        self, *, timeout: float, policy: TargetPolicy, resolver: Resolver | None = None, max_connections: int = 200
    ) -> None:
        self._timeout = timeout
        self._policy = policy
        self._resolver = resolver
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called; a closed sender never opens a new connection pool."""
        return self._closed

    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("webhook sender is closed")
        # Built lazily: a ClientSession must be created inside the running loop.
        if self._session is None or self._session.closed:
            # The one SSRF guard of every outgoing call (hub.ssrf_http): checked address = dialled address.
            self._session = pinned_session(
                self._policy, resolver=self._resolver, limit=self._max_connections, headers={"User-Agent": USER_AGENT}
            )
        return self._session

    async def close(self) -> None:
        """Close the connection pool for good."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
        """POST ``body`` to ``url`` once and describe what happened."""
        started = time.perf_counter()

        def done(
            status: int | None = None, *, text: str | None = None, error: str | None = None, retry: float | None = None
        ) -> Outcome:
            latency = round((time.perf_counter() - started) * 1000, 2)
            return Outcome(status_code=status, latency_ms=latency, excerpt=text, error=error, retry_after=retry)

        literal = literal_address(url)
        reason = self._policy.refusal(literal) if literal is not None else None
        if reason is not None:
            return done(error=f"refused: {literal} is a {reason}")
        try:
            async with self._client().post(
                url,
                data=body,
                headers=dict(headers),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                raw = await response.content.read(EXCERPT_BYTES)
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                location = response.headers.get("Location")
        except UnsafeUrlError as exc:
            return done(error=f"refused: {exc.reason}")
        except TimeoutError:
            return done(error=f"timed out after {self._timeout:g} s")
        except aiohttp.ClientError as exc:
            return done(error=_describe(exc))
        except (OSError, ValueError) as exc:  # e.g. an invalid URL slipping through, or a socket error
            return done(error=f"{type(exc).__name__}: {exc}"[:500])
        error = None
        if 300 <= status < 400:
            error = f"redirect not followed (Location: {location or '-'})"[:500]
        return done(status, text=excerpt(raw), error=error, retry=retry_after)


def _describe(exc: aiohttp.ClientError) -> str:
    """A short, stable description of a client error (no traceback, bounded length)."""
    cause = exc.__cause__
    if isinstance(cause, UnsafeUrlError):
        return f"refused: {cause.reason}"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]

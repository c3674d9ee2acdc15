"""The HTTP edge of outbound webhooks: one POST per attempt, nothing followed, nothing trusted.

* Connections go only to addresses the SSRF policy checked: the client's resolver *is* the check
  (:class:`PinnedResolver`), so the address validated is the address dialled — no second lookup
  for DNS rebinding to slip into — and it runs on every new connection, because an endpoint's DNS
  can change long after registration. IP-literal hosts (which aiohttp never resolves) are checked
  before the request.
* Redirects are never followed (a 3xx is a failed attempt naming its ``Location``); no proxy from
  the environment, no cookie jar (receivers of different tenants may share a host).
* Each attempt has a total timeout; only the first :data:`EXCERPT_BYTES` of the answer are read.
* Whatever happens on the wire comes back as an :class:`Outcome`, never as an exception: an
  endpoint answering garbage must not take a worker down.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from hub.delivery.policy import EXCERPT_BYTES, Outcome, excerpt, parse_retry_after
from hub.delivery.targets import TargetPolicy, literal_address, resolve_host
from hub.ssrf import Resolver, UnsafeUrlError

__all__ = ["USER_AGENT", "PinnedResolver", "Sender"]

USER_AGENT = "Orderhub-Webhooks/1.0 (+https://www.standardwebhooks.com/)"


class PinnedResolver(AbstractResolver):
    """An aiohttp resolver that returns only policy-checked addresses, or raises ``UnsafeUrlError``."""

    def __init__(self, policy: TargetPolicy, resolver: Resolver | None = None) -> None:
        self._policy = policy
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve_host(host, port, policy=self._policy, resolver=self._resolver)
        results: list[ResolveResult] = []
        for address in addresses:
            found = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family not in (socket.AF_UNSPEC, found):
                continue
            results.append(
                ResolveResult(
                    hostname=host, host=address, port=port, family=found, proto=0, flags=socket.AI_NUMERICHOST
                )
            )
        if not results:
            raise OSError(f"host {host!r} has no address of the requested family")
        return results

    async def close(self) -> None:
        return None


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
            connector = aiohttp.TCPConnector(
                resolver=PinnedResolver(self._policy, self._resolver),
                use_dns_cache=False,  # re-check on every new connection; kept-alive ones were checked
                limit=self._max_connections,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                headers={"User-Agent": USER_AGENT},
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

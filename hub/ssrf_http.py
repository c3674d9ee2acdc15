"""The HTTP side of the SSRF guard: the only way the hub builds a client session that leaves the host.

:func:`pinned_session` is used by webhook deliveries, chat-agent pulls and platform clients alike:

* its resolver *is* the check (:class:`PinnedResolver`): the addresses validated are the addresses
  dialled, on every new connection (no DNS cache, no second lookup for DNS rebinding to slip into);
* a client middleware checks IP-literal hosts, which aiohttp never hands to a resolver;
* no proxy from the environment, no cookie jar, redirects are left to the caller (all of ours refuse them).

A refused address raises :class:`hub.ssrf.UnsafeUrlError` (from the request, or as the cause of a
``ClientConnectorError``) and no byte is sent.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_middlewares import ClientHandlerType

from hub.ssrf import AddressPolicy, Resolver, UnsafeUrlError, ip_literal, resolve_host

__all__ = ["PinnedResolver", "pinned_session"]


class PinnedResolver(AbstractResolver):
    """An aiohttp resolver that returns only policy-checked addresses, or raises ``UnsafeUrlError``."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver | None = None) -> None:
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


def _literal_guard(policy: AddressPolicy) -> aiohttp.ClientMiddlewareType:
    async def guard(request: aiohttp.ClientRequest, handler: ClientHandlerType) -> aiohttp.ClientResponse:
        literal = ip_literal(request.url.raw_host or "")
        reason = policy.refusal(literal) if literal is not None else None
        if reason is not None:
            raise UnsafeUrlError(f"{literal} is a {reason}")
        return await handler(request)

    return guard


def pinned_session(
    policy: AddressPolicy,
    *,
    resolver: Resolver | None = None,
    limit: int = 100,
    headers: Mapping[str, str] | None = None,
    timeout: aiohttp.ClientTimeout | None = None,
) -> aiohttp.ClientSession:
    """A client session that connects only to addresses ``policy`` allows (create it inside the loop)."""
    connector = aiohttp.TCPConnector(resolver=PinnedResolver(policy, resolver), use_dns_cache=False, limit=limit)
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        headers=dict(headers or {}),
        timeout=timeout or aiohttp.ClientTimeout(total=30),
        middlewares=(_literal_guard(policy),),
    )

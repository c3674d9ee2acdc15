"""Where a webhook may connect: URL syntax, resolution, and the address policy, in one place.

Registration (:func:`check_url`) and every delivery (the pinned resolver in :mod:`hub.delivery.sender`, which
calls :func:`resolve_host`) apply the same rule, so an endpoint that passed registration and later
re-points its DNS at ``10.0.0.5`` or ``169.254.169.254`` is refused at delivery time too. The
addresses returned are the only ones a caller may connect to (no second lookup: DNS rebinding).
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from hub.delivery.policy import address_refusal
from hub.ssrf import Resolver, UnresolvableHostError, UnsafeUrlError, default_resolver, validate_url

__all__ = ["TargetPolicy", "check_url", "literal_address", "resolve_host"]


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """Which address classes are allowed (``settings.webhook_allow_loopback`` / ``_allow_private``)."""

    allow_loopback: bool = False
    allow_private: bool = False

    def refusal(self, address: str) -> str | None:
        """Why ``address`` is refused, or None."""
        return address_refusal(address, allow_loopback=self.allow_loopback, allow_private=self.allow_private)


def _ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def literal_address(url: str) -> str | None:
    """The host of a (normalised) URL if it is an IP literal, else None."""
    return _ip(urlsplit(url).hostname or "")


async def resolve_host(host: str, port: int, *, policy: TargetPolicy, resolver: Resolver | None = None) -> list[str]:
    """Resolve ``host`` and return its addresses if ALL are allowed; raise :class:`UnsafeUrlError`.

    "All", not "any": with one public and one private record the HTTP client could pick either.
    """
    literal = _ip(host)
    if literal is not None:
        candidates: list[str] = [literal]
    else:
        try:
            candidates = list(await (resolver or default_resolver)(host, port))
        except (OSError, UnicodeError) as exc:
            raise UnresolvableHostError(f"could not resolve host {host!r}") from exc
    addresses = list(dict.fromkeys(candidates))
    if not addresses:
        raise UnresolvableHostError(f"host {host!r} has no addresses")
    for address in addresses:
        reason = policy.refusal(address)
        if reason is not None:
            raise UnsafeUrlError(f"{host} resolves to {address}: {reason}")
    return addresses


async def check_url(url: str, *, policy: TargetPolicy, resolver: Resolver | None = None) -> str:
    """Validate, normalise and resolve an endpoint URL; return it normalised or raise :class:`UnsafeUrlError`."""
    normalized = validate_url(url)
    parts = urlsplit(normalized)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    await resolve_host(host, port, policy=policy, resolver=resolver)
    return normalized

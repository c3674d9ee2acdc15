"""The SSRF guard of every outgoing call: webhook deliveries, chat-agent pulls, platform clients.

One policy (:class:`AddressPolicy`, built from the settings) and two layers; the HTTP side (pinned
resolver and session factory) is :mod:`hub.ssrf_http`, which applies exactly these checks.

* :func:`validate_url` — pure syntax checks when an endpoint is registered (scheme, host,
  credentials, length, odd characters) plus normalisation, including rewriting IPv4 literal tricks
  (``2130706433``, ``0x7f.1``, ``0177.0.0.1``) to dotted-quad so the real target is visible.
* :func:`resolve_and_check` — resolves the host right before a delivery and refuses the URL if ANY
  address is forbidden (see :func:`is_forbidden_address`). "Any", not "first": a name with one public
  and one private record would otherwise let the HTTP client pick the private one.

The caller should connect only to the addresses returned by :func:`resolve_and_check` (e.g. through a
pinned aiohttp resolver); resolving again at connect time would reopen a DNS-rebinding window.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

__all__ = [
    "MAX_URL_LENGTH",
    "AddressPolicy",
    "address_refusal",
    "check_url",
    "resolve_host",
    "METADATA_ADDRESSES",
    "Resolver",
    "UnresolvableHostError",
    "UnsafeUrlError",
    "default_resolver",
    "ip_literal",
    "is_forbidden_address",
    "resolve_and_check",
    "validate_url",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``async (host, port) -> addresses`` — injectable so tests never touch DNS.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

MAX_URL_LENGTH = 2000
_DEFAULT_PORTS = {"http": 80, "https": 443}

#: Cloud instance-metadata and host-agent endpoints. Most sit in link-local space and would be refused
#: anyway; listing them gives a clearer reason and covers the ones that are not (Azure's WireServer is
#: a public address, Alibaba's sits in shared space).
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle IMDS
        "169.254.170.2",  # AWS ECS task metadata / credentials
        "169.254.170.23",  # AWS EKS Pod Identity agent
        "169.254.0.23",  # Tencent Cloud metadata
        "100.100.100.200",  # Alibaba Cloud metadata
        "168.63.129.16",  # Azure WireServer (public range!)
        "192.0.0.192",  # Oracle Cloud legacy metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS Pod Identity agent over IPv6
    )
)

_SHARED_V4 = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598 carrier-grade NAT
_NAT64_V6 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: last 32 bits are an IPv4 address
_HOST_CHARS = re.compile(r"[a-z0-9_.-]+")
_IPV4_PART = re.compile(r"0[x][0-9a-f]*|[0-9]+")


class UnsafeUrlError(ValueError):
    """The URL may not be used as a webhook endpoint; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnresolvableHostError(UnsafeUrlError):
    """The host did not resolve. Usually transient (DNS), so a delivery may retry it later."""


def _parse_ipv4_literal(host: str) -> ipaddress.IPv4Address | None:
    """Parse a host the way ``inet_aton`` (and the WHATWG URL standard) reads IPv4 literals.

    1–4 dot-separated parts, each decimal, octal (leading ``0``) or hex (``0x``); the last part fills
    the remaining bytes. Returns None if the host does not look numeric at all; raises UnsafeUrlError
    if it looks numeric but is not a valid address (``1.2.3.4.5``, ``0x1ffffffff``, ``09``).
    """
    labels = host.removesuffix(".").split(".")
    # WHATWG: a host whose last label is a number is an IPv4 address or invalid — never a DNS name.
    if not _IPV4_PART.fullmatch(labels[-1]):
        return None
    values: list[int] = []
    for part in labels:
        if not _IPV4_PART.fullmatch(part):
            raise UnsafeUrlError("invalid IPv4 address literal")
        if part.startswith("0x"):
            values.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not part.isdigit() or any(c in "89" for c in part):
                raise UnsafeUrlError("invalid IPv4 address literal")
            values.append(int(part, 8))
        else:
            values.append(int(part))
    if len(values) > 4 or any(v > 255 for v in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise UnsafeUrlError("invalid IPv4 address literal")
    number = 0
    for value in values[:-1]:
        number = number * 256 + value
    number = number * 256 ** (5 - len(values)) + values[-1]
    return ipaddress.IPv4Address(number)


def _normalize_host(raw_host: str, netloc: str) -> tuple[str, IPAddress | None]:
    """Return (host as it goes in the URL, parsed IP if it is a literal)."""
    if netloc.startswith("[") or ":" in raw_host:
        # urlsplit already checked the brackets; zone ids (fe80::1%eth0) are meaningless off-host.
        if "%" in raw_host:
            raise UnsafeUrlError("IPv6 zone identifiers are not allowed")
        try:
            ip6 = ipaddress.IPv6Address(raw_host)
        except ValueError as exc:
            raise UnsafeUrlError("invalid IPv6 address literal") from exc
        return f"[{ip6.compressed}]", ip6
    try:
        # IDNA turns a Unicode name into its ASCII form; it also rejects empty or over-long labels.
        host = raw_host.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise UnsafeUrlError("invalid host name") from exc
    # Anything else (%-escapes, backslashes, '@') is parsed differently by different clients.
    if not _HOST_CHARS.fullmatch(host) or len(host) > 253:
        raise UnsafeUrlError("invalid host name")
    ip4 = _parse_ipv4_literal(host)
    if ip4 is not None:
        return str(ip4), ip4
    return host, None


def _split(url: str) -> tuple[str, str, int, IPAddress | None]:
    """Validate ``url``; return (normalised URL, host, port, IP if the host is a literal)."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrlError(f"URL is longer than {MAX_URL_LENGTH} characters")
    # urlsplit silently drops tabs/newlines and strips leading controls; refuse them instead so what
    # we check is exactly what was registered.
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url):
        raise UnsafeUrlError("URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # bad brackets, non-numeric or out-of-range port
        raise UnsafeUrlError(f"malformed URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UnsafeUrlError("URL scheme must be http or https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeUrlError("URL must not contain credentials")
    if "\\" in parts.netloc:
        raise UnsafeUrlError("URL host contains a backslash")
    raw_host = parts.hostname
    if not raw_host:
        raise UnsafeUrlError("URL has no host")
    if port == 0:
        raise UnsafeUrlError("URL port must be between 1 and 65535")
    host, ip = _normalize_host(raw_host, parts.netloc)
    effective_port = port if port is not None else _DEFAULT_PORTS[scheme]
    authority = host if effective_port == _DEFAULT_PORTS[scheme] else f"{host}:{effective_port}"
    normalized = f"{scheme}://{authority}{parts.path or '/'}"
    if parts.query:
        normalized += f"?{parts.query}"
    # The fragment is dropped: it is never sent to the server.
    return normalized, host.strip("[]"), effective_port, ip


def validate_url(url: str) -> str:
    """Check an endpoint URL's syntax and return it normalised; raise :class:`UnsafeUrlError`.

    Refused: schemes other than http/https, no host, credentials (``user:pass@``), more than
    2,000 characters, whitespace/control characters, malformed IP literals and host names with
    characters other than letters, digits, ``-``, ``_`` and ``.`` (after IDNA encoding).
    Normalised: lower-case scheme and host, IDNA host, IPv4 literal forms rewritten to dotted-quad,
    IPv6 compressed, default port removed, empty path → ``/``, fragment removed.
    Addresses are NOT checked here (no DNS); :func:`resolve_and_check` does that.
    """
    return _split(url)[0]


def _unmap(ip: IPAddress) -> tuple[IPAddress, str]:
    """Return the IPv4 address embedded in an IPv6 one (mapped, NAT64, 6to4) and a label for it."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped, "IPv4-mapped "
        if ip in _NAT64_V6:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64-embedded "
        if ip.sixtofour is not None:
            return ip.sixtofour, "6to4-embedded "
        if ip.scope_id:
            # Scoped addresses compare unequal to their unscoped form; drop the zone before lookups.
            return ipaddress.IPv6Address(int(ip)), ""
    return ip, ""


def _reason(ip: IPAddress, *, allow_loopback: bool) -> str | None:
    # Order matters only for the message: the most specific reason wins (metadata before link-local,
    # loopback and reserved before private, whose table in Python also covers 127/8 and 240/4).
    if ip.is_unspecified:
        # 0.0.0.0 / :: connect to the local host on Linux, so they are refused even with allow_loopback.
        return "unspecified address"
    if ip.is_loopback:
        return None if allow_loopback else "loopback address"
    if ip in METADATA_ADDRESSES:
        return "cloud metadata address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED_V4:
        return "shared address space (100.64.0.0/10)"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local address"
    if ip.is_reserved:  # before is_private, whose table also lists 240.0.0.0/4
        return "reserved address"
    if ip.is_private:
        return "private address"
    # Catch-all for the remaining special-purpose blocks (documentation, benchmarking, Teredo, …).
    if not ip.is_global:
        return "non-public address"
    return None


def is_forbidden_address(ip: IPAddress, *, allow_loopback: bool) -> str | None:
    """Return why ``ip`` may not be a webhook target, or None if it may.

    Forbidden: private, loopback (unless ``allow_loopback``), link-local, multicast, reserved,
    unspecified, shared (100.64.0.0/10), site-local, any other non-global block, cloud metadata
    addresses (:data:`METADATA_ADDRESSES`), and IPv6 addresses embedding any of those
    (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``).
    """
    # For a wrapped address only the embedded IPv4 destination is judged: the wrapper block itself
    # (::ffff:0:0/96, 64:ff9b::/96, 2002::/16) is "not global" in Python's tables but is just transport.
    inner, label = _unmap(ip)
    reason = _reason(inner, allow_loopback=allow_loopback)
    return None if reason is None else label + reason


async def default_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the event loop's ``getaddrinfo`` (TCP); return the address strings."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


@functools.lru_cache(maxsize=4096)
def address_refusal(address: str, *, allow_loopback: bool, allow_private: bool) -> str | None:
    """Why an outgoing call may not connect to ``address``, or None if it may (pure, cached).

    ``allow_private`` lets a self-hosted hub reach RFC 1918 / ULA hosts on its own network; metadata,
    link-local, unspecified and the other special blocks stay refused whatever the settings.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"invalid address {address!r}"
    reason = is_forbidden_address(ip, allow_loopback=allow_loopback)
    if reason is not None and allow_private and reason.endswith("private address"):
        return None
    return reason


class _PolicySettings(Protocol):
    webhook_allow_loopback: bool
    webhook_allow_private: bool


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which address classes outgoing calls may reach (``HUB_WEBHOOK_ALLOW_LOOPBACK`` / ``_PRIVATE``)."""

    allow_loopback: bool = False
    allow_private: bool = False

    @classmethod
    def from_settings(cls, settings: _PolicySettings) -> AddressPolicy:
        """The policy the hub's settings ask for (every outgoing call uses this one)."""
        return cls(allow_loopback=settings.webhook_allow_loopback, allow_private=settings.webhook_allow_private)

    def refusal(self, address: str) -> str | None:
        """Why ``address`` is refused, or None."""
        return address_refusal(address, allow_loopback=self.allow_loopback, allow_private=self.allow_private)


@functools.lru_cache(maxsize=4096)  # pure, and asked on every delivery: 4 µs a parse, or a raised ValueError for a name
def ip_literal(host: str) -> str | None:
    """``host`` as an address string if it is an IP literal (brackets allowed), else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


async def resolve_host(host: str, port: int, *, policy: AddressPolicy, resolver: Resolver | None = None) -> list[str]:
    """Resolve ``host`` and return its addresses if ALL are allowed; raise :class:`UnsafeUrlError`.

    IP literals are checked without a lookup; :class:`UnresolvableHostError` when the name does not resolve.
    """
    literal = ip_literal(host)
    if literal is not None:
        candidates: Sequence[str] = [literal]
    else:
        try:
            candidates = await (resolver or default_resolver)(host, port)
        except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
            raise UnresolvableHostError(f"could not resolve host {host!r}") from exc
    addresses = list(dict.fromkeys(candidates))
    if not addresses:
        raise UnresolvableHostError(f"host {host!r} has no addresses")
    for address in addresses:
        reason = policy.refusal(address)
        if reason is not None:
            raise UnsafeUrlError(f"{host} resolves to {address}: {reason}")
    return addresses


async def check_url(url: str, *, policy: AddressPolicy, resolver: Resolver | None = None) -> str:
    """Validate, normalise and resolve ``url``; return it normalised or raise :class:`UnsafeUrlError`."""
    normalized, host, port, _ = _split(url)
    await resolve_host(host, port, policy=policy, resolver=resolver)
    return normalized


async def resolve_and_check(
    url: str, *, allow_loopback: bool, allow_private: bool = False, resolver: Resolver | None = None
) -> list[str]:
    """Validate ``url``, resolve its host and return the addresses, all of them allowed.

    Raises :class:`UnsafeUrlError` if the URL is invalid or ANY resolved address is forbidden
    (:func:`address_refusal`), :class:`UnresolvableHostError` if the name does not resolve.
    """
    _, host, port, _ = _split(url)
    policy = AddressPolicy(allow_loopback=allow_loopback, allow_private=allow_private)
    return await resolve_host(host, port, policy=policy, resolver=resolver)

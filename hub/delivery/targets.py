"""Where a webhook may connect: the SSRF guard of :mod:`hub.ssrf`, under the names delivery uses.

Registration (:func:`check_url`) and every delivery (the pinned session of :mod:`hub.ssrf_http`, which
calls :func:`resolve_host`) apply the same rule as every other outgoing call, so an endpoint that passed
registration and later re-points its DNS at ``10.0.0.5`` or ``169.254.169.254`` is refused at delivery
time too.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from hub.ssrf import AddressPolicy, check_url, ip_literal, resolve_host

__all__ = ["TargetPolicy", "check_url", "literal_address", "resolve_host"]

#: The one address policy (kept under its delivery name for existing callers).
TargetPolicy = AddressPolicy


@functools.lru_cache(maxsize=4096)
def literal_address(url: str) -> str | None:
    """The host of a (normalised) URL if it is an IP literal, else None."""
    return ip_literal(urlsplit(url).hostname or "")

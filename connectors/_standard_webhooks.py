"""Standard Webhooks verification (https://www.standardwebhooks.com/), shared by ``chat_agent`` and ``generic``.

A sender sets three headers: ``webhook-id`` (stable across retries), ``webhook-timestamp`` (integer Unix
seconds of the attempt) and ``webhook-signature``, a space-separated list of ``v1,<base64>`` entries, each an
HMAC-SHA256 over ``{webhook-id}.{webhook-timestamp}.{raw body}`` keyed with the endpoint's secret
(``whsec_<base64>``). Several entries appear during a secret rotation; one match is enough.

Why not ``standardwebhooks.Webhook.verify``: it measures the timestamp against the wall clock, so a stored
request could not be re-verified and tests would depend on the time of day, and it decodes the body as UTF-8
before signing, so an authentic body that is not UTF-8 would look forged (it is "authentic but unreadable",
a :class:`PayloadError` for ``parse``). Here the tolerance is measured against ``request.received_at`` and the
HMAC covers the raw bytes. The key is derived exactly as that package derives it, so whatever
``Webhook(secret).sign`` signs verifies here; the tests check it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from connectors.base import RawRequest, SignatureError, body_hash

TOLERANCE = timedelta(minutes=5)
SECRET_PREFIX = "whsec_"

# The spec says "integer unix timestamp"; twelve digits reach far past any plausible clock.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional), as the reference library derives it."""
    text = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        # Same as standardwebhooks.Webhook: non-strict base64, tolerant of missing padding.
        key = base64.b64decode(text + "==")
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("the connection's secret is not base64 (expected whsec_<base64>)") from exc
    if not key:
        raise SignatureError("the connection's secret is empty")
    return key


def verify(request: RawRequest, secret: str, *, tolerance: timedelta | None = None) -> None:
    """Raise :class:`SignatureError` unless the request carries a valid, timely Standard Webhooks signature.

    The tolerance is ``request.tolerance_seconds`` (the hub's setting) unless given.
    """
    tolerance = tolerance if tolerance is not None else timedelta(seconds=request.tolerance_seconds)
    msg_id = _header(request, "webhook-id")
    timestamp = _header(request, "webhook-timestamp")
    signatures = _header(request, "webhook-signature")
    sent_at = _parse_timestamp(timestamp)
    received_at = request.received_at if request.received_at.tzinfo else request.received_at.replace(tzinfo=UTC)
    if abs(received_at - sent_at) > tolerance:
        raise SignatureError(
            f"webhook-timestamp {timestamp} is more than {tolerance} away from the time of receipt "
            f"({received_at.isoformat()}): replayed or the sender's clock is wrong"
        )
    signed = f"{msg_id}.{timestamp}.".encode("utf-8", "surrogatepass") + request.body
    expected = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    # Compare against every entry, never stopping at the first mismatch, and in constant time each.
    matches = [hmac.compare_digest(expected, candidate) for candidate in _v1_signatures(signatures)]
    if not any(matches):
        raise SignatureError("no v1 entry of webhook-signature matches the body")


def delivery_id(request: RawRequest) -> str:
    """``webhook-id``, stable across the sender's retries; else the body's hash."""
    value = request.headers.get("webhook-id", "").strip()
    return value or body_hash(request.body)


def _header(request: RawRequest, name: str) -> str:
    value = request.headers.get(name, "").strip()
    if not value:
        raise SignatureError(f"missing {name} header")
    return value


def _parse_timestamp(value: str) -> datetime:
    if not _TIMESTAMP.fullmatch(value):
        raise SignatureError(f"webhook-timestamp must be integer Unix seconds, got {value[:40]!r}")
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise SignatureError(f"webhook-timestamp {value} is out of range") from exc


def _v1_signatures(header: str) -> Iterator[bytes]:
    """The decoded ``v1`` entries; other schemes (``v1a`` is ed25519) and malformed entries are skipped."""
    for entry in header.split():
        version, comma, encoded = entry.partition(",")
        if version != "v1" or not comma:
            continue
        try:
            yield base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue

"""Outbound webhook signing, following the Standard Webhooks specification.

A delivery carries three headers: ``webhook-id`` (stable across retries so receivers can dedupe),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` of
``"{id}.{timestamp}.{body}"`` keyed with the base64-decoded part of a ``whsec_…`` secret. While an
endpoint's secret is being rotated both the new and the old secret sign the message and both
signatures go in the header, space-separated, so a receiver holding either one verifies.

The HMAC itself is computed by the ``standardwebhooks`` reference library so our output is, by
construction, what its ``Webhook.verify`` (and every other conforming verifier) expects. This module
adds what the library leaves out: strict secret validation (the library silently drops characters
that are not base64) and the multi-secret header.
"""

from __future__ import annotations

import base64
import binascii
import functools
import secrets as _secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

__all__ = ["SECRET_PREFIX", "InvalidSecretError", "decode_secret", "headers", "new_secret", "sign"]

SECRET_PREFIX = "whsec_"
# The spec asks for keys of 24 to 64 bytes; we generate 32 (the HMAC-SHA256 block-size sweet spot).
_MIN_KEY_BYTES = 24
_MAX_KEY_BYTES = 64
_NEW_KEY_BYTES = 32


class InvalidSecretError(ValueError):
    """A signing secret is not ``whsec_`` + base64 of 24–64 bytes."""


def new_secret() -> str:
    """Return a fresh signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(_NEW_KEY_BYTES)).decode("ascii")


@functools.lru_cache(maxsize=4096)
def decode_secret(secret: str) -> bytes:
    """Return the HMAC key of a ``whsec_…`` secret, or raise :class:`InvalidSecretError`.

    Strict on purpose: a truncated or mistyped secret must fail loudly here rather than sign with a
    different key and make every delivery fail verification at the receiver.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecretError(f"signing secret must start with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    # Unpadded base64 is common in the wild and accepted by the reference verifiers.
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(padded, validate=True)
    except binascii.Error as exc:
        raise InvalidSecretError("signing secret is not valid base64") from exc
    if not _MIN_KEY_BYTES <= len(key) <= _MAX_KEY_BYTES:
        raise InvalidSecretError(f"signing secret must decode to {_MIN_KEY_BYTES}-{_MAX_KEY_BYTES} bytes")
    return key


@functools.lru_cache(maxsize=4096)
def _signer(secret: str) -> Webhook:
    """The reference library's signer for one secret (built once per secret: every delivery signs)."""
    return Webhook(decode_secret(secret))


def _check_msg_id(msg_id: str) -> None:
    # The id goes into a header verbatim; whitespace or control characters would corrupt it (or
    # smuggle a header line), and an empty id makes receiver-side dedupe meaningless.
    if not msg_id or any(ch.isspace() or not ch.isprintable() for ch in msg_id):
        raise ValueError("msg_id must be a non-empty string without whitespace or control characters")


def sign(*, msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """Return the ``webhook-signature`` header value for one message.

    One ``v1,<base64>`` entry per distinct secret, in the order given (put the newest first),
    separated by single spaces. ``body`` must be the exact bytes that will be sent, and must be
    UTF-8 (it is JSON); ``timestamp`` is Unix seconds.
    """
    _check_msg_id(msg_id)
    if isinstance(timestamp, bool) or timestamp < 0:
        raise ValueError("timestamp must be a non-negative number of Unix seconds")
    if not secrets:
        raise ValueError("at least one signing secret is required")
    # The library signs text; for UTF-8 bodies decode→encode is an exact round trip, so the HMAC
    # covers the very bytes we send. A non-UTF-8 body is a caller bug, not something to sign.
    text = body.decode("utf-8")
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    signatures: list[str] = []
    for secret in dict.fromkeys(secrets):  # dedupe, keep order: one key configured twice signs once
        signature = _signer(secret).sign(msg_id, when, text)
        signatures.append(str(signature))
    return " ".join(signatures)


def headers(*, msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """Return the headers of a signed delivery (lower-case names).

    ``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` (see :func:`sign`) and
    ``content-type: application/json``.
    """
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(msg_id=msg_id, timestamp=timestamp, body=body, secrets=secrets),
        "content-type": "application/json",
    }

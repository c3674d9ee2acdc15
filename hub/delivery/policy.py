"""Pure delivery rules: what an HTTP outcome means, when to try again, which addresses are allowed.

No I/O here, so the rules the worker applies are unit-tested on their own:

* :func:`next_delay` — the retry schedule (``settings.webhook_retry_schedule``, first value = delay of
  the first attempt) stretched by a receiver's ``Retry-After``;
* :func:`parse_retry_after` — seconds or an HTTP date, capped;
* :func:`address_refusal` — re-exported from :mod:`hub.ssrf`, the one address policy of every outgoing call.

Every non-2xx answer, garbage and silence is a failed attempt retried on the schedule (DESIGN
"Bad input" wins over the narrower "retry only 5xx/429" rule of STYLE example 8).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from hub.ssrf import address_refusal

__all__ = [
    "EXCERPT_BYTES",
    "MAX_RETRY_AFTER_SECONDS",
    "Outcome",
    "address_refusal",
    "envelope_body",
    "excerpt",
    "next_delay",
    "parse_retry_after",
]

#: Stored response excerpt: enough to see an error page's gist, small enough for millions of rows.
EXCERPT_BYTES = 1024
#: A receiver may slow us down, not park a delivery for a month: longer ``Retry-After`` is capped.
MAX_RETRY_AFTER_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one HTTP try produced. ``status_code`` is None when no HTTP answer came back."""

    status_code: int | None
    latency_ms: float
    excerpt: str | None = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        """2xx and nothing else: a redirect is not followed, so it is not a delivery."""
        return self.status_code is not None and 200 <= self.status_code < 300 and self.error is None

    def describe(self) -> str:
        """A one-line reason for logs, ``last_error`` and ``disabled_reason``."""
        if self.error:
            return self.error if self.status_code is None else f"HTTP {self.status_code}: {self.error}"
        return f"HTTP {self.status_code}"


def next_delay(schedule: Sequence[int], attempts_made: int, *, retry_after: float | None = None) -> float | None:
    """Seconds to wait before the next attempt after ``attempts_made`` tries, or None when exhausted.

    ``schedule[0]`` is the delay of the first attempt, so ``schedule[k]`` is the wait after the k-th
    failure and the schedule allows ``len(schedule)`` attempts in all. A ``Retry-After`` only ever
    lengthens the wait (capped at :data:`MAX_RETRY_AFTER_SECONDS`); it never adds attempts.
    """
    if attempts_made >= len(schedule):
        return None
    delay = float(schedule[attempts_made])
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return delay


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or HTTP-date), or None if absent/unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), MAX_RETRY_AFTER_SECONDS))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, min(seconds, MAX_RETRY_AFTER_SECONDS))


def excerpt(raw: bytes) -> str | None:
    """The stored response excerpt: at most :data:`EXCERPT_BYTES`, decoded leniently."""
    if not raw:
        return None
    # Postgres text cannot hold NUL; a binary answer must not make recording the attempt fail.
    return raw[:EXCERPT_BYTES].decode("utf-8", "replace").replace("\x00", "\ufffd")


def envelope_body(payload: dict[str, Any]) -> bytes:
    """The bytes POSTed for a stored envelope: ``id``, ``type``, ``created``, ``data`` first.

    Deterministic for a given stored payload (the JSONB row never changes), so every retry sends the
    byte-identical body under the same ``webhook-id``.
    """
    ordered: dict[str, Any] = {key: payload[key] for key in ("id", "type", "created", "data") if key in payload}
    ordered.update((key, value) for key, value in payload.items() if key not in ordered)
    return orjson.dumps(ordered)

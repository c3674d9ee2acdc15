"""The pure delivery rules: schedule, Retry-After, address policy, body bytes."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from hub.delivery.policy import (
    MAX_RETRY_AFTER_SECONDS,
    Outcome,
    address_refusal,
    envelope_body,
    excerpt,
    next_delay,
    parse_retry_after,
)

SCHEDULE = (0, 5, 300, 1800)


@pytest.mark.parametrize(
    ("made", "retry_after", "expected"),
    [
        (1, None, 5.0),
        (2, None, 300.0),
        (3, None, 1800.0),
        (4, None, None),  # len(schedule) attempts in all
        (9, None, None),  # a manual retry past the schedule: no automatic follow-up
        (1, 60.0, 60.0),  # Retry-After lengthens the wait...
        (2, 60.0, 300.0),  # ...never shortens it
        (1, 10.0**9, float(MAX_RETRY_AFTER_SECONDS)),  # and is capped
        (4, 60.0, None),  # and never adds attempts
    ],
)
def test_next_delay(made: int, retry_after: float | None, expected: float | None) -> None:
    assert next_delay(SCHEDULE, made, retry_after=retry_after) == expected


def test_parse_retry_after() -> None:
    now = datetime(2024, 3, 10, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Sun, 10 Mar 2024 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Sun, 10 Mar 2024 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("99999999999") == float(MAX_RETRY_AFTER_SECONDS)
    for junk in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(junk) is None


@pytest.mark.parametrize(
    ("address", "loopback", "private", "refused"),
    [
        ("93.184.216.34", False, False, None),
        ("127.0.0.1", False, False, "loopback address"),
        ("127.0.0.1", True, False, None),
        ("10.1.2.3", False, False, "private address"),
        ("10.1.2.3", False, True, None),
        ("::ffff:10.1.2.3", False, True, None),
        ("169.254.169.254", True, True, "cloud metadata address"),  # never, whatever the settings
        ("169.254.3.4", True, True, "link-local address"),
        ("0.0.0.0", True, True, "unspecified address"),
        ("not-an-ip", False, False, "invalid address 'not-an-ip'"),
    ],
)
def test_address_refusal(address: str, loopback: bool, private: bool, refused: str | None) -> None:
    assert address_refusal(address, allow_loopback=loopback, allow_private=private) == refused


def test_outcome_success_is_2xx_only() -> None:
    assert Outcome(200, 1.0).succeeded
    assert Outcome(204, 1.0).succeeded
    assert not Outcome(301, 1.0, error="redirect not followed (Location: /x)").succeeded
    assert not Outcome(None, 1.0, error="timed out after 3 s").succeeded
    assert Outcome(503, 1.0).describe() == "HTTP 503"
    assert Outcome(None, 1.0, error="timed out after 3 s").describe() == "timed out after 3 s"


def test_envelope_body_is_stable_and_leads_with_the_envelope_fields() -> None:
    stored = {
        "data": {"order": {"id": "ord_1", "total_amount": 10.5}},
        "created": "2024-01-01T00:00:00Z",
        "type": "order.created",
        "id": "evt_1",
    }
    body = envelope_body(stored)
    assert body == envelope_body(dict(reversed(list(stored.items()))))
    assert body.startswith(b'{"id":"evt_1","type":"order.created","created":')
    assert orjson.loads(body) == stored


def test_excerpt_is_bounded_and_storable() -> None:
    assert excerpt(b"") is None
    text = excerpt(b"\x00\xff" + b"a" * 5000)
    assert text is not None
    assert len(text.encode("utf-8")) <= 1024 + 8
    assert "\x00" not in text

"""The shared readers: one text-cleaning rule for every connector, and the pairs whose rules still differ."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from connectors import _readers as r
from connectors.base import PayloadError


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("plain", "plain"),
        ("a\x00b", "ab"),
        ("\ud800x\udfff", "\ufffdx\ufffd"),
        ("\U0001f600", "\U0001f600"),  # a real astral character (a joined pair) is kept
    ],
)
def test_clean_text_strips_nul_and_replaces_lone_surrogates(raw: str, clean: str) -> None:
    assert r.clean_text(raw) == clean
    clean.encode("utf-8")  # storable


def test_surrogate_escapes_decoded_from_json_are_cleaned_by_every_text_reader() -> None:
    body = r.load_json(b'{"s": " \\u0000a\\ud800 ", "pair": "\\ud83d\\ude00"}')
    assert r.read_text(body["s"], "s") == r.read_string(body["s"], "s") == "a\ufffd"
    assert r.read_text(body["pair"], "pair") == "\U0001f600"
    assert r.read_address({"k\x00": "v\udc00"}, "a") == {"k": "v\ufffd"}
    assert r.clean_json({"k": ["\x00v\ud800"]}, "a") == {"k": ["v\ufffd"]}


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"\xff", "not UTF-8"), (b"{", "not JSON"), (b"[NaN]", "NaN"), (b"[" * 100_000 + b"]" * 100_000, "nests")],
)
def test_load_json_refuses_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        r.load_json(body)


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (
            b'{"id": 12345678901234567890123, "n": -9223372036854775809}',
            {"id": 12345678901234567890123, "n": -(2**63) - 1},
        ),
        (b"[18446744073709551616, 1.5]", [18446744073709551616, 1.5]),  # past 64 bits: still an exact int
        (b'{"total": 0.1, "qty": 3, "a": 1, "a": 2}', {"total": 0.1, "qty": 3, "a": 2}),
        (b"[1e400, -1e400, 1e-400]", [math.inf, -math.inf, 0.0]),  # as the standard library reads them
        (b'["\\ud800"]', ["\ud800"]),  # a lone surrogate escape: kept for the text readers to clean
    ],
)
def test_load_json_keeps_every_number_exactly_as_the_standard_library_reads_it(body: bytes, value: Any) -> None:
    assert r.load_json(body) == value
    assert [type(v) for v in _leaves(r.load_json(body))] == [type(v) for v in _leaves(value)]


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


# The unified model (generic, chat_agent, Shopify, WooCommerce) and Salla/Zid keep their own documented rules.
@pytest.mark.parametrize(
    ("reader", "value", "expected"),
    [
        (r.read_text, 42, "42"),
        (r.read_string, 42, None),
        (r.read_text, "x" * 5000, "x" * 5000),
        (r.read_string, "x" * 5000, None),
        (r.read_money, "1e3", Decimal(1000)),  # the API's grammar: accepted on both sides
        (r.read_money, "٣", None),  # non-ASCII digits: refused on both sides
        (r.read_amount, "٣", None),
        (r.read_amount, "1e3", Decimal(1000)),
        (r.read_money, {"amount": "5"}, None),
        (r.read_amount, {"amount": {"amount": "5"}}, Decimal(5)),
        (r.read_money, 1e-25, Decimal("1e-25")),
        (r.read_amount, 1e-25, None),
        (r.read_money, 10**15, None),
        (r.read_amount, 10**15, None),
        (r.read_quantity, "2.0", None),
        (r.read_decimal_quantity, "2.0", 2),
        (r.read_quantity, 10**8, 10**8),
        (r.read_decimal_quantity, 10**8, None),
    ],
)
def test_the_two_families_rules(reader: Callable[[Any, str], Any], value: Any, expected: Any) -> None:
    if expected is None:
        with pytest.raises(PayloadError, match="^f: "):
            reader(value, "f")
    else:
        assert reader(value, "f") == expected

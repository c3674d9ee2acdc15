"""The shared readers: one text-cleaning rule for every connector, and the pairs whose rules still differ."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from connectors import _readers as r
from connectors import _times as times
from connectors.base import PayloadError


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("plain", "plain"),
        ("a\x00b", "ab"),
        ("\x00", ""),
        ("محمد\x00 علي\ud800", "محمد علي\ufffd"),
        ("\ud800x\udfff", "\ufffdx\ufffd"),
        ("\U0001f600", "\U0001f600"),  # a real astral character (a joined pair) is kept
    ],
)
def test_clean_text_strips_nul_and_replaces_lone_surrogates(raw: str, clean: str) -> None:
    assert r.clean_text(raw) == clean
    clean.encode("utf-8")  # storable


def _strptime_or_error(raw: str) -> tuple[datetime, object] | str:
    try:
        parsed = datetime.strptime(raw, "%a %b %d %Y %H:%M:%S GMT%z")
    except ValueError:
        return "ValueError"
    return parsed, parsed.utcoffset()


def _js_date_or_error(raw: str) -> tuple[datetime, object] | str:
    try:
        parsed = times.js_date(raw)
    except ValueError:
        return "ValueError"
    return parsed, parsed.utcoffset()


def _two_digits(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: f"{n:02d}")


# Dates in and around the spelling JavaScript writes: the direct reading must agree with strptime on
# each, the value or the refusal (days and hours out of range, offsets of 24 hours and more, other case).
_JS_DATES = st.builds(
    "{} {} {} {} {}:{}:{} GMT{}{}{}".format,
    st.sampled_from(["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "sun", "Sunday"]),
    st.sampled_from([*times._MONTHS, "jun", "June"]),
    st.one_of(_two_digits(0, 39), _two_digits(1, 31), st.sampled_from(["1", "٣", "001"])),
    st.one_of(st.integers(0, 9999).map(lambda n: f"{n:04d}"), st.sampled_from(["24", "99999"])),
    _two_digits(0, 25),
    _two_digits(0, 61),
    _two_digits(0, 62),
    st.sampled_from(["+", "-", "+", "-", "*"]),
    st.one_of(_two_digits(0, 30), _two_digits(0, 99)),
    st.one_of(_two_digits(0, 59), _two_digits(0, 99), st.sampled_from([":00", "0"])),
)


@settings(max_examples=500)  # pure and fast; about one date in ten takes the direct path
@given(_JS_DATES)
@example("Sun Jun 26 2022 12:21:48 GMT+0300")
@example("Mon Jun 26 2022 12:21:48 GMT+0300")  # the weekday is not checked, by either
@example("Sun Feb 29 2023 12:21:48 GMT+0300")
@example("Fri Dec 31 9999 23:59:59 GMT-2359")
@example("Sun Jun 26 2022 12:21:48 GMT+2400")
@example("Sun Jun 26 2022 12:21:48 GMT+9999")
def test_js_date_reads_what_strptime_reads(raw: str) -> None:
    assert _js_date_or_error(raw) == _strptime_or_error(raw)


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

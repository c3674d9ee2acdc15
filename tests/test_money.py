"""Tests for hub.money (exact money handling)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub import money
from hub.money import MoneyError

D = Decimal

# --- parse_money --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (10, "10"),
        (0.1, "0.1"),  # via str(): not 0.1000000000000000055511...
        (19.99, "19.99"),
        (12.345, "12.345"),
        (1e-4, "0.0001"),
        ("10.50", "10.50"),
        (" 10.5 ", "10.5"),
        (".5", "0.5"),
        ("7.", "7"),
        ("+3", "3"),
        ("1e2", "100"),
        ("1E+2", "100"),
        ("10.00000", "10.00000"),  # trailing zeros carry no precision, so 5 places is fine
        ("-0", "0"),
        ("0.0000", "0"),
        (D("2.25"), "2.25"),
        ("1000000000000", "1000000000000"),
        (1_000_000_000_000, "1000000000000"),
    ],
)
def test_parse_money_accepts(value: object, expected: str) -> None:
    got = money.parse_money(value, field="price")
    assert got == D(expected)
    assert str(got) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "number"),
        (False, "number"),
        (None, "number"),
        ([1], "number"),
        ({"amount": 1}, "number"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (float("-inf"), "finite"),
        (D("NaN"), "finite"),
        (D("Infinity"), "finite"),
        ("NaN", "decimal number"),
        ("Infinity", "decimal number"),
        ("1_000", "decimal number"),
        ("", "decimal number"),
        ("abc", "decimal number"),
        ("1,50", "decimal number"),
        ("0x10", "decimal number"),
        ("1" * 65, "decimal number"),
        (-1, "negative"),
        (-0.01, "negative"),
        ("-5.00", "negative"),
        (1_000_000_000_000.01, "too large"),
        ("1e13", "too large"),
        (10**20, "too large"),
        ("1.23456", "4 decimal places"),
        (59.97000000000001, "4 decimal places"),  # 3 * 19.99 computed in JavaScript
        ("1e-5", "4 decimal places"),
    ],
)
def test_parse_money_refuses(value: object, reason: str) -> None:
    with pytest.raises(MoneyError) as info:
        money.parse_money(value, field="price")
    assert info.value.field == "price"
    assert reason in info.value.reason
    assert info.value.details == {"price": info.value.reason}


def test_parse_money_negative_allowed_when_asked() -> None:
    assert money.parse_money("-5.25", field="adjustment", allow_negative=True) == D("-5.25")
    with pytest.raises(MoneyError, match="too large"):
        money.parse_money("-1e13", field="adjustment", allow_negative=True)


def test_parse_money_bound_is_exact_for_long_inputs() -> None:
    # 35 significant digits: more than Decimal's default 28-digit context would keep.
    with pytest.raises(MoneyError, match="too large"):
        money.parse_money("1000000000000.0000000000000000000001", field="x", max_places=None)


def test_parse_money_place_limit_is_configurable() -> None:
    assert money.parse_money("1.304348", field="tax", max_places=None) == D("1.304348")
    with pytest.raises(MoneyError, match="at most 2 decimal places"):
        money.parse_money("1.304", field="tax", max_places=2)


# --- currencies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "places"),
    [
        ("SAR", 2),
        ("USD", 2),
        ("EUR", 2),
        ("AED", 2),
        ("HUF", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("CLP", 0),
        ("VND", 0),
        ("ISK", 0),
        ("XOF", 0),
        ("BHD", 3),
        ("KWD", 3),
        ("OMR", 3),
        ("JOD", 3),
        ("TND", 3),
        ("IQD", 3),
        ("LYD", 3),
        ("CLF", 4),
        ("UYW", 4),
        ("jpy", 0),
        ("ZZZ", 2),
    ],
)
def test_currency_decimals(code: str, places: int) -> None:
    assert money.currency_decimals(code) == places


@pytest.mark.parametrize("code", ["SAR", "USD", "EUR", "GBP", "AED", "EGP", "KWD", "JPY", "INR", "CNY", "XCG", "ZWG"])
def test_is_currency_known(code: str) -> None:
    assert money.is_currency(code)


@pytest.mark.parametrize("code", ["sar", "SA", "SARR", "", "XXX", "XTS", "XAU", "ABC", "BTC", " SAR"])
def test_is_currency_rejects(code: str) -> None:
    assert not money.is_currency(code)


def test_currency_list_is_iso_shaped() -> None:
    assert len(money.CURRENCIES) >= 150
    assert all(len(c) == 3 and c.isascii() and c.isupper() for c in money.CURRENCIES)


def test_every_special_minor_unit_is_a_listed_currency() -> None:
    assert set(money._MINOR_UNITS) <= money.CURRENCIES


def test_normalize_currency() -> None:
    assert money.normalize_currency(" sar ") == "SAR"
    assert money.normalize_currency("xyz") is None


# --- quantize / to_json_number ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("10.005", "SAR", "10.01"),  # half up, not banker's
        ("10.015", "SAR", "10.02"),
        ("10.004", "SAR", "10.00"),
        ("-10.005", "SAR", "-10.01"),  # half away from zero
        ("1500.5", "JPY", "1501"),
        ("1500.4", "JPY", "1500"),
        ("1.0005", "KWD", "1.001"),
        ("7", "BHD", "7.000"),
        ("1.23456", "CLF", "1.2346"),
    ],
)
def test_quantize(amount: str, currency: str, expected: str) -> None:
    got = money.quantize(D(amount), currency)
    assert str(got) == expected


def test_to_json_number_types_and_rendering() -> None:
    assert money.to_json_number(D("1500.4"), "JPY") == 1500
    assert isinstance(money.to_json_number(D("1500"), "JPY"), int)
    assert money.to_json_number(D("10.005"), "SAR") == 10.01
    assert isinstance(money.to_json_number(D("10"), "SAR"), float)
    doc = {
        "jpy": money.to_json_number(D("1500"), "JPY"),
        "sar": money.to_json_number(D("115.125"), "SAR"),
        "kwd": money.to_json_number(D("1.0005"), "KWD"),
    }
    assert orjson.dumps(doc) == b'{"jpy":1500,"sar":115.13,"kwd":1.001}'
    assert json.dumps(doc) == '{"jpy": 1500, "sar": 115.13, "kwd": 1.001}'


# --- totals -------------------------------------------------------------------------------------


def test_compute_totals() -> None:
    subtotal, total = money.compute_totals([D("10.10"), D("20.20"), D("0.7")], D("5"), D("3.75"), D("15"))
    assert subtotal == D("31.00")
    assert total == D("44.75")


def test_compute_totals_empty_and_exact() -> None:
    assert money.compute_totals([], D(0), D(0), D(0)) == (D(0), D(0))
    subtotal, _ = money.compute_totals([D("0.1")] * 10, D(0), D(0), D(0))
    assert subtotal == D("1.0")  # the float sum would be 0.9999999999999999


def test_check_total_ok() -> None:
    assert (
        money.check_total(
            subtotal=D("100"),
            discount=D("10"),
            tax=D("13.50"),
            delivery_fee=D("15"),
            total_amount=D("118.50"),
            currency="SAR",
        )
        is None
    )


def test_check_total_mismatch() -> None:
    errors = money.check_total(
        subtotal=D("100"), discount=D("10"), tax=D("13.50"), delivery_fee=D("15"), total_amount=D("120"), currency="SAR"
    )
    assert errors == {"total_amount": "must equal subtotal - discount + tax + delivery_fee (118.50 SAR)"}


def test_check_total_compares_at_currency_precision() -> None:
    common: dict[str, Any] = {"subtotal": D("10.004"), "discount": D(0), "tax": D(0), "delivery_fee": D(0)}
    assert money.check_total(**common, total_amount=D("10.00"), currency="SAR") is None
    assert money.check_total(**common, total_amount=D("10.01"), currency="SAR") is not None
    # KWD has 3 places, so 10.004 and 10.00 differ there.
    assert money.check_total(**common, total_amount=D("10.00"), currency="KWD") is not None
    # JPY has none.
    yen: dict[str, Any] = {"subtotal": D("1000"), "discount": D(0), "tax": D("0.4"), "delivery_fee": D(0)}
    assert money.check_total(**yen, total_amount=D("1000"), currency="JPY") is None


def test_check_total_accepts_either_rounding() -> None:
    # Exact sum 10.010 -> 10.01; sum of rounded parts 10.01 + 0.01 = 10.02. Both are fine.
    common: dict[str, Any] = {"subtotal": D("10.005"), "discount": D(0), "tax": D("0.005"), "delivery_fee": D(0)}
    assert money.check_total(**common, total_amount=D("10.01"), currency="SAR") is None
    assert money.check_total(**common, total_amount=D("10.02"), currency="SAR") is None
    assert money.check_total(**common, total_amount=D("10.03"), currency="SAR") is not None


def test_check_total_negative_total() -> None:
    errors = money.check_total(
        subtotal=D("10"), discount=D("50"), tax=D(0), delivery_fee=D(0), total_amount=D(0), currency="SAR"
    )
    assert errors == {"discount": "must not exceed subtotal + tax + delivery_fee"}


def test_check_total_with_lines() -> None:
    kwargs: dict[str, Any] = {"discount": D(0), "tax": D(0), "delivery_fee": D(0), "currency": "SAR"}
    lines = [D("19.99"), D("5.01")]
    assert money.check_total(subtotal=D("25"), total_amount=D("25"), lines_totals=lines, **kwargs) is None
    errors = money.check_total(subtotal=D("30"), total_amount=D("30"), lines_totals=lines, **kwargs)
    assert errors == {"subtotal": "must equal the sum of the line totals (25.00)"}
    errors = money.check_total(subtotal=D("30"), total_amount=D("25"), lines_totals=iter(lines), **kwargs)
    assert errors is not None
    assert set(errors) == {"subtotal", "total_amount"}


# --- properties ---------------------------------------------------------------------------------

cents = st.integers(min_value=0, max_value=10**9)
two_place = cents.map(lambda c: Decimal(c).scaleb(-2))


@given(st.lists(cents, max_size=50), cents, cents, cents)
def test_sums_are_exact(line_cents: list[int], discount: int, tax: int, fee: int) -> None:
    lines = [Decimal(c).scaleb(-2) for c in line_cents]
    subtotal, total = money.compute_totals(lines, Decimal(discount).scaleb(-2), Decimal(tax).scaleb(-2), D(fee) / 100)
    assert subtotal == Decimal(sum(line_cents)).scaleb(-2)
    assert total == Decimal(sum(line_cents) - discount + tax + fee).scaleb(-2)
    if total >= 0:
        assert (
            money.check_total(
                subtotal=subtotal,
                discount=Decimal(discount).scaleb(-2),
                tax=Decimal(tax).scaleb(-2),
                delivery_fee=D(fee) / 100,
                total_amount=total,
                currency="SAR",
                lines_totals=lines,
            )
            is None
        )


@given(cents)
def test_json_float_input_is_what_the_client_wrote(c: int) -> None:
    # A client that writes 12.34 in JSON gets exactly 12.34, whichever way the JSON was parsed.
    text = str(Decimal(c).scaleb(-2))
    assert money.parse_money(json.loads(text), field="x") == Decimal(text)
    assert money.parse_money(orjson.loads(text), field="x") == Decimal(text)
    assert money.parse_money(text, field="x") == Decimal(text)


@given(
    st.decimals(min_value=0, max_value=money.MAX_AMOUNT, places=4, allow_nan=False, allow_infinity=False),
    st.sampled_from(["SAR", "USD", "JPY", "KWD", "BHD"]),
)
def test_json_output_round_trips(amount: Decimal, currency: str) -> None:
    number = money.to_json_number(amount, currency)
    assert Decimal(repr(number)) == money.quantize(amount, currency)
    assert Decimal(orjson.dumps(number).decode()) == money.quantize(amount, currency)


@given(st.decimals(min_value=-(10**6), max_value=10**6, places=6, allow_nan=False, allow_infinity=False))
def test_quantize_is_within_half_a_minor_unit(amount: Decimal) -> None:
    rounded = money.quantize(amount, "SAR")
    assert abs(rounded - amount) <= Decimal("0.005")
    assert rounded.as_tuple().exponent == -2

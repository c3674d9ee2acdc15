"""Exact money: parsing, ISO 4217 currencies, rounding, totals and JSON output.

Rules (DESIGN "Unified order"):

* All arithmetic is on :class:`decimal.Decimal`; floats never take part in a computation.
* Input is a JSON number or a decimal string. Amounts are stored exactly as given, with at most
  :data:`MAX_PLACES` (4) decimal places — enough for every ISO 4217 minor unit (CLF and UYW use 4),
  so a ``NUMERIC(_, 4)`` column holds every accepted value unchanged. More places are refused
  rather than silently rounded (a 422 the client can fix beats a total that quietly moved).
  Places beyond the currency's own minor unit (``10.125`` SAR) are accepted and kept; they are
  rounded only at the output edge and when comparing totals.
* Rounding is ROUND_HALF_UP to the currency's ISO 4217 minor unit (:func:`quantize`).
* Output: :func:`to_json_number` turns a quantized Decimal into an ``int`` (0-decimal currencies)
  or a ``float``, because orjson/json cannot write a Decimal as a number. This happens only at the
  output edge, after exact arithmetic, and is lossless for every value :func:`parse_money` accepts
  (≤ 10^12 with ≤ 3 decimals is ≤ 16 significant digits, which a double round-trips through its
  shortest repr). A float cannot keep trailing zeros, so 10.50 is written ``10.5``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Context, Decimal
from functools import lru_cache

from connectors.base import DECIMAL_TEXT, MAX_DECIMAL_TEXT

__all__ = [
    "CURRENCIES",
    "MAX_AMOUNT",
    "MAX_PLACES",
    "MoneyError",
    "check_total",
    "compute_totals",
    "currency_decimals",
    "is_currency",
    "normalize_currency",
    "parse_money",
    "quantize",
    "to_json_number",
]

MAX_PLACES = 4
MAX_AMOUNT = Decimal(10) ** 12
# Enough digits that no sum of bounded amounts is ever rounded by the context itself.
_CTX = Context(prec=50, rounding=ROUND_HALF_UP)
_ZERO = Decimal(0)
# Connectors read amounts with the same grammar, so ingest and the API accept the same text.
_NUMBER = DECIMAL_TEXT
_MAX_TEXT = MAX_DECIMAL_TEXT

#: Active ISO 4217 currency codes (incl. fund codes such as BOV, CLF, USN; ANG and its successor XCG
#: both listed during the 2025 changeover). Excluded: precious metals (XAU, XAG, XPD, XPT), bond-market
#: and accounting units (XBA–XBD, XDR, XSU, XUA), XTS (testing) and XXX (no currency): none has a
#: minor unit and none is a price an order is paid in.
CURRENCIES: frozenset[str] = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP
    BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB
    EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR
    MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB
    RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD
    TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    """.split()  # noqa: SIM905 - a table reads better than 170 one-per-line string literals
)

# ISO 4217 minor units that differ from the default of 2. ISO's table, not any one payment
# provider's (Stripe, for instance, treats HUF/TWD as 0-decimal for payouts; ISO says 2).
_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"), 0),
    **dict.fromkeys(("RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}


class MoneyError(ValueError):
    """An amount is not acceptable; ``field`` names the input, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    @property
    def details(self) -> dict[str, str]:
        """The ``{field: why}`` mapping used in the API's 422 ``details``."""
        return {self.field: self.reason}


def _to_decimal(value: object, field: str) -> Decimal:
    # bool is an int subclass; True would otherwise read as 1.
    if isinstance(value, bool) or value is None:
        raise MoneyError(field, "must be a number or a decimal string")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise MoneyError(field, "must be a finite number")
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MoneyError(field, "must be a finite number")
        # str() gives the shortest repr that round-trips, i.e. what the JSON text said: 0.1 -> "0.1",
        # whereas Decimal(0.1) would be 0.1000000000000000055511151231257827...
        return Decimal(str(value))
    if isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_TEXT or not _NUMBER.fullmatch(text):
            raise MoneyError(field, "must be a decimal number such as 12.50")
        return Decimal(text)
    raise MoneyError(field, "must be a number or a decimal string")


def _places(amount: Decimal) -> int:
    """Decimal places that carry information (trailing zeros do not: "10.5000" has 1)."""
    if amount.is_zero():
        return 0
    # Counted on the digit tuple rather than via normalize(), which would round to a context.
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite by construction
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exponent + trailing_zeros))


def _sum(values: Iterable[Decimal]) -> Decimal:
    # Built-in sum() would round in the thread's default 28-digit context.
    total = _ZERO
    for value in values:
        total = _CTX.add(total, value)
    return total


def parse_money(
    value: object,
    *,
    field: str,
    allow_negative: bool = False,
    max_places: int | None = MAX_PLACES,
) -> Decimal:
    """Parse a money input into an exact Decimal, or raise :class:`MoneyError`.

    Accepts an ``int``, a ``float`` (converted through ``str()`` so that 0.1 stays 0.1), a
    ``Decimal`` or a decimal string (``"12.50"``, surrounding spaces allowed; no ``_``, no
    ``NaN``/``Infinity``). Refuses booleans, ``None``, non-finite values, negatives unless
    ``allow_negative``, absolute values above 10^12, and more than ``max_places`` significant
    decimal places (default 4; trailing zeros do not count; ``None`` lifts the limit, e.g. for a
    connector that rounds a platform's 6-place tax figures itself). The result keeps the value
    exactly as given — it is not rounded to the currency (see the module docstring) — except that
    a positive exponent is expanded (``"1e2"`` → ``100``) and negative zero becomes zero.
    """
    amount = _to_decimal(value, field)
    if amount.is_signed() and not amount.is_zero() and not allow_negative:
        raise MoneyError(field, "must not be negative")
    if amount.copy_abs() > MAX_AMOUNT:  # copy_abs is exact; abs() rounds to the context
        raise MoneyError(field, "is too large (at most 1000000000000)")
    places = _places(amount)
    if max_places is not None and places > max_places:
        raise MoneyError(field, f"must have at most {max_places} decimal places")
    if amount.is_zero():
        return _ZERO  # drops "-0" and "0E+3" spellings
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent > 0:
        # "1E+2" (e.g. str(1e16) is "1e+16") would print in exponent form; make it a plain 100.
        return amount.quantize(Decimal(1), context=_CTX)
    return amount


def is_currency(code: str) -> bool:
    """True if ``code`` is an active ISO 4217 code in canonical form (three upper-case letters)."""
    return code in CURRENCIES


def normalize_currency(code: str) -> str | None:
    """Return ``code`` stripped and upper-cased if it is a known currency, else None."""
    canonical = code.strip().upper()
    return canonical if canonical in CURRENCIES else None


def currency_decimals(code: str) -> int:
    """ISO 4217 minor units of ``code``: 0 (JPY, KRW, …), 3 (BHD, KWD, OMR, …), 4 (CLF, UYW), else 2.

    Unknown codes get 2, the common case, so a caller never crashes on output; validate codes with
    :func:`is_currency` at input.
    """
    return _MINOR_UNITS.get(code.strip().upper(), 2)


@lru_cache(maxsize=1024)
def _minor_unit(currency: str) -> tuple[Decimal, bool]:
    """The currency's minor unit as a quantize exponent, and whether it has no decimals (hot: cached)."""
    decimals = currency_decimals(currency)
    return Decimal(1).scaleb(-decimals), decimals == 0


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round ``amount`` to the currency's minor unit, half away from zero (ROUND_HALF_UP)."""
    return amount.quantize(_minor_unit(currency)[0], rounding=ROUND_HALF_UP, context=_CTX)


def compute_totals(
    lines_totals: Iterable[Decimal], discount: Decimal, tax: Decimal, delivery_fee: Decimal
) -> tuple[Decimal, Decimal]:
    """Return ``(subtotal, total)``: subtotal = Σ line totals; total = subtotal − discount + tax + fee.

    Exact, not rounded (round with :func:`quantize` when presenting). The total may come out
    negative if the discount is larger than everything else; :func:`check_total` reports that.
    """
    subtotal = _sum(lines_totals)
    total = _CTX.add(_CTX.add(_CTX.subtract(subtotal, discount), tax), delivery_fee)
    return subtotal, total


def check_total(
    *,
    subtotal: Decimal,
    discount: Decimal,
    tax: Decimal,
    delivery_fee: Decimal,
    total_amount: Decimal,
    currency: str,
    lines_totals: Iterable[Decimal] | None = None,
) -> dict[str, str] | None:
    """Return ``{field: why}`` if the amounts do not add up, else None.

    ``total_amount`` must equal ``subtotal − discount + tax + delivery_fee`` at the currency's
    precision. Two roundings are accepted, because clients legitimately do either: rounding the
    exact sum, or summing the already-rounded components (what the client sees printed). With
    ``lines_totals`` the subtotal is also checked against their sum (rounded the same two ways).
    A discount that makes the total negative is reported on ``discount``.
    """
    errors: dict[str, str] = {}

    def matches(given: Decimal, exact: Decimal, parts: list[Decimal]) -> bool:
        rounded_sum = quantize(_sum(quantize(p, currency) for p in parts), currency)
        return quantize(given, currency) in {quantize(exact, currency), rounded_sum}

    if lines_totals is not None:
        lines = list(lines_totals)
        exact_subtotal = _sum(lines)
        if not matches(subtotal, exact_subtotal, lines):
            errors["subtotal"] = f"must equal the sum of the line totals ({quantize(exact_subtotal, currency)})"

    _, expected = compute_totals([subtotal], discount, tax, delivery_fee)
    if expected < 0:
        errors["discount"] = "must not exceed subtotal + tax + delivery_fee"
    elif not matches(total_amount, expected, [subtotal, -discount, tax, delivery_fee]):
        errors["total_amount"] = (
            f"must equal subtotal - discount + tax + delivery_fee ({quantize(expected, currency)} {currency})"
        )
    return errors or None


def to_json_number(amount: Decimal, currency: str) -> float | int:
    """Return ``amount`` rounded to the currency, as a value json/orjson write as a JSON number.

    ``int`` for 0-decimal currencies (``1500``, not ``1500.0``), else ``float``. Only for output:
    floats never feed back into arithmetic. Lossless for amounts up to 10^12 with up to 3 decimals
    (4-decimal currencies up to 10^11): ``Decimal(repr(result)) == quantize(amount, currency)``.
    """
    exponent, whole = _minor_unit(currency)
    rounded = amount.quantize(exponent, rounding=ROUND_HALF_UP, context=_CTX)
    return int(rounded) if whole else float(rounded)

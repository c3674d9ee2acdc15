"""Strict readers of platform JSON, shared by every connector.

Each reader takes a decoded JSON value and ``where`` (the field's path, e.g. ``products[0].price``) and
returns it in the hub's terms, or raises :class:`PayloadError` naming that field, never another exception.
The readers are pure: no I/O, no state.

Text is made storable rather than refused (:func:`clean_text`): PostgreSQL text cannot hold NUL and UTF-8
cannot encode a lone surrogate (``"\\ud800"`` is valid JSON), so NUL is removed and a lone surrogate becomes
U+FFFD. An order with a stray control character is stored, not failed.

Two families of payloads are read by rules of their own where their connectors were specified apart
(docs/connectors.md, "Malformed input"); those readers come in pairs:

* text: :func:`read_text` (the unified model, Shopify, WooCommerce: a string, or an integer written out)
  and :func:`read_string` (Salla, Zid: a string only, at most :data:`MAX_TEXT` characters);
* amounts: :func:`read_money` (a number or a plain decimal string) and :func:`read_amount` (Salla, Zid:
  any decimal notation, money objects, at most :data:`MAX_DECIMALS` decimals);
* quantities: :func:`read_quantity` (below 10^9) and :func:`read_decimal_quantity` (Salla, Zid: 0 … 10^7);
* addresses: :func:`read_address` (a flat object) and :func:`read_shipping_address` (Salla, Zid: nested).
"""

from __future__ import annotations

import json
import math
import re
from decimal import Context, Decimal
from typing import Any, Final, NoReturn

import orjson

from connectors.base import DECIMAL_TEXT, PayloadError, to_decimal, to_e164

MONEY_LIMIT: Final = Decimal(10) ** 15  # numeric(20, 4) holds less than 10**16; the margin keeps sums in range
MAX_DECIMALS: Final = 20  # read_amount; Zid states amounts with 14 decimals
MAX_TEXT: Final = 4000  # read_string
MAX_ID: Final = 255  # read_id
MAX_DEPTH: Final = 12  # nesting allowed inside a stored address object
MAX_QUANTITY: Final = 10**9  # read_quantity (exclusive)
MAX_DECIMAL_QUANTITY: Final = 10**7  # read_decimal_quantity (inclusive)
# Whatever slips past the explicit checks is still the sender's fault, never ours: a connector's parse()
# re-raises these as PayloadError, so only ConnectorErrors ever leave a connector.
MALFORMED: Final = (KeyError, IndexError, TypeError, ValueError, AttributeError, ArithmeticError, RecursionError)

_WIDE: Final = Context(prec=60)  # amounts are < 10**15 with <= 20 decimals: their sums stay exact
_CURRENCY: Final = re.compile(r"[A-Z]{3}")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")  # json.loads joins valid pairs: any left is lone
_Scalar = str | int | float | bool | None


# ---- the body and its containers -----------------------------------------------------------------


# 19 digits in a row: a number orjson might not keep exactly (it turns integers past 64 bits into floats).
# Found by mapping every digit to "0" and searching for 19 zeros: a tenth of what a regex search costs.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19


def load_json(body: bytes) -> Any:
    """Decode a UTF-8 JSON body; bad UTF-8, bad JSON, NaN/Infinity and absurd nesting are PayloadErrors.

    orjson first (the hot path; the same values as ``json`` for what it accepts), the standard
    library whenever orjson refuses the body or a number in it could exceed 64 bits: integers stay
    exact, and lone surrogates, ``1e400`` and the error messages stay what they always were.
    """
    if _LONG_DIGITS not in body.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # the exact decoder below accepts it or says what is wrong
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError as exc:
        raise PayloadError("body nests too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, and integers past Python's 4300-digit limit
        raise PayloadError(f"body is not JSON: {str(exc)[:120]}") from exc


def _refuse_constant(name: str) -> NoReturn:
    # Postgres JSONB and NUMERIC refuse NaN and Infinity, so refuse them at the door.
    raise PayloadError(f"body holds {name}, which is not a JSON number")


def describe(value: Any) -> str:
    """What a value is, for error messages (``an object``, ``a string``, ``null``, …), never the value itself."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def read_object(value: Any, where: str) -> dict[str, Any]:
    """A JSON object."""
    if not isinstance(value, dict):
        raise PayloadError(f"{where}: expected an object, got {describe(value)}")
    return value


def read_opt_object(value: Any, where: str) -> dict[str, Any] | None:
    """A JSON object, or None when absent; ``[]`` reads as absent too (PHP, so Salla and Zid, sends {} as [])."""
    if value is None or value == []:
        return None
    return read_object(value, where)


def read_list(value: Any, where: str) -> list[Any]:
    """A JSON array; None reads as empty."""
    return read_opt_list(value, where) or []


def read_opt_list(value: Any, where: str) -> list[Any] | None:
    """A JSON array, or None when absent."""
    if value is not None and not isinstance(value, list):
        raise PayloadError(f"{where}: expected an array, got {describe(value)}")
    return value


# ---- text --------------------------------------------------------------------------------------------


def clean_text(text: str) -> str:
    """``text`` fit for storage: NUL characters removed, lone UTF-16 surrogates replaced with U+FFFD."""
    if text.isascii():  # no surrogate can be there (a flag CPython keeps): skip the regex, a third of the cost
        return text.replace("\x00", "")
    return _SURROGATE.sub("\ufffd", text.replace("\x00", ""))


def read_text(value: Any, where: str) -> str | None:
    """A string (or an integer, written out: ids come either way), cleaned and trimmed; None when absent or blank."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**30:
        return str(value)
    return _text(value, where)


def read_string(value: Any, where: str) -> str | None:
    """Salla's and Zid's text: a JSON string only, cleaned and trimmed, at most :data:`MAX_TEXT` characters."""
    return _text(value, where, MAX_TEXT)


def _text(value: Any, where: str, max_length: int | None = None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{where}: expected a string, got {describe(value)}")
    text = clean_text(value).strip()
    if max_length is not None and len(text) > max_length:
        raise PayloadError(f"{where}: longer than {max_length} characters")
    return text or None


def read_id(value: Any, where: str) -> str:
    """A required id: see :func:`read_opt_id`."""
    found = read_opt_id(value, where)
    if found is None:
        raise PayloadError(f"{where}: missing")
    return found


def read_opt_id(value: Any, where: str) -> str | None:
    """An id or code sent as a non-negative integer or a string (at most 255 characters), as a string."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PayloadError(f"{where}: expected an id, got {describe(value)}")
    if isinstance(value, str):
        return _text(value, where, MAX_ID)
    if not 0 <= value < 10**30:
        raise PayloadError(f"{where}: out of range")
    return str(value)


def read_opt_currency(value: Any, where: str) -> str | None:
    """An ISO 4217 code in any case, upper-cased; None when absent or blank."""
    code = read_text(value, where)
    if code is None:
        return None
    if not _CURRENCY.fullmatch(code.upper()):
        raise PayloadError(f"{where}: expected an ISO 4217 code like 'SAR', got {value!r:.40}")
    return code.upper()


def read_currency(value: Any, where: str) -> str:
    """A required ISO 4217 code: see :func:`read_opt_currency`."""
    code = read_opt_currency(value, where)
    if code is None:
        raise PayloadError(f"{where}: expected an ISO 4217 code like 'SAR', got {value!r:.40}")
    return code


def to_phone(number: str | None, country_code: str | None = None) -> str | None:
    """E.164 from a number that may lack its "+" (966501234567) or come split from its country code."""
    if number is None:
        return None
    digits = country_code.strip().lstrip("+") if country_code else ""
    if number.isdigit() and not number.startswith("0") and len(number) >= 11:
        number = "+" + number  # already international, only the "+" is missing
    elif digits.isdigit() and number.isdigit():
        number = "+" + digits + number.lstrip("0")
    return to_e164(number)


# ---- numbers -----------------------------------------------------------------------------------


def read_money(value: Any, where: str) -> Decimal:
    """An exact amount from a JSON number or a decimal string (``"12.50"``, ``"1e3"``: the API's grammar,
    :data:`connectors.base.DECIMAL_TEXT`), below :data:`MONEY_LIMIT`."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise PayloadError(f"{where}: expected a number or a decimal string, got {describe(value)}")
    if isinstance(value, int) and abs(value) >= MONEY_LIMIT:  # before str(): huge ints are slow to print
        raise PayloadError(f"{where}: amount out of range")
    if isinstance(value, str) and not DECIMAL_TEXT.fullmatch(value.strip()):  # the API's grammar (hub.money)
        raise PayloadError(f"{where}: not a decimal number: {value[:40]!r}")
    return _in_range(to_decimal(value, field_name=where), where)


def read_amount(value: Any, where: str) -> Decimal:
    """An exact amount as Salla and Zid send it: a number, a decimal string in any notation (``"1e3"``) or a
    money object ``{"amount": …}``; below :data:`MONEY_LIMIT`, at most :data:`MAX_DECIMALS` decimals."""
    for _ in range(2):  # Salla nests money: tax.amount = {"amount": 0, "currency": "SAR"}
        if isinstance(value, dict):
            value = value.get("amount")
    if isinstance(value, dict | list):
        raise PayloadError(f"{where}: expected a number, got {describe(value)}")
    amount = to_decimal(value, field_name=where)
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMALS:
        raise PayloadError(f"{where}: more than {MAX_DECIMALS} decimals")
    return _in_range(amount, where)


def read_opt_amount(value: Any, where: str) -> Decimal | None:
    """:func:`read_amount`, or None when absent."""
    return None if value is None else read_amount(value, where)


def _in_range(amount: Decimal, where: str) -> Decimal:
    if abs(amount) >= MONEY_LIMIT:
        raise PayloadError(f"{where}: amount out of range")
    return amount


def exact_sum(*values: Decimal | None) -> Decimal:
    """The exact sum (a wide context, so many-decimal amounts never round); None counts as zero."""
    total = Decimal(0)
    for value in values:
        if value is not None:
            total = _WIDE.add(total, value)
    return total


def read_quantity(value: Any, where: str) -> int:
    """A whole number in 0 … :data:`MAX_QUANTITY` − 1, sent as ``2``, ``2.0`` or ``"2"``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        if len(value.strip()) > 12:
            raise PayloadError(f"{where}: quantity out of range")
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(f"{where}: expected a whole number, got {describe(value)}")
    if not 0 <= value < MAX_QUANTITY:
        raise PayloadError(f"{where}: quantity out of range")
    return value


def read_decimal_quantity(value: Any, where: str) -> int:
    """Salla's and Zid's quantity: a whole number in any decimal notation (``2``, ``"2.0"``), 0 … 10^7."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PayloadError(f"{where}: expected a whole number, got {describe(value)}")
    try:
        number = Decimal(str(value).strip())
    except ArithmeticError as exc:
        raise PayloadError(f"{where}: not a number") from exc
    if not number.is_finite() or number != number.to_integral_value() or not 0 <= number <= MAX_DECIMAL_QUANTITY:
        raise PayloadError(f"{where}: not a plausible quantity")
    return int(number)


# ---- addresses -----------------------------------------------------------------------------------------


def read_address(value: Any, where: str) -> str | dict[str, Any] | None:
    """A string, or a flat object of scalars (what platforms send), kept as given with its text cleaned."""
    if not isinstance(value, dict):
        return read_text(value, where)
    address: dict[str, _Scalar] = {}
    for raw_key, item in value.items():
        key = clean_text(raw_key)
        if not isinstance(item, _Scalar):
            raise PayloadError(f"{where}.{key[:40]}: expected a string or a number, got {describe(item)}")
        if isinstance(item, int) and not -(2**63) <= item < 2**63:  # JSON encoders (orjson) stop at 64 bits
            raise PayloadError(f"{where}.{key[:40]}: number out of range")
        address[key] = clean_text(item) if isinstance(item, str) else item
    return address


def read_shipping_address(shipping: Any, where: str) -> dict[str, Any] | str | None:
    """Salla's and Zid's ``shipping.address`` as sent (a string or an object); None for pickup and digital orders."""
    node = read_opt_object(shipping, where)
    found = node.get("address") if node else None
    if isinstance(found, str):
        return read_string(found, f"{where}.address")
    found = read_opt_object(found, f"{where}.address")
    return clean_json(found, f"{where}.address") if found else None


def clean_json(value: Any, where: str, depth: int = 0) -> Any:
    """A copy of a JSON value fit for storage: text cleaned, nesting bounded, numbers finite."""
    if depth > MAX_DEPTH:
        raise PayloadError(f"{where}: nested too deeply")
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(key)): clean_json(item, where, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [clean_json(item, where, depth + 1) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise PayloadError(f"{where}: holds a non-finite number")
    return value


# ---- signatures ------------------------------------------------------------------------------------------


def as_bytes(value: str) -> bytes:
    """``value`` as UTF-8 bytes for ``hmac.compare_digest`` (which needs bytes for non-ASCII input)."""
    return value.encode("utf-8", "surrogatepass")

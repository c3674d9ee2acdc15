"""Field types shared by the API's request models: exact money, ids, statuses, optional text.

Each type validates one field and fails with a message that reads well after the field's name in a
422 ``details`` mapping (``{"products.0.price": "must not be negative"}``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, EmailStr, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from hub.money import MoneyError, normalize_currency, parse_money
from hub.orders.transitions import FULFILLMENT_STATUSES, PAYMENT_STATUSES, STATUS_ALIASES, STATUSES, canonical_status

CREATED_BY = ("manual", "ai_agent", "api", "web_chat", "webhook")
_MAX_REF = 200


def _fail(code: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(code, message)


def _money(value: Any) -> Decimal:
    try:
        return parse_money(value, field="value")
    except MoneyError as exc:
        raise _fail("money", exc.reason) from exc


def _ref(value: Any) -> str:
    # Seed 000 writes ids as integers (``"product_id": 5``); ours are strings, so both are accepted
    # and compared as text. Booleans are not ids even though bool is an int subclass.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _fail("ref", "must be a string or an integer id")
    text = str(value).strip()
    if not text or len(text) > _MAX_REF:
        raise _fail("ref", f"must be 1 to {_MAX_REF} characters")
    return text


def _quantity(value: Any) -> Any:
    if isinstance(value, bool):
        raise _fail("quantity", "must be an integer")
    return value


def _blank_is_none(value: Any) -> Any:
    # Clients often send "" for "no value" (seed 004 shows ``"notes": ""``); treat it as absent
    # for optional identifiers such as email and phone rather than failing their format check.
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _currency(value: Any) -> str:
    if not isinstance(value, str):
        raise _fail("currency", "must be an ISO 4217 code such as SAR")
    code = normalize_currency(value)
    if code is None:
        raise _fail("currency", "must be an ISO 4217 code such as SAR")
    return code


def _status(value: Any) -> str:
    status = canonical_status(value) if isinstance(value, str) else None
    if status is None:
        raise _fail("status", "must be one of " + ", ".join((*STATUSES, *STATUS_ALIASES)))
    return status


def _one_of(allowed: tuple[str, ...]) -> Any:
    def check(value: Any) -> str:
        text = value.strip().lower() if isinstance(value, str) else None
        if text not in allowed:
            raise _fail("choice", "must be one of " + ", ".join(allowed))
        return text

    return check


def _source(value: Any) -> str:
    if not isinstance(value, str):
        raise _fail("source", "must be a string such as manual, salla or shopify")
    text = value.strip().lower()
    if not text or len(text) > 50 or not all(c.isalnum() or c in "_-." for c in text):
        raise _fail("source", "must be 1 to 50 letters, digits, '_', '-' or '.' (e.g. manual, salla)")
    return text


_MONEY_SCHEMA = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": r"^\d+(\.\d{1,4})?$"}]}

#: An exact, non-negative amount: a JSON number or a decimal string, at most 4 decimal places.
Money = Annotated[Decimal, BeforeValidator(_money), WithJsonSchema(_MONEY_SCHEMA)]
#: An id we store (string) that clients may also send as an integer.
Ref = Annotated[str, BeforeValidator(_ref), WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}]})]
Quantity = Annotated[int, BeforeValidator(_quantity), Field(ge=1, le=1_000_000)]
Currency = Annotated[str, BeforeValidator(_currency), WithJsonSchema({"type": "string", "pattern": "^[A-Z]{3}$"})]
Status = Annotated[
    str, BeforeValidator(_status), WithJsonSchema({"type": "string", "enum": [*STATUSES, *STATUS_ALIASES]})
]
PaymentStatus = Annotated[
    str, BeforeValidator(_one_of(PAYMENT_STATUSES)), WithJsonSchema({"type": "string", "enum": list(PAYMENT_STATUSES)})
]
FulfillmentStatus = Annotated[
    str,
    BeforeValidator(_one_of(FULFILLMENT_STATUSES)),
    WithJsonSchema({"type": "string", "enum": list(FULFILLMENT_STATUSES)}),
]
CreatedBy = Annotated[
    str, BeforeValidator(_one_of(CREATED_BY)), WithJsonSchema({"type": "string", "enum": list(CREATED_BY)})
]
Source = Annotated[str, BeforeValidator(_source), WithJsonSchema({"type": "string", "examples": ["manual", "salla"]})]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=5000)]
Phone = Annotated[Annotated[str, Field(max_length=40)] | None, BeforeValidator(_blank_is_none)]
Email = Annotated[EmailStr | None, BeforeValidator(_blank_is_none)]

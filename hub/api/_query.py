"""Query-string helpers: pagination (``page``, ``per_page`` alias ``limit``) and the list answer.

Every list route answers through :func:`listed`: ``data``, ``meta`` and, beside them, seed 004's
top-level ``count``, ``total_count``, ``page``, ``limit``, ``has_next``. ``page`` is bounded so its
row offset always fits Postgres's bigint (10^18 is a 422, never a 500).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from hub.errors import ValidationFailed
from hub.web.responses import json_response

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
#: Far past any real row (10^9 pages of 100); keeps ``offset`` well inside a bigint.
MAX_PAGE = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Page:
    """A requested page."""

    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def _int(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > 20:  # int() of a huge digit string is slow work for an attacker's input
        raise ValidationFailed(details={name: "is out of range"})
    try:
        return int(raw)
    except ValueError as exc:
        raise ValidationFailed(details={name: "must be an integer"}) from exc


def page_of(query: Mapping[str, str]) -> Page:
    """``page`` (from 1) and ``per_page``/``limit`` (1..100, default 20); 422 naming a bad one."""
    page = _int(query, "page")
    page = 1 if page is None else page
    per_page = _int(query, "per_page")
    name = "per_page"
    if per_page is None:
        per_page, name = _int(query, "limit"), "limit"
    per_page = DEFAULT_PER_PAGE if per_page is None else per_page
    if not 1 <= page <= MAX_PAGE:
        raise ValidationFailed(details={"page": f"must be between 1 and {MAX_PAGE}"})
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ValidationFailed(details={name: f"must be between 1 and {MAX_PER_PAGE}"})
    return Page(page=page, per_page=per_page)


def list_meta(page: Page, total: int) -> dict[str, Any]:
    """DESIGN's list meta: ``current_page``, ``per_page``, ``total``, ``has_next``."""
    return {
        "current_page": page.page,
        "per_page": page.per_page,
        "total": total,
        "has_next": page.offset + page.per_page < total,
    }


def listed(
    data: Sequence[Any],
    page: Page,
    total: int,
    *,
    message: str,
    has_next: bool | None = None,
    meta: Mapping[str, Any] | None = None,
) -> web.Response:
    """A list answer: DESIGN's ``data``/``meta``/``message`` and seed 004's top-level page fields.

    ``has_next`` overrides the count-based one (a list that fetched one row more knows better);
    ``meta`` adds route-specific meta fields.
    """
    list_info = list_meta(page, total)
    if has_next is not None:
        list_info["has_next"] = has_next
    list_info.update(meta or {})
    body = {
        "success": True,
        "data": list(data),
        "meta": list_info,
        "message": message,
        "count": len(data),
        "total_count": total,
        "page": page.page,
        "limit": page.per_page,
        "has_next": list_info["has_next"],
    }
    return json_response(body)

"""Query-string helpers: pagination (``page``, ``per_page`` alias ``limit``) and list meta."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.errors import ValidationFailed

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
#: Keeps ``OFFSET`` a Postgres bigint (a larger page was a 500); no list is this long.
MAX_PAGE = 10_000_000


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

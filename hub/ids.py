"""Prefixed, time-sortable ids (``ord_01J…``): a ULID after a short prefix naming the entity."""

from __future__ import annotations

from ulid import ULID


def new_id(prefix: str) -> str:
    """A new id such as ``ord_01JD3…``; ids made later sort after ids made earlier."""
    return f"{prefix}_{ULID()}"

"""Shared hypothesis material for the connectors' "only PayloadError may escape" tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: Arbitrary JSON values, small enough to keep each example fast.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (the value itself first), to mutate one place at a time."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    return [prefix] + [path for key, child in children for path in paths(child, (*prefix, key))]


def replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A copy of ``value`` with the node at ``path`` replaced by ``new``."""
    if not path:
        return new
    copy = value.copy()
    copy[path[0]] = replace(value[path[0]], path[1:], new)
    return copy

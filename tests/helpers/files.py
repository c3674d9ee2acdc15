"""Files that live beside the tests (recorded platform payloads)."""

from __future__ import annotations

from pathlib import Path


def data_path(*parts: str) -> Path:
    """A path under tests/."""
    return Path(__file__).parent.parent.joinpath(*parts)

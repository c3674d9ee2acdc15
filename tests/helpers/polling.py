"""Waiting for a condition that another task or process makes true."""

from __future__ import annotations

import asyncio
import time
from typing import Any


async def eventually(check: Any, *, timeout: float = 10.0, interval: float = 0.05) -> Any:  # noqa: ASYNC109
    """Await ``check()`` until it returns a truthy value (or fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value: {value!r})")
        await asyncio.sleep(interval)

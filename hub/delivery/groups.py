"""Finished attempts, taken in groups for recording (group commit).

A group is whatever finished while the previous one was being written. At low rates (one order every
few milliseconds) that is one attempt, and each would cost a statement of its own, so a small group
waits up to :data:`RECORD_LINGER` for more. The subscriber has its webhook by then: only the rows'
``succeeded`` appear that much later (``docs/webhooks.md``, "Record").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["RECORD_GROUP", "RECORD_LINGER", "next_group"]

#: How long a small group of finished attempts waits for more before it is recorded.
RECORD_LINGER = 0.010
#: ... unless it has this many already.
RECORD_GROUP = 32

T = TypeVar("T")


async def next_group(
    finished: asyncio.Queue[T | None], within: float | None, *, may_linger: Callable[[], bool]
) -> list[T | None]:
    """What ``finished`` holds (waiting up to ``within`` seconds for a first entry; [] if none came).

    ``None`` entries are signals ("claim now"), returned like the rest and never waited past. A group
    smaller than :data:`RECORD_GROUP` waits up to :data:`RECORD_LINGER` for more while ``may_linger()``.
    """
    if finished.empty():
        try:
            async with asyncio.timeout(within):
                first = await finished.get()
        except TimeoutError:
            return []
        group = [first]
    else:
        group = []
    while not finished.empty():
        group.append(finished.get_nowait())
    deadline = time.monotonic() + RECORD_LINGER
    while group and None not in group and len(group) < RECORD_GROUP and may_linger():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            async with asyncio.timeout(left):
                group.append(await finished.get())
        except TimeoutError:
            break
        while not finished.empty():
            group.append(finished.get_nowait())
    return group

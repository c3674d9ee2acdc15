"""A real arq worker (the production one) running in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from hub.settings import Settings


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, **overrides: Any) -> AsyncIterator[Any]:
    """A real arq worker (workers.main.create_worker) in the test's event loop, stopped gracefully at the end."""
    from workers.main import create_worker, stop_gracefully

    instance = create_worker(settings, handle_signals=False, **overrides)
    task = asyncio.create_task(instance.main())
    try:
        yield instance
    finally:
        await stop_gracefully(instance, task, grace=10)

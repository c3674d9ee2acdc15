"""Typed dependencies shared by every job of a worker process (built once, in the start-up hook)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub.delivery.engine import DeliveryEngine
from hub.settings import Settings
from workers.wakeups import Wakeups

CTX_KEY = "hub"

#: Ingest batches one process runs at once while a backlog lasts: one parses while the other waits on
#: Postgres, so the process's CPU and the database's work overlap.
INGEST_BATCHES = 2


@dataclass
class WorkerContext:
    """What jobs use: settings, database pool and sessions, Redis, one HTTP client, the delivery engine."""

    settings: Settings
    pool: asyncpg.Pool
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    http: aiohttp.ClientSession
    # the process's delivery pipeline and its ways in (hub.delivery.engine)
    deliveries: DeliveryEngine
    # the background loops that wake ingest and deliveries (None: a context built without them, in tests)
    wakeups: Wakeups | None = None
    # ingest batches in flight in this process: one, plus a helper while a backlog lasts (see
    # workers.ingest); correctness between batches comes from the database, as between processes
    ingest_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(INGEST_BATCHES))
    ingest_helper: asyncio.Task[int] | None = None
    # ingest work started outside arq's jobs: a graceful stop waits for it too
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def stopping(self) -> asyncio.Event:
        """Set when the worker is asked to stop: jobs finish what they hold and claim nothing new."""
        return self.deliveries.stopping


def deps(ctx: dict[str, Any]) -> WorkerContext:
    """The typed context from arq's ``ctx`` dict."""
    value: WorkerContext = ctx[CTX_KEY]
    return value

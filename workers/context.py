"""Typed dependencies shared by every job of a worker process (built once at start-up)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import aiohttp
import asyncpg
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub.db import Conn
from hub.delivery.claims import Leased
from hub.settings import Settings

CTX_KEY = "hub"


@dataclass(eq=False)
class EndpointGate:
    """This process's hold on one webhook endpoint: its send slots and how many claimed rows it holds."""

    slots: asyncio.Semaphore
    held: int = 0


#: Ingest batches one process runs at once while a backlog lasts: one parses while the other waits on
#: Postgres, so the process's CPU and the database's work overlap.
INGEST_BATCHES = 2


@dataclass
class WorkerContext:
    """What jobs use: settings, database pool and sessions, Redis, one HTTP client session."""

    settings: Settings
    pool: asyncpg.Pool
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    http: aiohttp.ClientSession
    # ingest batches in flight in this process: one, plus a helper while a backlog lasts (see
    # workers.ingest); correctness between batches comes from the database, as between processes
    ingest_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(INGEST_BATCHES))
    ingest_helper: asyncio.Task[int] | None = None
    # set when the worker is asked to stop: jobs finish what they hold and claim nothing new
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # names this process as the owner of the delivery leases it takes (see hub.delivery.claims)
    worker_id: str = field(default_factory=lambda: uuid4().hex)
    # per endpoint, shared by every delivery job of this process: the cap on requests in flight
    delivery_gates: dict[str, EndpointGate] = field(default_factory=dict)
    # the process's running delivery loop (workers.deliveries), which later wake-up jobs feed
    delivery_pipeline: object | None = None
    # hands freshly committed delivery ids to this process's own delivery pipeline (set by a running
    # worker; None: they go through Redis, hub.queue.DELIVERY_WAKE)
    local_delivery_wake: Callable[[list[str]], None] | None = None
    # in an ingest transaction, leases its fresh delivery ids for this process (given the monotonic
    # time taken before it began); after the commit, hands them to the pipeline (set with the above)
    lease_deliveries: Callable[[Conn, list[str], float], Awaitable[Leased | None]] | None = None
    take_deliveries: Callable[[Leased], None] | None = None
    # work started outside arq's jobs (a woken delivery pipeline): a graceful stop waits for it too
    background: set[asyncio.Task[Any]] = field(default_factory=set)


def deps(ctx: dict[str, Any]) -> WorkerContext:
    """The typed context from arq's ``ctx`` dict."""
    value: WorkerContext = ctx[CTX_KEY]
    return value

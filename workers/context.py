"""Typed dependencies shared by every job of a worker process (built once at start-up)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub.settings import Settings

CTX_KEY = "hub"


@dataclass
class WorkerContext:
    """What jobs use: settings, database pool and sessions, Redis, one HTTP client session."""

    settings: Settings
    pool: asyncpg.Pool
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    http: aiohttp.ClientSession
    # one ingest batch at a time per process: batches grow under load and one worker applies
    # events in arrival order (correctness across processes comes from the database, not this)
    ingest_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # set when the worker is asked to stop: jobs finish what they hold and claim nothing new
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def deps(ctx: dict[str, Any]) -> WorkerContext:
    """The typed context from arq's ``ctx`` dict."""
    value: WorkerContext = ctx[CTX_KEY]
    return value

"""Typed dependencies shared by every job of a worker process (built once at start-up)."""

from __future__ import annotations

from dataclasses import dataclass
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


def deps(ctx: dict[str, Any]) -> WorkerContext:
    """The typed context from arq's ``ctx`` dict."""
    value: WorkerContext = ctx[CTX_KEY]
    return value

"""Every ``web.AppKey`` and request key of the hub, typed, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import ClientSession, web
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub.api._router import Router
from hub.db import TtlCache
from hub.ingest.store import GroupCommitter
from hub.ops.metrics import HttpMetrics
from hub.orders.export import ExportGate
from hub.settings import Settings
from hub.web.ratelimit import Limiter


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the organization a key maps to (the test twin for ``sk_test_`` keys)."""

    organization_id: str
    key_id: str
    mode: str


SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
PG_POOL = web.AppKey("pg_pool", asyncpg.Pool)
#: Ingest's own connections (the receiver's lookups and the group commits): no other path takes them.
INGEST_POOL = web.AppKey("ingest_pool", asyncpg.Pool)
EXPORTS = web.AppKey("exports", ExportGate)
REDIS = web.AppKey("redis", ArqRedis)
HTTP = web.AppKey("http", ClientSession)
INBOUND = web.AppKey("inbound", GroupCommitter)
LIMITER = web.AppKey("limiter", Limiter)
CONNECTION_CACHE = web.AppKey("connection_cache", TtlCache[str, Any])
#: Active API keys by the SHA-256 of the key, with when they were read (``hub.web.middleware``).
KEY_CACHE = web.AppKey("key_cache", TtlCache[str, Principal])
HTTP_METRICS = web.AppKey("http_metrics", HttpMetrics)
#: Every API router, in match order: what ``/openapi.json`` documents (read from the app, not imported).
ROUTERS = web.AppKey("routers", list[Router])

PRINCIPAL = web.RequestKey("principal", Principal)

"""Fixtures for the ops view: an app with an ops token, and an arq Redis client (state: tests.helpers.ops_state)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from hub import queue
from hub.app import create_app
from hub.settings import Settings
from tests.helpers.ops_state import OPS_TOKEN


@pytest.fixture(scope="session")
def ops_settings(settings: Settings) -> Settings:
    """The run's settings with an ops token."""
    return settings.model_copy(update={"ops_token": SecretStr(OPS_TOKEN)})


@pytest.fixture
async def ops_client(ops_settings: Settings, db: asyncpg.Connection) -> AsyncIterator[TestClient[Any, Any]]:
    """The real app with an ops token, on a clean database."""
    async with TestClient(TestServer(create_app(ops_settings), host="127.0.0.1")) as test_client:
        yield test_client


@pytest.fixture
async def redis_client(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[Any]:
    """An arq Redis pool on the run's (freshly flushed) Redis database."""
    assert settings.redis_url is not None
    client = await queue.connect(settings.redis_url)
    try:
        yield client
    finally:
        await client.aclose()

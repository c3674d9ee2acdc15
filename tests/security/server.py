"""A real ``hub serve`` process on 127.0.0.1 for tests that need the production server setup.

It runs on the test run's own database and Redis (the ``settings`` fixture), so it needs no
embedded servers; it is stopped (SIGTERM, then SIGKILL) when the context exits, also on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from hub.settings import Settings


@dataclass(frozen=True, slots=True)
class Served:
    """Where the server listens, and its log."""

    base_url: str
    port: int
    log: Path


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


@contextlib.asynccontextmanager
async def hub_serve(settings: Settings, log_dir: Path, **env: str) -> AsyncIterator[Served]:
    """``hub serve`` with ``settings``' database and Redis plus ``env`` (``HUB_*`` values)."""
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    environ.update(
        {
            "HUB_DATABASE_URL": settings.database_url or "",
            "HUB_REDIS_URL": settings.redis_url or "",
            "HUB_DATA_DIR": str(log_dir / "data"),
            "HUB_WEBHOOK_ALLOW_LOOPBACK": "true",
            "HUB_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "HUB_LOG_LEVEL": "warning",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
    )
    log = log_dir / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_pdeathsig,  # noqa: PLW1509
        )
    served = Served(f"http://127.0.0.1:{port}", port, log)
    try:
        await _wait_ready(proc, served)
        yield served
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 35)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _wait_ready(proc: asyncio.subprocess.Process, served: Served, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while True:
            if proc.returncode is not None:
                raise AssertionError(f"hub serve exited early:\n{served.log.read_text(errors='replace')[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"{served.base_url}/readyz") as resp:
                    if resp.status == 200:
                        return
            if time.monotonic() > deadline:
                raise AssertionError(f"hub serve not ready in {within} s:\n{served.log.read_text()[-3000:]}")
            await asyncio.sleep(0.1)

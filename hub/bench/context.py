"""What every phase of a bench run shares: the plan, the processes, the tenant and the results."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
from arq.connections import ArqRedis
from rich.markup import escape

from hub.bench.ceilings import Ceilings, Load
from hub.bench.infra import BenchError, Infra, Unavailable
from hub.bench.procs import MemoryWatch, Proc, Processes
from hub.bench.report import Figure, missing

#: The end-to-end phase's rate, at which ``cpu_per_order_ms`` and its ceiling are defined (issue 22).
E2E_RATE = 200.0


@dataclass(frozen=True)
class Plan:
    """Counts and durations of every phase; ``--quick`` and ``--scale`` shrink them."""

    quick: bool
    scale: float
    burst_count: int
    burst_seconds: float
    concurrency: int
    ack_rate: float
    ack_seconds: float
    processing_events: int
    delivery_count: int
    drain_seconds: float
    e2e_rate: float
    e2e_seconds: float
    api_orders: int
    api_requests: int
    ceiling: Load

    @classmethod
    def make(
        cls,
        *,
        quick: bool,
        scale: float = 1.0,
        batch_size: int = 200,
        endpoint_concurrency: int = 8,
        e2e_rate: float = E2E_RATE,
    ) -> Plan:
        def n(full: int, fast: int, floor: int = 20) -> int:
            return max(floor, int((fast if quick else full) * scale))

        def s(full: float, fast: float, floor: float = 0.5) -> float:
            return max(floor, (fast if quick else full) * scale)

        return cls(
            quick=quick,
            scale=scale,
            burst_count=n(60_000, 15_000),
            burst_seconds=s(10, 3),
            concurrency=32,
            ack_rate=1000.0,
            ack_seconds=s(10, 3),
            processing_events=n(20_000, 4_000),
            delivery_count=n(20_000, 4_000),
            drain_seconds=s(60, 15, floor=10),
            e2e_rate=e2e_rate,
            e2e_seconds=s(20, 5) * E2E_RATE / e2e_rate,  # the same number of orders at any rate
            api_orders=n(1_000_000, 100_000, floor=200),
            api_requests=n(500, 200),
            ceiling=Load(
                seconds=s(5, 2.5),
                count=n(60_000, 15_000),
                concurrency=32,
                ack_rate=1000.0,
                ack_seconds=s(10, 3),
                e2e_rate=E2E_RATE,  # the relay ceiling, at the rate the e2e figures are defined for
                e2e_seconds=s(10, 3),
                delivery_concurrency=max(endpoint_concurrency, 32),
                upsert_rows=n(40_000, 16_000, floor=400),
                batch_size=batch_size,
                arq_jobs=n(10_000, 2_000),
            ),
        )


@dataclass
class Tenant:
    """The organization the phases work in, its key, its Salla connection and its endpoint."""

    organization_id: str
    key: str
    connection_id: str
    connection_secret: str
    endpoint_id: str | None = None
    endpoint_secret: str | None = None


@dataclass
class Results:
    """What a run found: figures, ceilings, and the phases that failed."""

    ceilings: Ceilings = field(default_factory=Ceilings)
    figures: dict[str, Figure] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, figure: Figure) -> None:
        self.figures[figure.name] = figure

    def fail(self, reason: str, figures: tuple[str, ...]) -> None:
        """Record a failed phase; its figures not yet measured become missing with the reason."""
        self.failures.append(reason)
        self.unavailable(reason, figures)

    def unavailable(self, reason: str, figures: tuple[str, ...]) -> None:
        for name in figures:
            if name not in self.figures:
                self.add(missing(name, reason))


@dataclass
class Run:
    """State shared by the phases of one run."""

    plan: Plan
    infra: Infra
    procs: Processes
    memory: MemoryWatch
    log: Callable[[str], None]
    results: Results
    api: Proc | None = None
    api_url: str = ""
    worker: Proc | None = None
    receiver_url: str = ""
    ceiling_secret: str = ""
    tenant: Tenant | None = None
    pool: asyncpg.Pool | None = None
    redis: ArqRedis | None = None
    http: aiohttp.ClientSession | None = None

    @property
    def ceilings(self) -> Ceilings:
        return self.results.ceilings

    def add(self, figure: Figure) -> None:
        self.results.add(figure)

    def need_pool(self) -> asyncpg.Pool:
        if self.pool is None:
            raise BenchError("database pool not open")
        return self.pool

    def need_redis(self) -> ArqRedis:
        if self.redis is None:
            raise BenchError("Redis not connected")
        return self.redis

    def need_http(self) -> aiohttp.ClientSession:
        if self.http is None:
            raise BenchError("HTTP client not open")
        return self.http

    def need_api(self) -> Proc:
        if self.api is None:
            raise BenchError("the API process is not running")
        return self.api

    def need_worker(self) -> Proc:
        if self.worker is None:
            raise BenchError("no worker process is running")
        return self.worker

    def need_tenant(self) -> Tenant:
        if self.tenant is None:
            raise BenchError("tenant not set up")
        return self.tenant

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.need_tenant().key}"}

    async def guarded(self, name: str, figures: tuple[str, ...], phase: Callable[[Run], Awaitable[None]]) -> None:
        """Run ``phase``; if it fails, its figures are reported missing with the reason (the run goes on)."""
        try:
            await phase(self)
        except Unavailable as exc:
            self.log(f"[yellow]{name}: {exc}[/yellow]")
            self.results.unavailable(f"missing: {exc}", figures)
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            reason = f"{name} failed: {type(exc).__name__}: {first}"[:300]
            self.log(f"[red]{reason}[/red]")
            self.show_logs()
            self.results.fail(reason, figures)

    def show_logs(self, chars: int = 1500) -> None:
        """The end of the hub processes' logs, on stderr (after a failure)."""
        for proc in (self.api, self.worker):
            if proc is not None and (tail := proc.tail(chars).strip()):
                self.log(f"[dim]--- end of {proc.name} log ---[/dim]")
                self.log(escape(tail))


async def poll_until(check: Callable[[], Awaitable[bool]], *, within: float, interval: float = 0.01) -> bool:
    """Call ``check`` until it is true (True) or ``within`` seconds pass (False)."""
    deadline = time.monotonic() + within
    while True:
        if await check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)


def statuses_note(out: dict[str, Any], expected: str) -> str | None:
    """A note when some requests were not answered ``expected`` (or failed on the wire)."""
    others = {code: n for code, n in out.get("statuses", {}).items() if code != expected}
    errors = out.get("errors", {})
    if not others and not errors:
        return None
    parts = [f"{n}×{code}" for code, n in others.items()] + [f"{n}×{name}" for name, n in errors.items()]
    return f"not {expected}: " + ", ".join(parts)

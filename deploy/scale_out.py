"""Scale-out proof on one machine: 2 API processes and 1, 2, then 4 workers on one Postgres and Redis.

For each worker count the script starts that many ``hub worker`` processes, pushes one bounded
burst of signed ``generic`` webhooks through the two APIs (``POST /hooks/generic/{connection_id}``,
spread over both like a proxy would), waits until every order is readable through
``GET /api/v1/orders``, checks that each one exists exactly once, and stops the workers. It prints
one row of throughput figures per worker count and exits non-zero if any order is missing or
doubled.

Postgres and Redis come from ``HUB_DATABASE_URL`` / ``HUB_REDIS_URL``; without them the script
starts embedded ones (``hub.embedded.EmbeddedServers``) in a temporary folder. Everything it
starts it stops, also on Ctrl-C, SIGTERM or failure. Traffic goes to 127.0.0.1 only, in bounded
bursts with a time limit per round.

    python deploy/scale_out.py                     # 2 APIs; 1, 2, 4 workers; 2,000 events each
    python deploy/scale_out.py --workers 1,2 --events 500 --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import psutil

# beside this script: Python puts a script's own folder first on sys.path
from scale_out_fleet import LOOPBACK, Fleet, ScaleOutError, free_port, say, stores

from hub.delivery.signing import headers as signed_headers
from hub.delivery.signing import new_secret

MAX_EVENTS = 20_000


@dataclass
class Round:
    """The figures of one burst with a given number of workers."""

    workers: int
    events: int
    accepted: int = 0
    rejected: int = 0
    processed: int = 0
    duplicates: int = 0
    missing: int = 0
    ingest_per_s: float = 0.0
    end_to_end_per_s: float = 0.0
    processing_per_s: float = 0.0
    seconds: float = 0.0
    machine_cpu_pct: float = 0.0
    api_cpu_s: float = 0.0
    worker_cpu_s: float = 0.0
    other_cpu_s: float = 0.0  # Postgres, Redis, this script and anything else on the machine
    errors: list[str] = field(default_factory=list)

    @property
    def exactly_once(self) -> bool:
        """Every event of the burst is one order, none missing, none doubled."""
        return self.processed == self.events and not self.duplicates and not self.missing and not self.rejected


# ---- HTTP ----------------------------------------------------------------------------------------


async def _json(response: aiohttp.ClientResponse) -> Any:
    text = await response.text()
    try:
        return json.loads(text)
    except ValueError:
        return {"raw": text[:300]}


async def wait_ready(fleet: Fleet, ports: dict[str, int], within: float = 90) -> None:
    """Until ``/readyz`` answers 200 on every API (or one exits, or time runs out)."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
        for name, port in ports.items():
            while True:
                fleet.check_alive([name])
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"http://{LOOPBACK}:{port}/readyz") as response:
                        if response.status == 200:
                            break
                if time.monotonic() > deadline:
                    raise ScaleOutError(f"{name} not ready after {within:.0f} s:\n{fleet.tail(name)}")
                await asyncio.sleep(0.2)


async def create_connection(port: int, key: str, secret: str, run_id: str) -> str:
    """A ``generic`` connection for this run; its id."""
    body = {"source": "generic", "name": f"scale-out {run_id}", "secret": secret}
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http,
        http.post(f"http://{LOOPBACK}:{port}/api/v1/connections", json=body) as response,
    ):
        payload = await _json(response)
    if response.status == 404:
        raise ScaleOutError(
            "POST /api/v1/connections answered 404: this hub has no connections API yet "
            "(the ingestion pipeline is not in this build)"
        )
    if response.status != 201:
        raise ScaleOutError(f"POST /api/v1/connections answered {response.status}: {payload}")
    connection_id: str = payload["data"]["id"]
    return connection_id


def _order(source: str, external_id: str, i: int) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    price = f"{10 + i % 90}.50"
    return {
        "source": source,
        "external_id": external_id,
        "customer_name": f"Scale Out {i}",
        "customer_phone": f"+96650{i % 10_000_000:07d}",
        "products": [{"sku": f"SKU-{i % 50}", "name": "Scale-out item", "quantity": 1, "price": price}],
        "subtotal": price,
        "total_amount": price,
        "currency": "SAR",
        "status": "confirmed",
        "payment_status": "paid",
        "created": now,
        "source_updated_at": now,
    }


def webhook_body(msg_id: str, order: dict[str, Any]) -> bytes:
    """An ``order.created`` event in the generic format (the hub's own envelope)."""
    envelope = {
        "id": msg_id,
        "type": "order.created",
        "created": datetime.now(UTC).isoformat(),
        "data": {"order": order},
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


async def _post_hook(
    http: aiohttp.ClientSession, url: str, secret: str, msg_id: str, order: dict[str, Any], result: Round
) -> None:
    body = webhook_body(msg_id, order)
    for attempt in range(6):
        # the same body and webhook-id on every attempt (the hub dedupes on it), signed with a fresh timestamp
        sent = signed_headers(msg_id=msg_id, timestamp=int(time.time()), body=body, secrets=[secret])
        try:
            async with http.post(url, data=body, headers=sent) as response:
                if response.status in (200, 202):
                    result.accepted += 1
                    return
                text = (await response.text())[:200]
                if response.status in (429, 503) and attempt < 5:
                    await asyncio.sleep(min(5.0, float(response.headers.get("Retry-After", "0.5") or 0.5)))
                    continue
        except (aiohttp.ClientError, TimeoutError) as exc:
            text = repr(exc)
            if attempt < 5:
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
        result.rejected += 1
        if len(result.errors) < 5:
            result.errors.append(f"{msg_id}: {text}")
        return


async def _list(
    http: aiohttp.ClientSession, base: str, path: str, params: dict[str, str]
) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
    """One page of a list endpoint: (HTTP status, data, meta)."""
    async with http.get(f"{base}{path}", params=params) as response:
        payload = await _json(response)
    if response.status != 200:
        return response.status, [], {"error": payload}
    return 200, payload["data"], payload["meta"]


async def _all(http: aiohttp.ClientSession, base: str, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every item of a list endpoint (100 a page); :class:`ScaleOutError` on any non-200."""
    items: list[dict[str, Any]] = []
    for page in range(1, MAX_EVENTS // 100 + 2):
        status, data, meta = await _list(http, base, path, {**params, "per_page": "100", "page": str(page)})
        if status != 200:
            raise ScaleOutError(f"GET {path} page {page} answered {status}: {meta['error']}")
        items.extend(data)
        if not meta.get("has_next"):
            break
    return items


async def _inbound_total(http: aiohttp.ClientSession, base: str, connection_id: str, status: str) -> int:
    params = {"connection_id": connection_id, "status": status, "per_page": "1"}
    code, _, meta = await _list(http, base, "/api/v1/inbound-events", params)
    if code != 200:
        raise ScaleOutError(f"GET /api/v1/inbound-events answered {code}: {meta['error']}")
    total: int = meta["total"]
    return total


async def _wait_processed(
    api: aiohttp.ClientSession,
    base: str,
    connection_id: str,
    result: Round,
    started: float,
    within: float,
    stall: float,
) -> None:
    """Until every accepted event of the round's connection is processed, one fails, or time runs out."""
    seen, progressed = 0, time.perf_counter()
    while seen < result.accepted:
        await asyncio.sleep(0.1)
        count = await _inbound_total(api, base, connection_id, "processed")
        now = time.perf_counter()
        if count > seen:
            seen, progressed = count, now
            continue
        failed = await _inbound_total(api, base, connection_id, "failed")
        if failed:
            status, data, _ = await _list(
                api, base, "/api/v1/inbound-events", {"connection_id": connection_id, "status": "failed"}
            )
            result.errors.append(f"{failed} inbound events failed, e.g. {data[0]['error'] if data else status}")
            return
        if now > started + within or now - progressed > stall:
            result.errors.append(
                f"{seen}/{result.accepted} processed after {now - started:.0f} s: are the workers consuming jobs? "
                "(--keep-logs shows their output)"
            )
            return


async def _check_exactly_once(
    api: aiohttp.ClientSession, base: str, connection_id: str, source: str, expected: list[str], result: Round
) -> None:
    """Count distinct, doubled and missing orders of the round; the processing rate from the events."""
    events = await _all(api, base, "/api/v1/inbound-events", {"connection_id": connection_id, "status": "processed"})
    # Events are marked processed a batch at a time: the rate is what was processed after the first
    # batch's commit, over the time from that commit to the last one.
    stamps = sorted(datetime.fromisoformat(e["processed_at"]) for e in events if e.get("processed_at"))
    if len(stamps) > 1 and stamps[-1] > stamps[0]:
        after_first = sum(1 for stamp in stamps if stamp > stamps[0])
        result.processing_per_s = after_first / (stamps[-1] - stamps[0]).total_seconds()
    status, _, _ = await _list(api, base, "/api/v1/orders", {"source": source, "per_page": "1"})
    if status == 200:
        ids = [o["external_id"] for o in await _all(api, base, "/api/v1/orders", {"source": source})]
        result.missing = len(set(expected) - set(ids))
    else:  # no orders API in this build: each processed event must name its own, distinct order
        ids = [order_id for e in events for order_id in e.get("order_ids", [])]
        result.missing = result.events - len(set(ids))
        result.errors.append(f"GET /api/v1/orders answered {status}: checked the inbound events' order_ids instead")
    result.processed = len(set(ids))
    result.duplicates = len(ids) - len(set(ids))


@dataclass(frozen=True)
class Burst:
    """Where one round's webhooks go and what they must become."""

    ports: list[int]
    key: str
    secret: str
    connection_id: str
    source: str  # the generic format names its platform; one per round, so orders are counted per round
    expected: list[str]  # external ids

    @property
    def base(self) -> str:
        """The first API, for the REST calls."""
        return f"http://{LOOPBACK}:{self.ports[0]}"

    def api(self) -> aiohttp.ClientSession:
        """A client session that authenticates to ``/api/v1``."""
        return aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.key}"})


async def push(burst: Burst, result: Round, *, concurrency: int) -> None:
    """POST every webhook of the burst, spread over the APIs, ``concurrency`` in flight."""
    hooks = [f"http://{LOOPBACK}:{port}/hooks/generic/{burst.connection_id}" for port in burst.ports]
    gate = asyncio.Semaphore(concurrency)
    limits = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=limits, timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def one(i: int) -> None:
            external_id = burst.expected[i]
            async with gate:
                order = _order(burst.source, external_id, i)
                await _post_hook(http, hooks[i % len(hooks)], burst.secret, f"msg_{external_id}", order, result)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(len(burst.expected))))
        result.ingest_per_s = result.accepted / max(time.perf_counter() - started, 1e-9)


async def drain(burst: Burst, result: Round, *, started: float, within: float, stall: float) -> None:
    """Wait until every accepted webhook of the burst is processed (or one fails, or time runs out)."""
    async with burst.api() as api:
        await _wait_processed(api, burst.base, burst.connection_id, result, started, within, stall)
    result.seconds = time.perf_counter() - started


async def verify(burst: Burst, result: Round) -> None:
    """Check that each webhook of the burst became exactly one order."""
    async with burst.api() as api:
        await _check_exactly_once(api, burst.base, burst.connection_id, burst.source, burst.expected, result)


# ---- the run -------------------------------------------------------------------------------------


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every `finally`, which stops what was started


def run(args: argparse.Namespace) -> list[Round]:
    """Start everything, run one round per worker count, stop everything; the rounds' figures."""
    run_id = secrets.token_hex(4)
    rounds: list[Round] = []
    with contextlib.ExitStack() as stack:
        run_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hub-scale-out-")))
        if args.keep_logs:
            run_dir = Path(tempfile.mkdtemp(prefix="hub-scale-out-logs-"))
            say(f"logs in {run_dir}")
        database_url, redis_url = stack.enter_context(stores(run_dir))
        env = {
            **os.environ,
            "HUB_DATABASE_URL": database_url,
            "HUB_REDIS_URL": redis_url,
            "HUB_DATA_DIR": str(run_dir / "data"),
            "HUB_LOG_LEVEL": os.environ.get("HUB_LOG_LEVEL", "warning"),
            # measure capacity, not the per-connection limit that protects a real deployment
            "HUB_HOOKS_RATE_LIMIT": os.environ.get("HUB_HOOKS_RATE_LIMIT", "1000000/second"),
        }
        fleet = Fleet(run_dir, env)
        stack.callback(fleet.stop_all)

        say("migrating")
        fleet.hub("migrate")
        key = fleet.hub("keys", "create", "--org", f"scale-out-{run_id}").strip().splitlines()[-1]

        ports = {f"api-{n + 1}": free_port() for n in range(args.apis)}
        for name, port in ports.items():
            fleet.start(name, "serve", "--host", LOOPBACK, "--port", str(port))
        asyncio.run(wait_ready(fleet, ports))
        say(f"{len(ports)} APIs ready on ports {', '.join(map(str, ports.values()))}")

        for count in args.workers:
            rounds.append(_round(fleet, args, count, ports=list(ports.values()), key=key, run_id=run_id))
    return rounds


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores, all processes) since boot."""
    times = psutil.cpu_times()
    return float(sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal")))


def _round(fleet: Fleet, args: argparse.Namespace, count: int, *, ports: list[int], key: str, run_id: str) -> Round:
    """One burst with ``count`` workers; they are stopped again before this returns."""
    secret = new_secret()
    # a connection per round, so the round's inbound events are counted on their own
    connection_id = asyncio.run(create_connection(ports[0], key, secret, f"{run_id} w{count}"))
    expected = [f"{run_id}-w{count}-{i:06d}" for i in range(args.events)]
    burst = Burst(ports, key, secret, connection_id, f"so{run_id}w{count}", expected)
    result = Round(workers=count, events=args.events)
    names = [f"worker-{count}-{n + 1}" for n in range(count)]
    for name in names:
        fleet.start(name, "worker")
    time.sleep(args.settle)  # imports and pools; a worker is idle-polling after this
    fleet.check_alive(names)
    if args.backlog:
        # Warm workers, frozen while the burst is stored, then let go: the round times the drain alone.
        fleet.pause(names)
        say(f"{count} worker(s), paused: pushing {args.events} webhooks")
        asyncio.run(push(burst, result, concurrency=args.concurrency))
        cpu_api, cpu_workers = fleet.cpu_seconds("api"), fleet.cpu_seconds("worker")
        busy = _machine_busy_s()
        started = time.perf_counter()
        fleet.pause(names, resume=True)
    else:
        say(f"{count} worker(s): pushing {args.events} webhooks")
        cpu_api, cpu_workers = fleet.cpu_seconds("api"), fleet.cpu_seconds("worker")
        busy = _machine_busy_s()
        started = time.perf_counter()
        asyncio.run(push(burst, result, concurrency=args.concurrency))
    asyncio.run(drain(burst, result, started=started, within=args.timeout, stall=args.stall))
    machine_s = _machine_busy_s() - busy
    result.api_cpu_s = fleet.cpu_seconds("api") - cpu_api
    result.worker_cpu_s = fleet.cpu_seconds("worker") - cpu_workers
    result.machine_cpu_pct = 100 * machine_s / max(result.seconds * (psutil.cpu_count() or 1), 1e-9)
    result.other_cpu_s = max(0.0, machine_s - result.api_cpu_s - result.worker_cpu_s)
    asyncio.run(verify(burst, result))
    result.end_to_end_per_s = result.processed / max(result.seconds, 1e-9)
    fleet.check_alive([name for name in fleet.procs if name.startswith("api")] + names)
    fleet.stop(names)
    say(f"{count} worker(s): {result.processed}/{result.events} orders in {result.seconds:.1f} s")
    return result


def _table(rounds: Sequence[Round]) -> str:
    head = (
        "| workers | events | ingest/s | end-to-end/s | processing/s | seconds | machine CPU | API CPU s | "
        "worker CPU s | other CPU s | exactly once |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rounds:
        lines.append(
            f"| {r.workers} | {r.events} | {r.ingest_per_s:,.0f} | {r.end_to_end_per_s:,.0f} | "
            f"{r.processing_per_s:,.0f} | {r.seconds:.1f} | {r.machine_cpu_pct:.0f}% | {r.api_cpu_s:.1f} | "
            f"{r.worker_cpu_s:.1f} | {r.other_cpu_s:.1f} | {'yes' if r.exactly_once else 'NO'} |"
        )
    return "\n".join(lines)


def _worker_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or any(not 1 <= c <= 16 for c in counts):
        raise argparse.ArgumentTypeError("worker counts are 1..16, comma-separated")
    return counts


def _events(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_EVENTS:
        raise argparse.ArgumentTypeError(f"events per round are 1..{MAX_EVENTS}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workers", type=_worker_counts, default=[1, 2, 4], help="worker counts (default 1,2,4)")
    parser.add_argument("--events", type=_events, default=2000, help="webhooks per round (default 2000)")
    parser.add_argument("--apis", type=int, choices=range(1, 5), default=2, help="API processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=64, help="webhooks in flight (default 64)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds a round may take (default 180)")
    parser.add_argument("--stall", type=float, default=30, help="give up after this long without progress")
    parser.add_argument("--settle", type=float, default=3, help="seconds for workers to start (default 3)")
    parser.add_argument(
        "--backlog",
        action="store_true",
        help="pause the workers while each burst is pushed, so the round times the workers alone",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per round on stdout")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs in a folder")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scale-out proof; 0 when every round processed every order exactly once."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        rounds = run(args)
    except KeyboardInterrupt:
        say("interrupted; everything started was stopped")
        return 130
    except ScaleOutError as exc:
        say(f"failed: {exc}")
        return 1
    if args.json:
        for r in rounds:
            sys.stdout.write(json.dumps({**asdict(r), "exactly_once": r.exactly_once}) + "\n")
    else:
        sys.stdout.write(_table(rounds) + "\n")
        for r in rounds:
            for error in r.errors:
                sys.stdout.write(f"{r.workers} worker(s): {error}\n")
    return 0 if rounds and all(r.exactly_once for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())

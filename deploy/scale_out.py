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
from dataclasses import asdict
from pathlib import Path
from types import FrameType

import aiohttp
import psutil

# beside this script: Python puts a script's own folder first on sys.path
from scale_out_fleet import LOOPBACK, Fleet, ScaleOutError, free_port, say, stores
from traffic import MAX_EVENTS, Burst, Round, TrafficError, create_connection, drain, order_body, push, verify
from traffic import webhook_body as webhook_body  # re-exported: tests build the same bodies

from hub.delivery.signing import new_secret

__all__ = ["MAX_EVENTS", "main", "order_body", "parse_args", "webhook_body"]

# ---- HTTP ----------------------------------------------------------------------------------------


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
    except (ScaleOutError, TrafficError) as exc:
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

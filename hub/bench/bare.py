"""The bare parts the ceilings are measured on, each run as its own process.

* ``python -m hub.bench.bare http --port N --redis URL``: aiohttp handlers that read the body,
  parse the JSON and (on the ``/redis`` route) push the body to a Redis list, then answer 202.
  This is what an ingest endpoint costs with nothing of the hub in it.
* ``python -m hub.bench.bare relay --redis URL --target URL --secret S``: the shortest path an
  event could take through the same parts: pop what the handler above pushed, sign a Standard
  Webhook naming the order and POST it to the receiver. The end-to-end floor, with no durability.
* ``python -m hub.bench.bare arq --redis URL --jobs N``: arq running ``N`` no-op jobs in one burst
  worker (same ``max_jobs`` as the hub's worker, near-zero poll delay); prints ``{"jobs", "elapsed",
  "rate"}`` on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Coroutine
from typing import Any

import aiohttp
import orjson
from aiohttp import web

REDIS = web.AppKey("redis", object)
CEILING_LIST = "hub:bench:ceiling"
ARQ_QUEUE = "hub:bench:arq"
_ACCEPTED = orjson.dumps({"success": True, "data": {"id": "x", "duplicate": False}, "message": "accepted"})


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _parse_only(request: web.Request) -> web.Response:
    orjson.loads(await request.read())
    return web.Response(status=202, body=_ACCEPTED, content_type="application/json")


async def _parse_and_push(request: web.Request) -> web.Response:
    body = await request.read()
    orjson.loads(body)
    await request.app[REDIS].lpush(CEILING_LIST, body)  # type: ignore[attr-defined]
    return web.Response(status=202, body=_ACCEPTED, content_type="application/json")


async def serve_http(port: int, redis_url: str) -> None:
    """Serve both bare handlers on 127.0.0.1:``port`` until stopped.

    ``/parse/hooks/{source}/{id}`` parses only; ``/redis/hooks/{source}/{id}`` also pushes to Redis.
    """
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    app = web.Application(client_max_size=1_048_576)
    app[REDIS] = client
    app.router.add_post("/parse/hooks/{source}/{connection_id}", _parse_only)
    app.router.add_post("/redis/hooks/{source}/{connection_id}", _parse_and_push)
    app.router.add_get("/healthz", _health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await wait_for_stop()
    finally:
        await runner.cleanup()
        await client.delete(CEILING_LIST)
        await client.aclose()


async def wait_for_stop() -> None:
    """Return on SIGTERM or SIGINT, so a server stopped by the runner cleans up after itself."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def relay(redis_url: str, target: str, secret: str) -> None:
    """Forward pushed Salla bodies to ``target`` as signed ``order.created`` webhooks until stopped."""
    from redis.asyncio import Redis

    from hub.bench.loadgen import standard_webhook_headers

    client = Redis.from_url(redis_url)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    sending: set[asyncio.Task[None]] = set()

    async def send(n: int, raw: bytes) -> None:
        order_id = str(orjson.loads(raw)["data"]["id"])
        msg_id = f"evt_relay{n:017d}"
        body = orjson.dumps({"id": msg_id, "type": "order.created", "data": {"order": {"external_id": order_id}}})
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            async with session.post(target, data=body, headers=standard_webhook_headers(secret, msg_id, body)) as r:
                await r.read()

    async def loop() -> None:
        n = 0
        while True:
            item = await client.brpop([CEILING_LIST], timeout=1)
            if item is None:
                continue
            n += 1
            task = asyncio.create_task(send(n, item[1]))
            sending.add(task)
            task.add_done_callback(sending.discard)

    forwarding = asyncio.create_task(loop())
    try:
        await wait_for_stop()
    finally:
        forwarding.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await forwarding
        await session.close()
        await client.aclose()


async def _noop(ctx: dict[str, Any]) -> None:
    return None


async def arq_noop(redis_url: str, jobs: int) -> dict[str, float]:
    """Enqueue ``jobs`` no-op jobs, then time one burst worker draining them."""
    from arq import create_pool
    from arq.worker import Worker, func

    from hub.queue import redis_settings

    settings = redis_settings(redis_url)
    pool = await create_pool(settings, default_queue_name=ARQ_QUEUE)
    try:
        for start in range(0, jobs, 200):
            await asyncio.gather(
                *(pool.enqueue_job("noop", _job_id=f"bench-noop-{i}") for i in range(start, min(jobs, start + 200)))
            )
        worker = Worker(
            functions=[func(_noop, name="noop")],
            redis_settings=settings,
            queue_name=ARQ_QUEUE,
            burst=True,
            poll_delay=0.001,
            max_jobs=20,
            keep_result=0,
            handle_signals=False,
        )
        started = time.monotonic()
        await worker.main()
        elapsed = time.monotonic() - started
        done = worker.jobs_complete
        await worker.close()
        await pool.delete(ARQ_QUEUE, ARQ_QUEUE + ":health-check")
    finally:
        await pool.aclose()
    return {"jobs": done, "elapsed": elapsed, "rate": done / elapsed if elapsed > 0 else 0.0}


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is not on every platform
        return asyncio.run(coro)


def main() -> None:
    """Entry point: ``http`` or ``arq`` (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["http", "relay", "arq"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--redis", default=None)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--target", default="")
    parser.add_argument("--secret", default="")
    args = parser.parse_args()
    try:
        if args.what == "http":
            _run(serve_http(args.port, args.redis))
        elif args.what == "relay":
            _run(relay(args.redis, args.target, args.secret))
        else:
            sys.stdout.buffer.write(orjson.dumps(_run(arq_noop(args.redis, args.jobs))) + b"\n")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

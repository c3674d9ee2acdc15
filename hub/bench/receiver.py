"""The bench's subscriber: an aiohttp server that verifies Standard Webhooks and records receipts.

Runs as its own process (``python -m hub.bench.receiver --port N``) so verifying does not share a
loop with the hub or the load generator. Every ``POST /hook`` is verified with the reference
``standardwebhooks`` library against the secret set through ``POST /config``; a bad signature is
answered 401 and counted, never recorded. For each verified ``order.created`` the first receipt
time (``time.monotonic()``, comparable with the load generator's) is kept by the order's
``external_id``, which is how the runner measures end-to-end latency.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import orjson
from aiohttp import web
from standardwebhooks import Webhook

from hub.bench.bare import wait_for_stop

STATE = web.AppKey("state", dict[str, Any])


def _fresh() -> dict[str, Any]:
    return {"verified": 0, "invalid": 0, "ids": set(), "receipts": {}, "last": 0.0}


async def hook(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await request.read()
    webhook: Webhook | None = state.get("webhook")
    try:
        if webhook is None:
            raise ValueError("no secret configured")
        webhook.verify(body, dict(request.headers), json_parse=False)
    except Exception:
        state["invalid"] += 1
        return web.Response(status=401, text="bad signature")
    now = time.monotonic()
    state["verified"] += 1
    state["ids"].add(request.headers.get("webhook-id", ""))
    state["last"] = now
    event = orjson.loads(body)
    if event.get("type") == "order.created":
        order = (event.get("data") or {}).get("order") or {}
        state["receipts"].setdefault(str(order.get("external_id")), now)
    return web.Response(text="ok")


async def config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    secret = (await request.json())["secret"]
    state["webhook"] = Webhook(secret)
    return web.json_response({"ok": True})


async def reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    webhook = state.get("webhook")
    state.clear()
    state.update(_fresh(), webhook=webhook)
    return web.json_response({"ok": True})


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    out: dict[str, Any] = {
        "verified": state["verified"],
        "invalid": state["invalid"],
        "unique": len(state["ids"]),
        "last": state["last"],
    }
    if request.query.get("receipts"):
        out["receipts"] = state["receipts"]
    return web.Response(body=orjson.dumps(out), content_type="application/json")


def create_app() -> web.Application:
    """The receiver's application (no I/O until it runs)."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[STATE] = _fresh()
    app.router.add_post("/hook", hook)
    app.router.add_post("/config", config)
    app.router.add_post("/reset", reset)
    app.router.add_get("/stats", stats)
    return app


async def serve(port: int) -> None:
    """Listen on 127.0.0.1:``port`` until cancelled."""
    runner = web.AppRunner(create_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await wait_for_stop()
    finally:
        await runner.cleanup()


def main() -> None:
    """``python -m hub.bench.receiver --port N``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    try:
        import uvloop

        uvloop.run(serve(port))
    except ImportError:  # pragma: no cover - uvloop is not on every platform
        asyncio.run(serve(port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

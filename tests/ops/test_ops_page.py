"""The ops page in a real headless Chromium (Debian's ``chromium``, driven by Playwright for Python).

Skipped where Playwright or Chromium is missing, unless ``HUB_REQUIRE_BROWSER=1`` (CI) makes that a
failure. ``HUB_CHROMIUM`` points at another Chromium binary.
``HUB_OPS_SCREENSHOT=1`` also saves the page with a failing-but-retrying endpoint, at 1,280 px, to
``docs/ops-screenshot.png`` (a path may be given instead of ``1``); otherwise screenshots go to the
test's temporary folder.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hub import queue
from hub.app import create_app
from hub.settings import Settings
from tests.helpers.ops_state import (
    DISABLED_REASON,
    EP_OFF,
    EP_RETRY,
    FAILED_DELIVERY,
    FAILED_DELIVERY_OFF,
    OPS_TOKEN,
    RETRYING,
    seed,
    seed_retrying,
)
from tests.helpers.polling import eventually

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("HUB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "ops-screenshot.png"


def _missing(reason: str) -> NoReturn:
    # CI sets HUB_REQUIRE_BROWSER=1 so a missing browser fails the run instead of skipping quietly.
    if os.environ.get("HUB_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium; skipped (with the reason) where Playwright or the browser is missing."""
    try:
        async_api = importlib.import_module("playwright.async_api")
    except ImportError:
        _missing("Playwright is not installed (pip install -e '.[test]')")
    if not shutil.which(CHROMIUM):
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set HUB_CHROMIUM)")
    async with async_api.async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
async def hub_url(ops_settings: Settings, db: asyncpg.Connection) -> AsyncIterator[str]:
    """The real app with an ops token, served on 127.0.0.1."""
    server = TestServer(create_app(ops_settings), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
async def redis_pool(settings: Settings, db: asyncpg.Connection) -> AsyncIterator[Any]:
    assert settings.redis_url is not None
    pool = await queue.connect(settings.redis_url)
    try:
        yield pool
    finally:
        await pool.aclose()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A merchant's webhook receiver on 127.0.0.1 that answers 200 and records what it got."""
    got: list[dict[str, str]] = []

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        got.append(dict(request.headers))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hooks", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/hooks")), got
    finally:
        await server.close()


async def _open(browser: Any, hub_url: str, *, width: int = 1440) -> Any:
    page = await browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(f"{hub_url}/ops?token={OPS_TOKEN}")
    await page.wait_for_selector("body[data-loaded=true]", timeout=10_000)
    page.js_errors = errors
    return page


async def _kpi(page: Any, name: str) -> str:
    text: str = await page.locator(f'[data-kpi="{name}"] .value').inner_text()
    return text


async def test_page_shows_the_state_and_refreshes_in_place(
    browser: Any, hub_url: str, db: asyncpg.Connection, redis_pool: Any, tmp_path: Path
) -> None:
    expected = await seed(db, redis_pool, endpoint_url="https://shop.example/webhooks/orders")
    page = await _open(browser, hub_url)
    assert page.url == f"{hub_url}/ops"  # the token left the address bar for a cookie

    assert await _kpi(page, "queue-depth") == str(expected.queue_depth)
    assert "2 ready · 2 running · 1 deferred" in await page.locator('[data-kpi="queue-depth"] .sub').inner_text()
    assert (await _kpi(page, "oldest-job")).startswith("2m ")
    assert await _kpi(page, "in-flight") == str(expected.in_progress)
    assert await _kpi(page, "failed") == str(expected.inbound_failed + expected.deliveries_failed)
    assert await _kpi(page, "inbound-backlog") == "1"
    assert await _kpi(page, "deliveries-pending") == "2"
    assert await _kpi(page, "endpoints-disabled") == "1"

    salla = page.locator('#sources tr[data-source="salla"] td')
    assert await salla.nth(1).inner_text() == "8"  # received in the last 5 minutes
    assert await salla.nth(4).inner_text() == "3"  # bad signatures
    shopify = page.locator('#sources tr[data-source="shopify"] td')
    assert await shopify.nth(5).inner_text() == "1"  # bad payloads
    off = page.locator(f'#endpoints tr[data-endpoint="{EP_OFF}"]')
    assert DISABLED_REASON in await off.inner_text()
    assert await page.locator("#endpoints tbody tr").first.get_attribute("data-endpoint") == EP_OFF

    assert await page.locator("#failed-inbound > li[data-id]").count() == 2
    assert await page.locator("#failed-deliveries > li[data-id]").count() == 2
    assert await page.locator("#failed-deliveries button.retry").count() == 2
    item = page.locator(f'#failed-deliveries li[data-id="{FAILED_DELIVERY}"]')
    assert "HTTP 500" in await item.locator(".error").inner_text()
    await item.locator("summary").click()
    assert '"type": "order.created"' in await item.locator("pre").inner_text()
    for chart in ("inbound_received", "deliveries_succeeded", "attempts_failed"):
        assert await page.locator(f'[data-chart="{chart}"] svg rect').count() == 60
    assert await page.locator('[data-chart="deliveries_succeeded"] figcaption b').inner_text() == "4"

    # It refreshes itself without a reload: a new queued job shows up, page state survives.
    await page.evaluate("window.__sameDocument = true")
    await queue.enqueue(redis_pool, "ops_test_noop", ["more"], job_id="ops-job-more", defer=3600)

    async def shows_four() -> bool:
        return await _kpi(page, "queue-depth") == "6"

    await eventually(shows_four, timeout=6)
    assert await page.evaluate("window.__sameDocument") is True
    assert await item.locator("details").get_attribute("open") is not None  # expanded payload stays open

    await page.screenshot(path=str(tmp_path / "ops.png"), full_page=True)
    assert page.js_errors == []


async def test_retry_button_makes_a_failed_delivery_succeed(
    browser: Any,
    hub_url: str,
    db: asyncpg.Connection,
    redis_pool: Any,
    receiver: tuple[str, list[dict[str, str]]],
    worker: Any,
) -> None:
    url, got = receiver
    await seed(db, redis_pool, endpoint_url=url, backlog=False)
    page = await _open(browser, hub_url)
    button = page.locator(f'#failed-deliveries button[data-retry="{FAILED_DELIVERY}"]')
    await button.click()

    async def delivered() -> bool:
        status = await db.fetchval("SELECT status FROM deliveries WHERE id = $1", FAILED_DELIVERY)
        return bool(status == "succeeded")

    await eventually(delivered, timeout=20)
    assert [h.get("webhook-id") for h in got] == ["evt_" + FAILED_DELIVERY]
    assert await db.fetchval("SELECT attempt_count FROM deliveries WHERE id = $1", FAILED_DELIVERY) == 4
    # The page catches up on its own: the delivery leaves the failures, the other one stays.
    await page.wait_for_selector(f'#failed-deliveries li[data-id="{FAILED_DELIVERY}"]', state="detached", timeout=6_000)
    assert await page.locator(f'#failed-deliveries li[data-id="{FAILED_DELIVERY_OFF}"]').count() == 1
    assert await _kpi(page, "failed") == "3"
    assert page.js_errors == []


async def test_a_failing_endpoint_still_retrying_shows_with_a_retry_now_button(
    browser: Any,
    hub_url: str,
    db: asyncpg.Connection,
    redis_pool: Any,
    receiver: tuple[str, list[dict[str, str]]],
    worker: Any,
    tmp_path: Path,
) -> None:
    url, got = receiver
    await seed(db, redis_pool, endpoint_url="https://shop.example/webhooks", backlog=False)
    await seed_retrying(db, endpoint_url=url)
    page = await _open(browser, hub_url, width=1280)

    assert await _kpi(page, "retrying") == "2"
    row = page.locator(f'#retrying tr[data-endpoint="{EP_RETRY}"]')
    text = await row.inner_text()
    assert url.split("://")[1] in text
    assert "HTTP 500" in text
    assert "in 59m" in text or "in 1h" in text  # the next attempt, an hour ahead
    assert await row.locator("td").nth(1).inner_text() == "2"
    # Its endpoint row agrees with itself: 0 % success, so every attempt of the last hour failed.
    endpoint = page.locator(f'#endpoints tr[data-endpoint="{EP_RETRY}"] td')
    assert await endpoint.nth(1).inner_text() == "0 %"
    assert await endpoint.nth(4).inner_text() == await endpoint.nth(5).inner_text() == "3"
    assert await endpoint.nth(6).inner_text() == "2"  # retrying
    assert await endpoint.nth(7).inner_text() == "0"  # none gave up yet
    # Every tile's label fits at 1,280 px.
    cut = await page.eval_on_selector_all(
        ".kpi h2", "hs => hs.filter(h => h.scrollWidth > h.clientWidth).map(h => h.textContent)"
    )
    assert cut == []
    assert await page.evaluate("document.documentElement.scrollWidth") <= 1280  # nothing runs off the side
    target = os.environ.get("HUB_OPS_SCREENSHOT")
    shot = (DOCS_SCREENSHOT if target == "1" else Path(target)) if target else tmp_path / "ops-retrying.png"
    await page.screenshot(path=str(shot), full_page=True)

    await row.locator("button.retry").click()

    async def delivered() -> bool:
        return bool(await db.fetchval("SELECT status = 'succeeded' FROM deliveries WHERE id = $1", RETRYING[0]))

    await eventually(delivered, timeout=20)
    assert [h.get("webhook-id") for h in got] == ["evt_" + RETRYING[0]]

    async def one_left() -> bool:
        return await _kpi(page, "retrying") == "1"

    await eventually(one_left, timeout=6)
    assert page.js_errors == []


async def test_api_reference_renders_offline_with_try_it_out(browser: Any, hub_url: str, tmp_path: Path) -> None:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    outside: list[str] = []
    page.on("request", lambda req: None if req.url.startswith(hub_url) else outside.append(req.url))
    await page.goto(f"{hub_url}/docs#/orders/post_api_v1_orders")
    block = page.locator("#operations-orders-post_api_v1_orders")
    await block.wait_for(timeout=15_000)
    assert await page.locator(".opblock").count() > 40
    # The deep link opened the operation; its 200 (an order already there) shows the order, not Error.
    await page.locator("#operations-orders-post_api_v1_orders .try-out__btn").wait_for(timeout=5_000)
    responses = await block.locator(".responses-table").first.inner_text()
    assert "409" in responses
    assert "Error" not in await block.locator('tr.response[data-code="200"]').inner_text()
    await block.locator(".try-out__btn").click()
    assert await block.locator("button.execute").count() == 1
    await page.screenshot(path=str(tmp_path / "docs.png"))
    assert outside == []  # no CDN, nothing fetched from another host
    assert errors == []

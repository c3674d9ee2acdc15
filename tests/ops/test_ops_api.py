"""The ops API on the real app: who gets in, what the summary says about a known state, retries."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from hub.db import create_pool
from hub.errors import Conflict, NotFound
from hub.ops import actions as svc
from hub.settings import Settings
from tests.helpers.ops_state import (
    DISABLED_REASON,
    EP_OFF,
    EP_OK,
    EP_RETRY,
    FAILED_DELIVERY,
    FAILED_DELIVERY_OFF,
    FAILED_INBOUND,
    OPS_TOKEN,
    RETRYING,
    seed,
    seed_retrying,
)

Client = TestClient[Any, Any]
BEARER = {"Authorization": f"Bearer {OPS_TOKEN}"}
ENDPOINT_URL = "http://127.0.0.1:9/hooks"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/ops/api/summary"),
        ("POST", "/ops/api/deliveries/dlv_x/retry"),
        ("POST", "/ops/api/inbound-events/in_x/retry"),
    ],
)
async def test_ops_api_is_401_without_the_token(ops_client: Client, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": OPS_TOKEN}, {"Cookie": "hub_ops=1.abc"}):
        resp = await ops_client.request(method, path, headers=headers)
        assert resp.status == 401, (headers, await resp.text())
        body = await resp.json()
        assert body["success"] is False
        assert body["code"] == 401
        assert body["error"] == "Missing or invalid ops token"


async def test_without_a_configured_token_nothing_gets_in(client: Client) -> None:
    resp = await client.get("/ops/api/summary", headers={"Authorization": "Bearer anything"})
    assert resp.status == 401
    assert (await resp.json())["error"] == "Ops access is not configured"
    resp = await client.get("/ops", allow_redirects=False)
    assert resp.status in (302, 303)
    assert resp.headers["Location"] == "/ops/login"
    resp = await client.get("/ops/login")
    assert resp.status == 200
    assert "HUB_OPS_TOKEN" in await resp.text()
    resp = await client.post("/ops/login", data={"token": ""})
    assert resp.status == 401


async def test_token_link_becomes_a_cookie_and_a_clean_url(ops_client: Client) -> None:
    resp = await ops_client.get("/ops", params={"token": "wrong"}, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/ops/login?failed=1"

    resp = await ops_client.get("/ops", params={"token": OPS_TOKEN}, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/ops"
    cookie = resp.cookies["hub_ops"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert OPS_TOKEN not in cookie.value

    page = await ops_client.get("/ops")  # the client's jar now holds the cookie
    assert page.status == 200
    html = await page.text()
    assert "/ops/static/ops.js" in html
    assert "cdn" not in html.lower()
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert (await ops_client.get("/ops/api/summary")).status == 200

    # A cookie alone cannot press a button: the page's script also sends X-Ops-Request.
    resp = await ops_client.post("/ops/api/deliveries/dlv_missing/retry")
    assert resp.status == 401
    resp = await ops_client.post("/ops/api/deliveries/dlv_missing/retry", headers={"X-Ops-Request": "1"})
    assert resp.status == 404

    await ops_client.post("/ops/logout", allow_redirects=False)
    assert (await ops_client.get("/ops/api/summary")).status == 401


async def test_login_form(ops_client: Client) -> None:
    form = await ops_client.get("/ops/login")
    assert form.status == 200
    assert 'name="token"' in await form.text()
    resp = await ops_client.post("/ops/login", data={"token": "nope"}, allow_redirects=False)
    assert resp.status == 401
    assert "Wrong token" in await resp.text()
    resp = await ops_client.post("/ops/login", data={"token": OPS_TOKEN}, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/ops"
    assert (await ops_client.get("/ops/api/summary")).status == 200


async def test_static_assets_ship_with_the_package(ops_client: Client) -> None:
    js = await ops_client.get("/ops/static/ops.js")
    assert js.status == 200
    assert js.content_type == "text/javascript"
    assert "/ops/api/summary" in await js.text()
    css = await ops_client.get("/ops/static/ops.css")
    assert css.status == 200
    assert css.content_type == "text/css"
    assert (await ops_client.get("/ops/static/ops.html")).status == 404
    assert (await ops_client.get("/ops/static/..%2Fapp.py")).status == 404


async def test_summary_matches_the_state(ops_client: Client, db: asyncpg.Connection, redis_client: Any) -> None:
    expected = await seed(db, redis_client, endpoint_url=ENDPOINT_URL)
    resp = await ops_client.get("/ops/api/summary", headers=BEARER)
    assert resp.status == 200, await resp.text()
    data = (await resp.json())["data"]

    queue = data["queue"]
    assert queue["depth"] == expected.queue_depth == 5  # two of them running
    assert queue["ready"] == 2
    assert queue["deferred"] == 1
    assert 119 <= queue["oldest_age_seconds"] < 180
    assert queue["in_progress"] == expected.in_progress
    assert data["failed_jobs"] == expected.inbound_failed + expected.deliveries_failed == 4
    assert data["inbound"]["pending"] == 1
    assert 89 <= data["inbound"]["oldest_unprocessed_age_seconds"] < 150
    assert data["inbound"]["failed"] == 2
    assert data["deliveries"] == {
        "pending": 2,
        "due": 2,
        "oldest_due_age_seconds": pytest.approx(30, abs=20),
        "failed": 2,
        "succeeded": 4,
        "retrying": 0,
    }
    assert data["endpoints_disabled"] == 1

    sources = {s["source"]: s for s in data["sources"]}
    assert set(sources) == {"salla", "shopify", "zid"}
    assert sources["salla"]["received_5m"] == 8
    assert sources["salla"]["failed_5m"] == 2
    assert sources["salla"]["rate_per_second"] == pytest.approx(8 / 300, abs=1e-3)
    assert sources["salla"]["rejects_5m"] == {"bad_signature": 3}
    assert sources["salla"]["rejects_total"] == {"bad_signature": 3}
    assert sources["salla"]["totals"] == expected.ingest["salla"]
    assert sources["shopify"]["received_5m"] == 1  # three more were received half an hour ago
    assert sources["shopify"]["rejects_5m"] == {"bad_payload": 1}
    assert sources["zid"]["received_5m"] == 0

    endpoints = {e["id"]: e for e in data["endpoints"]}
    assert list(endpoints) == [EP_OFF, EP_OK]  # disabled first
    ok = endpoints[EP_OK]
    assert (ok["attempts_1h"], ok["succeeded_1h"], ok["failed"]) == (7, 4, 1)
    assert (ok["failed_1h"], ok["retrying"]) == (3, 0)  # failed attempts: the complement of the success rate
    assert ok["success_rate"] == pytest.approx(4 / 7)
    assert ok["p50_ms"] == pytest.approx(100)
    assert ok["p95_ms"] == pytest.approx(370)  # percentile_cont over 50, 50, 50, 100, 200, 300, 400
    off = endpoints[EP_OFF]
    assert off["enabled"] is False
    assert off["disabled_reason"] == DISABLED_REASON
    assert off["url"] == "https://merchant.example/hooks?…"  # the query string may hold a secret
    assert (off["success_rate"], off["p50_ms"], off["failed"]) == (0.0, 1500.0, 1)

    failed_inbound = data["failed_inbound"]
    assert [f["id"] for f in failed_inbound] == list(FAILED_INBOUND)  # newest failure first
    assert failed_inbound[0]["error"] == "Salla payload has no data.id"
    assert '"data": {"id": 1001' in failed_inbound[0]["body"]
    failed_deliveries = {f["id"]: f for f in data["failed_deliveries"]}
    assert set(failed_deliveries) == {FAILED_DELIVERY, FAILED_DELIVERY_OFF}
    shown = failed_deliveries[FAILED_DELIVERY]
    assert shown["last_status_code"] == 500
    assert shown["last_error"] == "HTTP 500 Internal Server Error"
    assert '"type": "order.created"' in shown["payload"]
    assert shown["endpoint_url"] == ENDPOINT_URL

    assert data["retrying"] == data["retrying_deliveries"] == []

    charts = data["charts"]
    assert len(charts["minutes"]) == 60
    assert sum(charts["inbound_received"]) == 12  # every stored event of the last hour
    assert sum(charts["deliveries_succeeded"]) == 4
    assert sum(charts["attempts_failed"]) == 5


async def test_summary_shows_deliveries_failing_but_still_retrying(
    ops_client: Client, db: asyncpg.Connection, redis_client: Any
) -> None:
    await seed(db, redis_client, endpoint_url=ENDPOINT_URL)
    await seed_retrying(db, endpoint_url="https://retry.example/hooks?token=secret")
    data = (await (await ops_client.get("/ops/api/summary", headers=BEARER)).json())["data"]
    assert data["deliveries"]["retrying"] == 2
    [row] = data["retrying"]
    assert (row["endpoint_id"], row["retrying"], row["next_delivery_id"]) == (EP_RETRY, 2, RETRYING[0])
    assert row["url"] == "https://retry.example/hooks?…"
    assert (row["last_status_code"], row["last_error"]) == (500, "HTTP 500 Internal Server Error")
    assert row["next_attempt_at"] > data["generated_at"]
    assert {d["id"] for d in data["retrying_deliveries"]} == set(RETRYING)
    endpoint = {e["id"]: e for e in data["endpoints"]}[EP_RETRY]
    assert (endpoint["success_rate"], endpoint["failed_1h"], endpoint["retrying"], endpoint["failed"]) == (0.0, 3, 2, 0)


async def test_retry_delivery_makes_it_due_and_wakes_a_worker(
    ops_client: Client, db: asyncpg.Connection, redis_client: Any
) -> None:
    await seed(db, redis_client, endpoint_url=ENDPOINT_URL)
    resp = await ops_client.post(f"/ops/api/deliveries/{FAILED_DELIVERY}/retry", headers=BEARER)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["data"] == {"id": FAILED_DELIVERY, "previous_status": "failed", "enqueued": True}
    row = await db.fetchrow(
        "SELECT status, next_attempt_at <= now() AS due, leased_until, completed_at, attempt_count "
        "FROM deliveries WHERE id = $1",
        FAILED_DELIVERY,
    )
    assert row is not None
    assert (row["status"], row["due"], row["leased_until"], row["completed_at"]) == ("pending", True, None, None)
    assert row["attempt_count"] == 3  # the ledger keeps its history
    jobs = [k.decode() for k in await redis_client.keys(f"arq:job:ops-retry:{FAILED_DELIVERY}:*")]
    assert len(jobs) == 1
    assert await redis_client.zscore("hub:queue", jobs[0].removeprefix("arq:job:")) is not None

    # Not twice for something that cannot or need not be retried.
    resp = await ops_client.post("/ops/api/deliveries/dlv_ops_ok_0/retry", headers=BEARER)
    assert resp.status == 409
    assert (await resp.json())["error"] == "Delivery already succeeded"
    resp = await ops_client.post(f"/ops/api/deliveries/{FAILED_DELIVERY_OFF}/retry", headers=BEARER)
    assert resp.status == 409
    assert (await resp.json())["details"] == {"endpoint": DISABLED_REASON}
    assert (await ops_client.post("/ops/api/deliveries/dlv_nope/retry", headers=BEARER)).status == 404


async def test_retry_inbound_event_resets_it(ops_client: Client, db: asyncpg.Connection, redis_client: Any) -> None:
    await seed(db, redis_client, endpoint_url=ENDPOINT_URL)
    event_id = FAILED_INBOUND[0]
    resp = await ops_client.post(f"/ops/api/inbound-events/{event_id}/retry", headers=BEARER)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"]["previous_status"] == "failed"
    row = await db.fetchrow("SELECT status, error, processed_at FROM inbound_events WHERE id = $1", event_id)
    assert row is not None
    assert tuple(row) == ("received", None, None)
    assert len(await redis_client.keys(f"arq:job:ops-retry:{event_id}:*")) == 1
    assert (await ops_client.post("/ops/api/inbound-events/in_nope/retry", headers=BEARER)).status == 404


async def test_retry_services_are_scoped_for_the_rest_api(
    settings: Settings, db: asyncpg.Connection, redis_client: Any
) -> None:
    await seed(db, redis_client, endpoint_url=ENDPOINT_URL)
    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, max_size=2)
    try:
        with pytest.raises(NotFound):
            await svc.retry_delivery(pool, redis_client, delivery_id=FAILED_DELIVERY, organization_id="org_other")
        with pytest.raises(NotFound):
            await svc.retry_inbound_event(pool, redis_client, event_id=FAILED_INBOUND[0], organization_id="org_other")
        with pytest.raises(Conflict):
            await svc.retry_delivery(pool, redis_client, delivery_id="dlv_ops_ok_1", organization_id="org_ops")
        done = await svc.retry_delivery(pool, redis_client, delivery_id=FAILED_DELIVERY, organization_id="org_ops")
        assert (done.previous_status, done.enqueued) == ("failed", True)
    finally:
        await pool.close()

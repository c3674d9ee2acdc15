"""An unthrottled fake Shopify store for ``hub bench``'s backfill phase (127.0.0.1, bounded size).

It serves the Admin REST ``GET /admin/api/{version}/orders.json`` as Shopify documents it: orders
oldest first, ``limit`` up to 250, cursor pagination through the ``Link`` header's ``page_info``,
``X-Shopify-Access-Token`` checked, and ``webhooks.json`` listing/creating subscriptions. Pages are
serialized once up front, so the store costs the measurement as little as possible: the figure is the
hub's pull, normalize and upsert, not the fake's JSON encoding.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

API_VERSION = "2024-10"
TOKEN = "shpat_bench_token_0000000000000000"
PAGE = 250


def shopify_order(n: int, *, at: datetime) -> dict[str, Any]:
    """A Shopify REST order (id ``n``), as its Admin API returns it."""
    stamp = at.isoformat()
    return {
        "id": 5_000_000_000 + n,
        "name": f"#{1000 + n}",
        "order_number": 1000 + n,
        "email": f"buyer{n}@example.com",
        "phone": "+966501234567",
        "created_at": stamp,
        "updated_at": stamp,
        "currency": "SAR",
        "financial_status": "paid",
        "fulfillment_status": None,
        "cancelled_at": None,
        "cancel_reason": None,
        "note": None,
        "total_line_items_price": "300.00",
        "total_discounts": "0.00",
        "total_tax": "45.00",
        "total_price": "370.00",
        "shipping_lines": [{"price": "25.00", "title": "Standard"}],
        "customer": {"first_name": "Sara", "last_name": f"Buyer {n}", "email": f"buyer{n}@example.com"},
        "shipping_address": {"address1": "King Fahd Road 1", "city": "Riyadh", "country_code": "SA"},
        "line_items": [
            {
                "id": n * 10,
                "product_id": 632910392,
                "sku": "TSH-001",
                "title": "T-Shirt",
                "quantity": 2,
                "price": "150.00",
            }
        ],
    }


class FakeShopify:
    """``orders`` pages pre-serialized; ``requests`` counts what the hub asked."""

    def __init__(self, count: int) -> None:
        start = datetime.now(UTC) - timedelta(days=1)
        orders = [shopify_order(n, at=start + timedelta(milliseconds=n)) for n in range(count)]
        self.pages = [orjson.dumps({"orders": orders[i : i + PAGE]}) for i in range(0, max(1, count), PAGE)]
        self.requests = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        """Serve on a free loopback port; returns the origin."""
        app = web.Application()
        app.router.add_get(f"/admin/api/{API_VERSION}/orders.json", self._orders)
        app.router.add_get(f"/admin/api/{API_VERSION}/webhooks.json", self._webhooks)
        app.router.add_post(f"/admin/api/{API_VERSION}/webhooks.json", self._create_webhook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    def _authorized(self, request: web.Request) -> bool:
        self.requests += 1
        return request.headers.get("X-Shopify-Access-Token") == TOKEN

    async def _orders(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"errors": "[API] Invalid API key or access token"}, status=401)
        index = int(request.query.get("page_info", "0") or 0)
        headers = {"X-Shopify-Shop-Api-Call-Limit": "1/40"}
        if index + 1 < len(self.pages):
            base = f"{self.url}/admin/api/{API_VERSION}/orders.json"
            headers["Link"] = f'<{base}?limit={PAGE}&page_info={index + 1}>; rel="next"'
        return web.Response(body=self.pages[index], content_type="application/json", headers=headers)

    async def _webhooks(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"errors": "[API] Invalid API key or access token"}, status=401)
        return web.json_response({"webhooks": []})

    async def _create_webhook(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"errors": "[API] Invalid API key or access token"}, status=401)
        body = await request.json()
        hook = body.get("webhook", {})
        return web.json_response({"webhook": {"id": self.requests, **hook}}, status=201)

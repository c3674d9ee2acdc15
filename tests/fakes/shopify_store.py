"""A fake Shopify shop speaking the Admin REST API (orders, webhooks) on a real 127.0.0.1 port.

Follows Shopify's docs: ``GET /admin/api/{version}/orders.json`` (``status`` default ``open``,
``any`` for all; ``updated_at_min``; ``limit`` default 50, at most 250) paged through the ``Link``
header's ``page_info`` (a request with ``page_info`` may add only ``limit`` and ``fields``, else 400);
``X-Shopify-Access-Token`` auth (401 ``{"errors": "[API] Invalid API key or access token …"}``);
the leaky bucket (``bucket_size`` 40, leaking ``leak_per_second`` 2; every answer states
``X-Shopify-Shop-Api-Call-Limit: used/size``; a full bucket answers 429 with ``Retry-After: 2.0``);
``webhooks.json`` list/create (201, 422 when the topic+address exists) and ``webhooks/{id}.json``
delete. Webhook deliveries are signed as Shopify signs them: base64 HMAC-SHA256 of the body keyed
with ``app_secret`` (give it the connection's secret).

Use::

    async with FakeShopify(app_secret=secret) as shop:   # shop.base_url is the api_base_url
        order = shop.add_order()                          # a REST order; update_order(id, **changes), delete_order(id)
        shop.revoke(); shop.remove_webhooks(); shop.fail(503, times=2); shop.use_calls(38); shop.throttle = False
        statuses = await shop.send_webhook("orders/updated", order)
        shop.requests, shop.throttled_count                # what it got, how many 429s it answered

The list is paged by ascending id (Shopify documents no sort; the cursor is what keeps a pass whole).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from tests.fakes.loopback import serve

ACCESS_TOKEN = "shpat_fake0000000000000000000000000"
APP_SECRET = "shpss_fake_app_secret"
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
STATUSES = ("open", "closed", "cancelled", "any")
TOPICS = frozenset({"orders/create", "orders/updated", "orders/paid", "orders/cancelled", "orders/fulfilled"})
DELETE_TOPIC = "orders/delete"


@dataclass
class Recorded:
    """One API request the fake got, and its answer's status."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    at: float


@dataclass
class FakeShopify:
    """The fake shop; ``base_url`` is set once it serves."""

    shop_domain: str = "fake-shop.myshopify.com"
    access_token: str = ACCESS_TOKEN
    app_secret: str = APP_SECRET
    api_version: str = "2026-10"
    utc_offset_hours: int = 3  # the shop's time zone: Shopify writes times with the shop's offset
    throttle: bool = True  # enforce the bucket (False: an unthrottled shop, for benchmarks)
    bucket_size: int = 40
    leak_per_second: float = 2.0
    call_limit_header: bool = True  # False: a proxy that strips the header (the client only learns from 429s)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    throttled_count: int = 0
    base_url: str = ""
    _revoked: bool = False
    _failures: list[tuple[int, bytes]] = field(default_factory=list)
    _level: float = 0.0
    _leaked_at: float = field(default_factory=time.monotonic)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(450789469))
    _runner: web.AppRunner | None = None

    # ---- state --------------------------------------------------------------------------------

    def add_order(self, **fields: Any) -> dict[str, Any]:
        """A new order (``make_order`` with a fresh id and ``fields`` on top); returns the stored object."""
        order_id = next(self._ids)
        order = make_order(order_id, tz=self._tz(), **fields)
        self.orders[order_id] = order
        return order

    def update_order(self, order_id: int, **changes: Any) -> dict[str, Any]:
        """Apply ``changes`` and bump ``updated_at`` (strictly later than before, as every change is)."""
        order = self.orders[order_id]
        order.update(changes)
        previous = datetime.fromisoformat(order["updated_at"])
        bumped = max(_now(), previous + timedelta(seconds=1))
        order["updated_at"] = bumped.astimezone(self._tz()).isoformat(timespec="seconds")
        return order

    def delete_order(self, order_id: int) -> dict[str, Any]:
        """Delete the order: it leaves the list (``orders/delete`` is what tells); returns it."""
        return self.orders.pop(order_id)

    def use_calls(self, count: int) -> None:
        """Another caller of the same app just made ``count`` requests: they sit in the shared bucket."""
        self._level = min(float(self.bucket_size), self._level + count)
        self._leaked_at = time.monotonic()

    def revoke(self) -> None:
        """The merchant uninstalled the app: every request now gets 401."""
        self._revoked = True

    def remove_webhooks(self) -> None:
        """Shopify deleted the subscriptions (after failed deliveries)."""
        self.webhooks.clear()

    def fail(self, status: int, *, times: int = 1, body: bytes = b'{"errors":"Internal Server Error"}') -> None:
        """Answer the next ``times`` API requests with ``status`` and ``body`` (200 + junk: a bad body)."""
        self._failures.extend([(status, body)] * times)

    async def send_webhook(self, topic: str, order: dict[str, Any]) -> list[int]:
        """POST ``order`` (``{"id"}`` for orders/delete) to every subscription of ``topic``, signed; their statuses."""
        body = json.dumps({"id": order["id"]} if topic == DELETE_TOPIC else order).encode()
        digest = base64.b64encode(hmac.new(self.app_secret.encode(), body, hashlib.sha256).digest()).decode()
        statuses = []
        async with aiohttp.ClientSession() as session:
            for hook in [h for h in self.webhooks.values() if h["topic"] == topic]:
                headers = {
                    "Content-Type": "application/json",
                    "X-Shopify-Topic": topic,
                    "X-Shopify-Hmac-Sha256": digest,
                    "X-Shopify-Shop-Domain": self.shop_domain,
                    "X-Shopify-API-Version": self.api_version,
                    "X-Shopify-Webhook-Id": f"wh-{hook['id']}-{time.monotonic_ns()}",
                    "X-Shopify-Event-Id": f"ev-{time.monotonic_ns()}",
                    "X-Shopify-Triggered-At": _now().isoformat(),
                }
                async with session.post(hook["address"], data=body, headers=headers) as resp:
                    statuses.append(resp.status)
        return statuses

    # ---- server -------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeShopify:
        app = web.Application(middlewares=[self._gate])
        prefix = f"/admin/api/{self.api_version}"
        app.router.add_get(f"{prefix}/orders.json", self._list_orders)
        app.router.add_get(f"{prefix}/webhooks.json", self._list_webhooks)
        app.router.add_post(f"{prefix}/webhooks.json", self._create_webhook)
        app.router.add_delete(prefix + "/webhooks/{id}.json", self._delete_webhook)
        self._runner, self.base_url = await serve(app)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Auth, the bucket and queued failures, in Shopify's order; records every request."""
        response = await self._admit(request, handler)
        if self.call_limit_header:
            response.headers["X-Shopify-Shop-Api-Call-Limit"] = f"{int(self._level)}/{self.bucket_size}"
        self.requests.append(
            Recorded(request.method, request.path, dict(request.query), response.status, time.monotonic())
        )
        return response

    async def _admit(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._revoked or request.headers.get("X-Shopify-Access-Token") != self.access_token:
            return web.json_response({"errors": INVALID_TOKEN}, status=401)
        now = time.monotonic()
        self._level = max(0.0, self._level - (now - self._leaked_at) * self.leak_per_second)
        self._leaked_at = now
        if self.throttle:
            if self._level + 1 > self.bucket_size:
                self.throttled_count += 1
                refusal = {"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume."}
                return web.json_response(refusal, status=429, headers={"Retry-After": "2.0"})
            self._level += 1
        else:
            self._level = 1.0
        if self._failures:
            status, body = self._failures.pop(0)
            return web.Response(status=status, body=body, content_type="application/json")
        response: web.StreamResponse = await handler(request)
        return response

    # ---- endpoints ----------------------------------------------------------------------------

    async def _list_orders(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        limit = _limit(query.get("limit"), default=50)
        if limit is None:
            return _errors(400, limit="must be between 1 and 250")
        if "page_info" in query:
            extra = sorted(set(query) - {"page_info", "limit", "fields"})
            if extra:
                return _errors(400, **{name: f"{name} cannot be passed when page_info is present" for name in extra})
            try:
                cursor = json.loads(base64.urlsafe_b64decode(query["page_info"].encode()))
            except ValueError:
                return _errors(400, page_info="Invalid value.")
            status, since, after, before = cursor["status"], cursor["since"], cursor["after"], cursor["before"]
        else:
            status, since, after, before = query.get("status", "open"), query.get("updated_at_min"), None, None
            if status not in STATUSES:
                return _errors(400, status="is not included in the list")
            if since is not None:
                try:
                    datetime.fromisoformat(since)
                except ValueError:
                    return _errors(400, updated_at_min="is not a valid date")
        matching = [o for _, o in sorted(self.orders.items()) if _status_matches(o, status)]
        if since is not None:
            floor = datetime.fromisoformat(since)
            matching = [o for o in matching if datetime.fromisoformat(o["updated_at"]) >= floor]
        if before is not None:  # a "previous" page: the ``limit`` orders just before ``before``
            page = [o for o in matching if o["id"] < before][-limit:]
        else:
            page = [o for o in matching if after is None or o["id"] > after][:limit]
        links = []
        base = f"{self.base_url}{request.path}"
        state = {"status": status, "since": since}
        if page and page[0]["id"] > matching[0]["id"]:
            token = _encode({**state, "after": None, "before": page[0]["id"]})
            links.append(f'<{base}?limit={limit}&page_info={token}>; rel="previous"')
        if page and page[-1]["id"] < matching[-1]["id"]:
            token = _encode({**state, "after": page[-1]["id"], "before": None})
            links.append(f'<{base}?limit={limit}&page_info={token}>; rel="next"')
        headers = {"Link": ", ".join(links)} if links else None
        return web.json_response({"orders": page}, headers=headers)

    async def _list_webhooks(self, request: web.Request) -> web.Response:
        limit = _limit(request.query.get("limit"), default=50)
        if limit is None:
            return _errors(400, limit="must be between 1 and 250")
        # A few subscriptions never fill a page: one page, no Link header.
        return web.json_response({"webhooks": [self.webhooks[i] for i in sorted(self.webhooks)][:limit]})

    async def _create_webhook(self, request: web.Request) -> web.Response:
        try:
            hook = (await request.json())["webhook"]
            topic, address = hook["topic"], hook["address"]
        except (ValueError, KeyError, TypeError):
            return _errors(400, webhook="Required parameter missing or invalid")
        if topic not in TOPICS | {DELETE_TOPIC}:
            return _errors(422, topic=["Invalid topic specified."])
        parts = urlsplit(address) if isinstance(address, str) else None
        loopback = parts is not None and parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts is None or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
            return _errors(422, address=["protocol is not supported (Shopify delivers to https only)"])
        if any(h["topic"] == topic and h["address"] == address for h in self.webhooks.values()):
            return _errors(422, address=["for this topic has already been taken"])
        hook_id = next(self._ids)
        stamp = _now().astimezone(self._tz()).isoformat(timespec="seconds")
        self.webhooks[hook_id] = {
            "id": hook_id,
            "address": address,
            "topic": topic,
            "created_at": stamp,
            "updated_at": stamp,
            "format": hook.get("format", "json"),
            "fields": [],
            "metafield_namespaces": [],
            "api_version": self.api_version,
        }
        return web.json_response({"webhook": self.webhooks[hook_id]}, status=201)

    async def _delete_webhook(self, request: web.Request) -> web.Response:
        hook_id = int(request.match_info["id"]) if request.match_info["id"].isdigit() else -1
        if self.webhooks.pop(hook_id, None) is None:
            return web.json_response({"errors": "Not Found"}, status=404)
        return web.json_response({})

    def _tz(self) -> timezone:
        return timezone(timedelta(hours=self.utc_offset_hours))


def make_order(order_id: int, *, tz: timezone = UTC, **fields: Any) -> dict[str, Any]:
    """A REST ``Order`` as the docs show it (paid, unfulfilled, one line), ``fields`` on top."""
    at = fields.pop("created_at", None) or _now()
    stamp = (
        (at if isinstance(at, datetime) else datetime.fromisoformat(at)).astimezone(tz).isoformat(timespec="seconds")
    )
    number = order_id % 100000
    order: dict[str, Any] = {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#{number}",
        "order_number": number,
        "email": f"buyer{number}@example.com",
        "phone": None,
        "created_at": stamp,
        "updated_at": stamp,
        "processed_at": stamp,
        "cancelled_at": None,
        "cancel_reason": None,
        "closed_at": None,
        "currency": "SAR",
        "financial_status": "paid",
        "fulfillment_status": None,
        "total_line_items_price": "100.00",
        "total_discounts": "0.00",
        "total_tax": "15.00",
        "total_price": "130.00",
        "total_shipping_price_set": {
            "shop_money": {"amount": "15.00", "currency_code": "SAR"},
            "presentment_money": {"amount": "15.00", "currency_code": "SAR"},
        },
        "note": None,
        "customer": {"id": 207119551, "email": f"buyer{number}@example.com", "first_name": "Sara", "last_name": "Ali"},
        "shipping_address": {
            "first_name": "Sara",
            "last_name": "Ali",
            "address1": "King Fahd Road 12",
            "city": "Riyadh",
            "country": "Saudi Arabia",
            "country_code": "SA",
            "phone": "0501234567",
        },
        "billing_address": None,
        "line_items": [
            {
                "id": order_id * 10,
                "product_id": 632910392,
                "variant_id": 808950810,
                "sku": "IPOD-342-N",
                "name": "IPod Nano - Pink",
                "title": "IPod Nano",
                "quantity": 2,
                "price": "50.00",
            }
        ],
        "shipping_lines": [{"id": 369256396, "title": "Standard", "price": "15.00"}],
        "fulfillments": [],
    }
    order.update(fields)
    return order


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _status_matches(order: dict[str, Any], status: str) -> bool:
    if status == "any":
        return True
    if status == "cancelled":
        return order.get("cancelled_at") is not None
    if status == "closed":
        return order.get("closed_at") is not None
    return order.get("cancelled_at") is None and order.get("closed_at") is None


def _limit(value: str | None, *, default: int) -> int | None:
    if value is None:
        return default
    return int(value) if value.isdigit() and 1 <= int(value) <= 250 else None


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


def _errors(code: int, **errors: Any) -> web.Response:
    """Shopify's error body: ``{"errors": {field: message}}``."""
    return web.json_response({"errors": errors}, status=code)

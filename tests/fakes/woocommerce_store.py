"""A fake WooCommerce store speaking REST API v3 (orders, webhooks) on a real 127.0.0.1 port.

Follows WooCommerce's docs and its controllers' published schema: ``GET /wp-json/wc/v3/orders``
with ``page``/``per_page`` (default 10, 1..100, else 400 ``rest_invalid_param``), ``modified_after``
(+ ``dates_are_gmt``), ``orderby`` (``date`` default, ``id``, ``modified``, …), ``order`` (``desc``
default), ``status`` (``any`` default, which leaves out ``trash``), answered with ``X-WP-Total``,
``X-WP-TotalPages`` and a ``Link`` header; HTTP Basic with the consumer key and secret (wrong or
revoked: 401 ``woocommerce_rest_authentication_error``); ``/wp-json/wc/v3/webhooks`` list / create
(``topic``, ``delivery_url``, ``secret``; on creation the unsigned activation ping ``webhook_id=<id>``
is POSTed to the delivery URL, its statuses in ``pings``) / delete (``force=true``; webhooks cannot be
trashed).
Deliveries carry ``X-WC-Webhook-Source/Topic/Resource/Event/ID/Delivery-ID`` and
``X-WC-Webhook-Signature``, the base64 HMAC-SHA256 of the body keyed with the webhook's secret.

Core WooCommerce documents no rate limit for this API; :meth:`FakeWooCommerce.throttle` plays the
host in front of a store that does limit (429 + ``Retry-After``), counting its 429s.

Use::

    async with FakeWooCommerce() as store:       # store.base_url is store_url and api_base_url
        order = store.add_order()                # a REST v3 order; update_order(id, **changes), delete_order(id)
        store.revoke(); store.remove_webhooks(); store.fail(503); store.throttle(10, per_seconds=1.0)
        statuses = await store.send_webhook("order.updated", order)
        store.requests, store.throttled_count
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from tests.fakes.loopback import serve
from tests.fakes.shopify_store import Recorded

CONSUMER_KEY = "ck_" + "1" * 40
CONSUMER_SECRET = "cs_" + "2" * 40
STATUSES = ("pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed", "trash")
TOPICS = frozenset({"order.created", "order.updated", "order.deleted", "order.restored"})
ORDERBY = ("date", "id", "include", "title", "slug", "modified")
_SORT_KEYS = {"date": "date_created_gmt", "modified": "date_modified_gmt", "id": "id", "include": "id"}


@dataclass
class FakeWooCommerce:
    """The fake store; ``base_url`` is set once it serves."""

    consumer_key: str = CONSUMER_KEY
    consumer_secret: str = CONSUMER_SECRET
    utc_offset_hours: int = 3  # the site's time zone, for the local ``date_*`` fields
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    throttled_count: int = 0
    pings: list[tuple[int, int]] = field(
        default_factory=list
    )  # (webhook id, status of the activation ping; 0: unreachable)
    base_url: str = ""
    webhook_secrets: dict[int, str] = field(default_factory=dict)
    _revoked: bool = False
    _failures: list[tuple[int, bytes]] = field(default_factory=list)
    _limit: tuple[int, float] | None = None
    _window: tuple[float, int] = (0.0, 0)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(700))
    _runner: web.AppRunner | None = None

    # ---- state --------------------------------------------------------------------------------

    def add_order(self, **fields: Any) -> dict[str, Any]:
        """A new order (``make_order`` with a fresh id and ``fields`` on top); returns the stored object."""
        order_id = next(self._ids)
        self.orders[order_id] = make_order(order_id, utc_offset_hours=self.utc_offset_hours, **fields)
        return self.orders[order_id]

    def update_order(self, order_id: int, **changes: Any) -> dict[str, Any]:
        """Apply ``changes`` and bump ``date_modified(_gmt)`` (strictly later than before)."""
        order = self.orders[order_id]
        order.update(changes)
        previous = datetime.fromisoformat(order["date_modified_gmt"]).replace(tzinfo=UTC)
        _stamp(order, "date_modified", max(_now(), previous + timedelta(seconds=1)), self.utc_offset_hours)
        return order

    def delete_order(self, order_id: int) -> dict[str, Any]:
        """Move the order to the trash (it leaves the ``any`` list; ``order.deleted`` is what tells)."""
        return self.update_order(order_id, status="trash")

    def revoke(self) -> None:
        """The merchant revoked the REST API key: every request now gets 401."""
        self._revoked = True

    def remove_webhooks(self) -> None:
        """The webhooks are gone (deleted in the admin)."""
        self.webhooks.clear()

    def fail(self, status: int, *, times: int = 1, body: bytes | None = None) -> None:
        """Answer the next ``times`` API requests with ``status`` and ``body`` (200 + junk: a bad body)."""
        default = json.dumps({"code": "internal_server_error", "message": "Error", "data": {"status": status}})
        self._failures.extend([(status, body if body is not None else default.encode())] * times)

    def throttle(self, requests: int, *, per_seconds: float) -> None:
        """Allow ``requests`` per ``per_seconds`` window; more get 429 with ``Retry-After``."""
        self._limit = (requests, per_seconds)
        self._window = (time.monotonic(), 0)

    async def send_webhook(self, topic: str, order: dict[str, Any]) -> list[int]:
        """POST ``order`` (``{"id"}`` for order.deleted) to every active webhook of ``topic``, signed."""
        body = json.dumps({"id": order["id"]} if topic == "order.deleted" else order).encode()
        statuses = []
        async with aiohttp.ClientSession() as session:
            for hook in [h for h in self.webhooks.values() if h["topic"] == topic and h["status"] == "active"]:
                key = self.webhook_secrets[hook["id"]].encode()
                headers = {
                    "Content-Type": "application/json",
                    "User-Agent": "WooCommerce/9.4.0 Hookshot (WordPress/6.7)",
                    "X-WC-Webhook-Source": f"{self.base_url}/",
                    "X-WC-Webhook-Topic": topic,
                    "X-WC-Webhook-Resource": "order",
                    "X-WC-Webhook-Event": topic.split(".", 1)[1],
                    "X-WC-Webhook-Signature": base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode(),
                    "X-WC-Webhook-ID": str(hook["id"]),
                    "X-WC-Webhook-Delivery-ID": f"{hook['id']}{time.monotonic_ns()}",
                }
                async with session.post(hook["delivery_url"], data=body, headers=headers) as resp:
                    statuses.append(resp.status)
        return statuses

    # ---- server -------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeWooCommerce:
        app = web.Application(middlewares=[self._gate])
        app.router.add_get("/wp-json/wc/v3/orders", self._list_orders)
        app.router.add_get("/wp-json/wc/v3/webhooks", self._list_webhooks)
        app.router.add_post("/wp-json/wc/v3/webhooks", self._create_webhook)
        app.router.add_delete("/wp-json/wc/v3/webhooks/{id}", self._delete_webhook)
        self._runner, self.base_url = await serve(app)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response = await self._admit(request, handler)
        self.requests.append(
            Recorded(request.method, request.path, dict(request.query), response.status, time.monotonic())
        )
        return response

    async def _admit(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._limit is not None:  # the host's limit comes before WordPress sees the request
            allowed, per = self._limit
            start, count = self._window
            now = time.monotonic()
            if now - start >= per:
                start, count = now, 0
            if count >= allowed:
                self.throttled_count += 1
                wait = str(max(1, math.ceil(start + per - now)))
                return _error(429, "too_many_requests", "Too many requests.", headers={"Retry-After": wait})
            self._window = (start, count + 1)
        auth = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{self.consumer_key}:{self.consumer_secret}".encode()).decode()
        if not auth:
            return _error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        if self._revoked or not hmac.compare_digest(auth, expected):
            return _error(401, "woocommerce_rest_authentication_error", "Consumer key is invalid.")
        if self._failures:
            status, body = self._failures.pop(0)
            return web.Response(status=status, body=body, content_type="application/json")
        response: web.StreamResponse = await handler(request)
        return response

    # ---- endpoints ----------------------------------------------------------------------------

    async def _list_orders(self, request: web.Request) -> web.Response:
        query = request.query
        paging = _paging(query)
        if isinstance(paging, web.Response):
            return paging
        page, per_page = paging
        orderby, direction = query.get("orderby", "date"), query.get("order", "desc")
        if orderby not in ORDERBY or direction not in ("asc", "desc"):
            return _invalid("orderby" if orderby not in ORDERBY else "order", "is not one of its allowed values")
        status = query.get("status", "any")
        if status != "any" and status not in STATUSES:
            return _invalid("status", "is not one of its allowed values")
        matching = [
            o for o in self.orders.values() if (o["status"] != "trash" if status == "any" else o["status"] == status)
        ]
        if "modified_after" in query:
            gmt = query.get("dates_are_gmt", "false") in ("true", "1")
            try:
                floor = datetime.fromisoformat(query["modified_after"])
            except ValueError:
                return _invalid("modified_after", "Invalid date.")
            if floor.tzinfo is not None:
                floor = floor.astimezone(UTC if gmt else _tz(self.utc_offset_hours)).replace(tzinfo=None)
            field_name = "date_modified_gmt" if gmt else "date_modified"
            matching = [o for o in matching if datetime.fromisoformat(o[field_name]) > floor]
        key = _SORT_KEYS.get(orderby, "id")
        matching.sort(key=lambda o: (o[key], o["id"]), reverse=direction == "desc")
        total_pages = math.ceil(len(matching) / per_page)
        headers = {"X-WP-Total": str(len(matching)), "X-WP-TotalPages": str(total_pages)}
        links = []
        base = f"{self.base_url}{request.path}"
        if page > 1:
            links.append(f'<{base}?page={page - 1}&per_page={per_page}>; rel="prev"')
        if page < total_pages:
            links.append(f'<{base}?page={page + 1}&per_page={per_page}>; rel="next"')
        if links:
            headers["Link"] = ", ".join(links)
        return web.json_response(matching[(page - 1) * per_page : page * per_page], headers=headers)

    async def _list_webhooks(self, request: web.Request) -> web.Response:
        paging = _paging(request.query)
        if isinstance(paging, web.Response):
            return paging
        page, per_page = paging
        status = request.query.get("status", "all")
        hooks = [h for _, h in sorted(self.webhooks.items()) if status == "all" or h["status"] == status]
        headers = {"X-WP-Total": str(len(hooks)), "X-WP-TotalPages": str(math.ceil(len(hooks) / per_page))}
        return web.json_response(hooks[(page - 1) * per_page : page * per_page], headers=headers)

    async def _create_webhook(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except ValueError:
            return _error(400, "rest_invalid_json", "Invalid JSON body passed.")
        missing = [name for name in ("topic", "delivery_url") if not isinstance(data.get(name), str)]
        if missing:
            return _error(400, "rest_missing_callback_param", f"Missing parameter(s): {', '.join(missing)}")
        if data["topic"] not in TOPICS:
            return _error(400, "woocommerce_rest_webhook_invalid_topic", "Webhook topic is required and must be valid.")
        if urlsplit(data["delivery_url"]).scheme not in ("http", "https"):
            message = "Webhook delivery URL must be a valid URL starting with http:// or https://."
            return _error(400, "woocommerce_rest_webhook_invalid_delivery_url", message)
        hook_id = next(self._ids)
        self.webhook_secrets[hook_id] = str(data.get("secret") or "")
        resource, event = data["topic"].split(".", 1)
        stamp = _now()
        hook = {
            "id": hook_id,
            "name": data.get("name") or f"Webhook created on {stamp:%b %d, %Y @ %I:%M %p}",
            "status": data.get("status", "active"),
            "topic": data["topic"],
            "resource": resource,
            "event": event,
            "hooks": [f"woocommerce_new_{resource}"] if event == "created" else [f"woocommerce_{event}_{resource}"],
            "delivery_url": data["delivery_url"],
            "date_created": stamp.astimezone(_tz(self.utc_offset_hours)).replace(tzinfo=None).isoformat(),
            "date_created_gmt": stamp.replace(tzinfo=None).isoformat(),
            "date_modified": stamp.astimezone(_tz(self.utc_offset_hours)).replace(tzinfo=None).isoformat(),
            "date_modified_gmt": stamp.replace(tzinfo=None).isoformat(),
        }
        self.webhooks[hook_id] = hook
        await self._ping(hook)
        return web.json_response(hook, status=201)

    async def _ping(self, hook: dict[str, Any]) -> None:
        """``WC_Webhook::deliver_ping``: the unsigned form body ``webhook_id=<id>``; its answer changes nothing."""
        timeout = aiohttp.ClientTimeout(total=5)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                form = {"Content-Type": "application/x-www-form-urlencoded"}
                async with session.post(hook["delivery_url"], data=f"webhook_id={hook['id']}", headers=form) as resp:
                    self.pings.append((hook["id"], resp.status))
        except (aiohttp.ClientError, TimeoutError):
            self.pings.append((hook["id"], 0))

    async def _delete_webhook(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        hook = self.webhooks.get(int(raw)) if raw.isdigit() else None
        if hook is None:
            return _error(404, "woocommerce_rest_webhook_invalid_id", "Invalid ID.")
        if request.query.get("force") not in ("true", "1"):
            return _error(501, "woocommerce_rest_trash_not_supported", "Webhooks do not support trashing.")
        del self.webhooks[hook["id"]]
        return web.json_response(hook)


def make_order(order_id: int, *, utc_offset_hours: int = 0, **fields: Any) -> dict[str, Any]:
    """A REST v3 order as the docs show it (processing, one line, flat-rate shipping), ``fields`` on top."""
    at = fields.pop("created_at", None) or _now()
    address = {"first_name": "Huda", "last_name": "Saleh", "address_1": "Olaya St 5", "city": "Riyadh", "country": "SA"}
    order: dict[str, Any] = {
        "id": order_id,
        "parent_id": 0,
        "number": str(order_id),
        "order_key": f"wc_order_{order_id:013d}",
        "created_via": "checkout",
        "status": "processing",
        "currency": "SAR",
        "discount_total": "0.00",
        "shipping_total": "10.00",
        "total": "39.00",
        "total_tax": "0.00",
        "customer_note": "",
        "billing": {**address, "email": f"huda{order_id}@example.com", "phone": "0551234567"},
        "shipping": address,
        "payment_method": "bacs",
        "payment_method_title": "Direct bank transfer",
        "date_paid": None,
        "date_paid_gmt": None,
        "date_completed": None,
        "date_completed_gmt": None,
        "line_items": [
            {
                "id": order_id * 10,
                "name": "Woo Ninja",
                "product_id": 34,
                "variation_id": 0,
                "quantity": 1,
                "subtotal": "29.00",
                "total": "29.00",
                "sku": "NINJA-1",
                "price": 29,
            }
        ],
        "shipping_lines": [
            {"id": order_id * 10 + 1, "method_title": "Flat rate", "method_id": "flat_rate", "total": "10.00"}
        ],
        "fee_lines": [],
        "coupon_lines": [],
        "refunds": [],
    }
    when = at if isinstance(at, datetime) else datetime.fromisoformat(at).replace(tzinfo=UTC)
    _stamp(order, "date_created", when, utc_offset_hours)
    _stamp(order, "date_modified", when, utc_offset_hours)
    order.update(fields)
    return order


def _stamp(order: dict[str, Any], name: str, when: datetime, utc_offset_hours: int) -> None:
    """WooCommerce's pair: ``name`` in the site's time zone and ``name_gmt``, both without an offset."""
    order[name] = when.astimezone(_tz(utc_offset_hours)).replace(tzinfo=None).isoformat(timespec="seconds")
    order[f"{name}_gmt"] = when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _tz(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _paging(query: Any) -> tuple[int, int] | web.Response:
    page, per_page = query.get("page", "1"), query.get("per_page", "10")
    if not page.isdigit() or int(page) < 1:
        return _invalid("page", "page must be greater than or equal to 1")
    if not per_page.isdigit() or not 1 <= int(per_page) <= 100:
        return _invalid("per_page", "per_page must be between 1 (inclusive) and 100 (inclusive)")
    return int(page), int(per_page)


def _invalid(param: str, why: str) -> web.Response:
    body = {
        "code": "rest_invalid_param",
        "message": f"Invalid parameter(s): {param}",
        "data": {"status": 400, "params": {param: why}},
    }
    return web.json_response(body, status=400)


def _error(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"code": code, "message": message, "data": {"status": status}}, status=status, headers=headers
    )

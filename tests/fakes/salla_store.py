"""A fake Salla store: the Merchant API v2 endpoints the hub uses, on a real 127.0.0.1 port.

Usage::

    async with FakeSalla() as store:              # settings: {"access_token": store.token,
        order = store.add_order()                 #            "api_base_url": store.origin}
        store.update_order(order["id"], status="completed")   # a slug; bumps updated_at
        store.throttle(limit=5, window=1.0)       # the per-window budget; 429 past it (store.too_many)
        store.fail(500, times=2); store.fail_json()            # the next answers fail
        store.revoke()                            # the token is refused (401) from now on
        store.remove_webhooks()                   # Salla dropped every subscription
        await store.send_webhook("order.updated", order)       # signed POST to the subscribed url
        store.requests                            # [Recorded(method, path, query, authorization, status)]

Routes under ``/admin/v2`` (as documented): ``GET /orders`` (``page``, ``per_page`` ≤ 60,
``from_date``/``to_date`` on the creation date, newest first, summaries: no amounts, item names
and quantities only; ``pagination {count, total, perPage, currentPage, totalPages, links}``),
``GET /orders/{id}`` (the full order), ``GET /webhooks``,
``POST /webhooks/subscribe`` (same url and event update the existing one), ``DELETE
/webhooks/unsubscribe?id=|url=``. Every answer carries ``X-RateLimit-Limit/-Remaining/-Reset``
(epoch seconds); past the budget: 429 with ``Retry-After``. Errors: ``{"status", "success": false,
"error": {"code", "message"}}``. Webhooks are signed like Salla's Signature strategy:
``X-Salla-Signature`` = hex HMAC-SHA256 of the body with the subscription's ``secret``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.fakes.loopback import serve

TOKEN = "salla_fake_access_token"
MAX_PER_PAGE = 60
RIYADH = timedelta(hours=3)
SLUG_NAMES = {"under_review": "بإنتظار المراجعة", "in_progress": "قيد التنفيذ", "completed": "تم التنفيذ"}


def salla_date(moment: datetime) -> dict[str, Any]:
    """A Salla date object (store time, Asia/Riyadh) for a UTC moment."""
    local = moment.astimezone(UTC) + RIYADH
    return {"date": local.strftime("%Y-%m-%d %H:%M:%S.%f"), "timezone_type": 3, "timezone": "Asia/Riyadh"}


def make_order(order_id: int, *, at: datetime, slug: str = "under_review") -> dict[str, Any]:
    """A full Salla order (the order details model) worth 115 SAR: one line of 2 × 50 plus 15 shipping."""
    return {
        "id": order_id,
        "reference_id": 40000000 + order_id,
        "date": salla_date(at),
        "updated_at": salla_date(at),
        "source": "store",
        "status": {"id": 566146469, "name": SLUG_NAMES.get(slug, slug), "slug": slug},
        "payment_method": "mada",
        "is_pending_payment": False,
        "currency": "SAR",
        "amounts": {
            "sub_total": {"amount": 100, "currency": "SAR"},
            "shipping_cost": {"amount": 15, "currency": "SAR"},
            "cash_on_delivery": {"amount": 0, "currency": "SAR"},
            "tax": {"percent": "0.00", "amount": {"amount": 0, "currency": "SAR"}},
            "discounts": [],
            "total": {"amount": 115, "currency": "SAR"},
        },
        "customer": {
            "id": 1779795066,
            "first_name": "Sara",
            "last_name": f"Customer {order_id}",
            "mobile": 501234567,
            "mobile_code": "+966",
            "email": f"c{order_id}@example.sa",
        },
        "items": [
            {
                "id": order_id * 10,
                "name": "Arabic Coffee Set",
                "sku": "ACS-001",
                "quantity": 2,
                "product": {"id": 2047473815, "name": "Arabic Coffee Set"},
                "amounts": {
                    "price_without_tax": {"amount": 50, "currency": "SAR"},
                    "total": {"amount": 100, "currency": "SAR"},
                },
            }
        ],
    }


def summary(order: dict[str, Any]) -> dict[str, Any]:
    """What the documented list answer shows of an order."""
    return {
        "id": order["id"],
        "reference_id": order["reference_id"],
        "total": order["amounts"]["total"],
        "date": order["date"],
        "status": order["status"],
        "can_cancel": False,
        "payment_method": order["payment_method"],
        "is_pending_payment": order["is_pending_payment"],
        "items": [{"name": item["name"], "quantity": item["quantity"]} for item in order["items"]],
    }


@dataclass
class Recorded:
    """One request the fake got."""

    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    status: int


@dataclass
class FakeSalla:
    """The fake store; see the module docstring."""

    token: str = TOKEN
    merchant: int = 193718979
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    too_many: int = 0
    origin: str = ""
    limit: int = 10_000
    window: float = 60.0
    budget_headers: bool = True
    _revoked: bool = False
    _failures: list[tuple[int, bytes, dict[str, str]]] = field(default_factory=list)
    _window_start: float = 0.0
    _used: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))
    _runner: web.AppRunner | None = None

    # ---- driving the fake ----------------------------------------------------------------

    def add_order(self, *, at: datetime | None = None, slug: str = "under_review") -> dict[str, Any]:
        """A new order (ids ascend), created and last updated at ``at`` (default now)."""
        order = make_order(next(self._ids), at=at or datetime.now(UTC), slug=slug)
        self.orders[order["id"]] = order
        return order

    def update_order(self, order_id: int, *, status: str | None = None, **changes: Any) -> dict[str, Any]:
        """Change an order (``status`` is a slug) and bump its ``updated_at`` past the previous one."""
        order = self.orders[order_id]
        order.update(changes)
        if status is not None:
            order["status"] = {"id": 1, "name": SLUG_NAMES.get(status, status), "slug": status}
        previous = datetime.strptime(order["updated_at"]["date"], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC) - RIYADH
        order["updated_at"] = salla_date(max(datetime.now(UTC), previous + timedelta(milliseconds=1)))
        return order

    def throttle(self, *, limit: int = 60, window: float = 60.0, budget_headers: bool = True) -> None:
        """Allow ``limit`` requests per ``window`` s (default: Salla's smallest plan, 60 a minute).

        ``budget_headers=False`` hides X-RateLimit-* (to test a client that only has 429s to go by).
        """
        self.limit, self.window, self.budget_headers = limit, window, budget_headers
        self._window_start, self._used = time.time(), 0

    def fail(self, status: int, *, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next ``times`` requests with ``status``."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        body = orjson.dumps({"status": status, "success": False, "error": {"code": "error", "message": "failed"}})
        self._failures.extend([(status, body, headers)] * times)

    def fail_json(self, *, times: int = 1) -> None:
        """Answer the next ``times`` requests 200 with a body that is not JSON."""
        self._failures.extend([(200, b"<html>maintenance</html>", {})] * times)

    def revoke(self) -> None:
        """The merchant uninstalled the app: the token is refused from now on."""
        self._revoked = True

    def remove_webhooks(self) -> None:
        """Salla dropped every subscription (e.g. after failed deliveries)."""
        self.webhooks.clear()

    async def send_webhook(self, topic: str, order: dict[str, Any]) -> int:
        """POST ``topic`` for ``order`` to the url subscribed to it, signed; the receiver's status."""
        hook = next(h for h in self.webhooks.values() if h["event"] == topic)
        data: dict[str, Any] = order
        if topic == "order.status.updated":  # a status-history record with the order inside
            data = {"id": 198290473, "status": order["status"]["name"], "customized": None, "order": order}
        envelope = {"event": topic, "merchant": self.merchant, "created_at": _event_time(), "data": data}
        body = orjson.dumps(envelope)
        headers = {
            "Content-Type": "application/json",
            "X-Salla-Signature": hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest(),
            "X-Salla-Security-Strategy": "Signature",
        }
        async with aiohttp.ClientSession() as session, session.post(hook["url"], data=body, headers=headers) as resp:
            return resp.status

    # ---- the server -----------------------------------------------------------------------

    async def __aenter__(self) -> FakeSalla:
        app = web.Application(middlewares=[self._gate])
        app.router.add_get("/admin/v2/orders", self._list_orders)
        app.router.add_get("/admin/v2/orders/{order_id}", self._order_details)
        app.router.add_get("/admin/v2/webhooks", self._list_webhooks)
        app.router.add_post("/admin/v2/webhooks/subscribe", self._subscribe)
        app.router.add_delete("/admin/v2/webhooks/unsubscribe", self._unsubscribe)
        self._runner, self.origin = await serve(app)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await self._checked(request, handler)
        self.requests.append(
            Recorded(request.method, request.path, dict(request.query), request.headers.get("Authorization"), 0)
        )
        self.requests[-1].status = response.status
        return response

    async def _checked(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        now = time.time()
        if now - self._window_start >= self.window:
            self._window_start, self._used = now, 0
        self._used += 1
        reset = self._window_start + self.window
        budget = {}
        if self.budget_headers:
            budget = {
                "X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(max(0, self.limit - self._used)),
                "X-RateLimit-Reset": str(math.ceil(reset)),
            }
        if self._used > self.limit:
            self.too_many += 1
            retry = {"Retry-After": str(max(1, math.ceil(reset - now)))}
            return _error(429, "Too Many Attempts.", {**budget, **retry})
        if self._failures:
            status, body, headers = self._failures.pop(0)
            return web.Response(status=status, body=body, headers={**budget, **headers})
        if self._revoked or request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "The access token is invalid or has been revoked.", budget, code="Unauthorized")
        response = await handler(request)
        response.headers.update(budget)
        return response

    async def _list_orders(self, request: web.Request) -> web.Response:
        page = max(1, int(request.query.get("page", "1")))
        per_page = min(int(request.query.get("per_page", "15")), MAX_PER_PAGE)
        # from_date / to_date (yyyy-mm-dd) filter on the creation date, in store time, as documented
        lower, upper = request.query.get("from_date"), request.query.get("to_date")
        matching = [
            o
            for o in self.orders.values()
            if (not lower or o["date"]["date"][:10] >= lower) and (not upper or o["date"]["date"][:10] <= upper)
        ]
        newest_first = sorted(matching, key=lambda o: o["id"], reverse=True)
        chunk = newest_first[(page - 1) * per_page : page * per_page]
        pages = max(1, math.ceil(len(newest_first) / per_page))
        pagination = {
            "count": len(chunk),
            "total": len(newest_first),
            "perPage": per_page,
            "currentPage": page,
            "totalPages": pages,
            "links": {"next": f"{self.origin}/admin/v2/orders?page={page + 1}"} if page < pages else {},
        }
        return _ok([summary(o) for o in chunk], pagination=pagination)

    async def _order_details(self, request: web.Request) -> web.Response:
        order = self.orders.get(int(request.match_info["order_id"]))
        return _ok(order) if order is not None else _error(404, "The order does not exist.", {})

    async def _list_webhooks(self, request: web.Request) -> web.Response:
        hooks = [{k: v for k, v in hook.items() if k != "secret"} for hook in self.webhooks.values()]
        pagination = {"count": len(hooks), "total": len(hooks), "perPage": 65, "currentPage": 1, "totalPages": 1}
        return _ok(hooks, pagination={**pagination, "links": {}})

    async def _subscribe(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not isinstance(body.get("event"), str) or not isinstance(body.get("url"), str):
            return _error(422, "event and url are required", {})
        hook = next((h for h in self.webhooks.values() if (h["event"], h["url"]) == (body["event"], body["url"])), None)
        if hook is None:
            hook = {"id": 60587520 + len(self.requests), "type": "manual", "rule": None, "headers": {}}
        hook.update(
            name=body.get("name"),
            event=body["event"],
            url=body["url"],
            version=body.get("version", 2),
            secret=body.get("secret", ""),
        )
        self.webhooks[hook["id"]] = hook
        return _ok({k: v for k, v in hook.items() if k != "secret"})

    async def _unsubscribe(self, request: web.Request) -> web.Response:
        hook_id, url = request.query.get("id"), request.query.get("url")
        doomed = [k for k, h in self.webhooks.items() if str(k) == hook_id or (url is not None and h["url"] == url)]
        for key in doomed:
            del self.webhooks[key]
        return web.json_response({"status": 202, "success": True, "data": {"message": "deleted"}}, status=202)


def _ok(data: Any, **extra: Any) -> web.Response:
    return web.json_response({"status": 200, "success": True, "data": data, **extra})


def _error(status: int, message: str, headers: dict[str, str], *, code: str = "error") -> web.Response:
    body = {"status": status, "success": False, "error": {"code": code, "message": message}}
    return web.json_response(body, status=status, headers=headers)


def _event_time() -> str:
    """Salla's event ``created_at``, a JavaScript date string in store time."""
    local = datetime.now(UTC) + RIYADH
    return local.strftime("%a %b %d %Y %H:%M:%S GMT+0300")

"""A fake Zid store: the manager API endpoints the hub uses, on a real 127.0.0.1 port.

Usage::

    async with FakeZid() as store:        # settings: {"authorization": store.authorization,
        order = store.add_order()         #   "manager_token": store.manager_token, "api_base_url": store.origin}
        store.update_order(order["id"], status="preparing")   # an order_status code; bumps updated_at
        store.throttle(limit=60, window=1.0)                 # the leaky bucket; 429 past it (store.too_many)
        store.fail(500, times=2); store.fail_json()          # the next answers fail
        store.revoke()                    # the tokens are refused (401) from now on
        store.remove_webhooks()           # Zid dropped every subscription
        await store.send_webhook("order.status.update", order)   # POST the order to the registered url
        store.requests                    # [Recorded(method, path, query, authorization, status)]

Routes under ``/v1`` (as documented): ``GET /managers/store/orders`` (``page``, ``per_page`` ≤ 100,
``date_from``/``date_to`` on ``date_attribute`` (``created_at`` or ``updated_at``), ``sort_by``
asc|desc by creation, ``payload_type=default`` includes ``products``; answer ``{"status": "object",
"orders", "total_order_count", "page"}``), ``GET``/``POST /managers/webhooks``, ``DELETE
/managers/webhooks/{id}``. Auth: ``Authorization: Bearer …`` and ``X-Manager-Token``. Throttling
answers 429 with ``Retry-After`` (Zid documents no budget headers). Webhooks carry the bare Order
object and no signature, to the ``target_url`` exactly as registered (its ``?token=`` included).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.fakes.loopback import serve

AUTHORIZATION = "zid_fake_partner_authorization"
MANAGER_TOKEN = "zid_fake_manager_token"
MAX_PER_PAGE = 100
STAMP = "%Y-%m-%d %H:%M:%S"  # Zid's timestamps, UTC


def make_order(order_id: int, *, at: datetime, status: str = "new") -> dict[str, Any]:
    """A Zid Order object worth 126.50 SAR: one line of 2 × 50, 15 shipping, 11.50 VAT."""
    stamp = at.astimezone(UTC).strftime(STAMP)
    return {
        "id": order_id,
        "code": f"Z{order_id}",
        "store_id": 251073,
        "currency_code": "SAR",
        "order_status": {"name": status, "code": status},
        "customer": {"id": 2083543, "name": f"Customer {order_id}", "email": f"c{order_id}@example.sa"},
        "order_total": "126.50",
        "payment_status": "paid",
        "created_at": stamp,
        "updated_at": stamp,
        "payment": {
            "method": {"code": "zid_credit_card"},
            "invoice": [
                {"code": "sub_totals", "value": "100.00"},
                {"code": "shipping", "value": "15.00"},
                {"code": "vat", "value": "11.50"},
                {"code": "total", "value": "126.50"},
            ],
        },
        "products": [
            {"id": "p-1", "sku": "ACS-001", "name": "Arabic Coffee Set", "quantity": 2, "price": 50, "total": 100}
        ],
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
class FakeZid:
    """The fake store; see the module docstring."""

    authorization: str = AUTHORIZATION
    manager_token: str = MANAGER_TOKEN
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    too_many: int = 0
    origin: str = ""
    limit: int = 10_000
    window: float = 60.0
    _revoked: bool = False
    _failures: list[tuple[int, bytes, dict[str, str]]] = field(default_factory=list)
    _window_start: float = 0.0
    _used: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(44834001))
    _runner: web.AppRunner | None = None

    # ---- driving the fake ----------------------------------------------------------------

    def add_order(self, *, at: datetime | None = None, status: str = "new") -> dict[str, Any]:
        """A new order (ids ascend), created and last updated at ``at`` (default now)."""
        order = make_order(next(self._ids), at=at or datetime.now(UTC), status=status)
        self.orders[order["id"]] = order
        return order

    def update_order(self, order_id: int, *, status: str | None = None, **changes: Any) -> dict[str, Any]:
        """Change an order (``status`` is an ``order_status.code``) and bump ``updated_at`` by ≥ 1 s."""
        order = self.orders[order_id]
        order.update(changes)
        if status is not None:
            order["order_status"] = {"name": status, "code": status}
        previous = _parse(order["updated_at"])
        order["updated_at"] = max(datetime.now(UTC), previous + timedelta(seconds=1)).strftime(STAMP)
        return order

    def throttle(self, *, limit: int = 60, window: float = 60.0) -> None:
        """Allow ``limit`` requests per ``window`` s (default: Zid's bucket of 60); 429 + ``Retry-After`` past it."""
        self.limit, self.window = limit, window
        self._window_start, self._used = time.time(), 0

    def fail(self, status: int, *, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next ``times`` requests with ``status``."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        body = orjson.dumps({"status": "error", "message": {"type": "error", "description": "failed"}})
        self._failures.extend([(status, body, headers)] * times)

    def fail_json(self, *, times: int = 1) -> None:
        """Answer the next ``times`` requests 200 with a body that is not JSON."""
        self._failures.extend([(200, b"<html>maintenance</html>", {})] * times)

    def revoke(self) -> None:
        """The merchant removed the app: the tokens are refused from now on."""
        self._revoked = True

    def remove_webhooks(self) -> None:
        """Zid dropped every subscription."""
        self.webhooks.clear()

    async def send_webhook(self, topic: str, order: dict[str, Any]) -> int:
        """POST ``order`` to the ``target_url`` subscribed to ``topic``; the receiver's status."""
        hook = next(h for h in self.webhooks.values() if h["event"] == topic)
        async with aiohttp.ClientSession() as session, session.post(hook["target_url"], json=order) as resp:
            return resp.status

    # ---- the server -----------------------------------------------------------------------

    async def __aenter__(self) -> FakeZid:
        app = web.Application(middlewares=[self._gate])
        app.router.add_get("/v1/managers/store/orders", self._list_orders)
        app.router.add_get("/v1/managers/webhooks", self._list_webhooks)
        app.router.add_post("/v1/managers/webhooks", self._create_webhook)
        app.router.add_delete("/v1/managers/webhooks/{hook_id}", self._delete_webhook)
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
            Recorded(
                request.method, request.path, dict(request.query), request.headers.get("Authorization"), response.status
            )
        )
        return response

    async def _checked(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        now = time.time()
        if now - self._window_start >= self.window:
            self._window_start, self._used = now, 0
        self._used += 1
        if self._used > self.limit:
            self.too_many += 1
            retry = str(max(1, math.ceil(self._window_start + self.window - now)))
            return _error(429, "Too Many Requests", {"Retry-After": retry})
        if self._failures:
            status, body, headers = self._failures.pop(0)
            return web.Response(status=status, body=body, headers=headers)
        authorized = (
            request.headers.get("Authorization") == f"Bearer {self.authorization}"
            and request.headers.get("X-Manager-Token") == self.manager_token
        )
        if self._revoked or not authorized:
            return _error(401, "Unauthenticated: the store token is invalid or revoked.", {})
        return await handler(request)

    async def _list_orders(self, request: web.Request) -> web.Response:
        query = request.query
        page = max(1, int(query.get("page", "1")))
        per_page = min(int(query.get("per_page", "15")), MAX_PER_PAGE)
        attribute = query.get("date_attribute", "created_at")
        if attribute not in ("created_at", "updated_at"):
            return _error(422, "date_attribute: created_at or updated_at", {})
        lower, upper = _filter_time(query.get("date_from")), _filter_time(query.get("date_to"))
        matching = [
            o
            for o in self.orders.values()
            if (lower is None or _parse(o[attribute]) >= lower) and (upper is None or _parse(o[attribute]) <= upper)
        ]
        matching.sort(key=lambda o: (o["created_at"], o["id"]), reverse=query.get("sort_by", "desc") != "asc")
        chunk = matching[(page - 1) * per_page : page * per_page]
        if query.get("payload_type") != "default":  # the "simple" payload has no products
            chunk = [{k: v for k, v in o.items() if k != "products"} for o in chunk]
        return web.json_response(
            {"status": "object", "orders": chunk, "total_order_count": len(matching), "page": page}
        )

    async def _list_webhooks(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "object", "webhooks": list(self.webhooks.values())})

    async def _create_webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not isinstance(body.get("event"), str) or not isinstance(body.get("target_url"), str):
            return _error(422, "event and target_url are required", {})
        hook = {
            "id": str(uuid.uuid4()),
            "event": body["event"],
            "target_url": body["target_url"],
            "original_id": body.get("original_id"),
            "subscriber": body.get("subscriber"),
            "conditions": body.get("conditions"),
            "store_id": "251073",
            "status": "ready",
        }
        self.webhooks[hook["id"]] = hook
        return web.json_response(hook)

    async def _delete_webhook(self, request: web.Request) -> web.Response:
        if self.webhooks.pop(request.match_info["hook_id"], None) is None:
            return _error(404, "webhook not found", {})
        return web.json_response({"status": "object", "message": "deleted"})


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)


def _filter_time(value: str | None) -> datetime | None:
    if not value:
        return None
    for pattern in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d%z"):
        with contextlib.suppress(ValueError):  # Zid's plain forms are UTC: "+0000" makes them aware
            return datetime.strptime(value if "T" in value else value + "+0000", pattern)  # noqa: DTZ007
    return None


def _error(status: int, description: str, headers: dict[str, str]) -> web.Response:
    body = {"status": "error", "message": {"type": "error", "code": None, "description": description}}
    return web.json_response(body, status=status, headers=headers)

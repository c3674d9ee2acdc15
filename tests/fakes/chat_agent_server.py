"""A fake chat-commerce system speaking seed 000's ``GET /api/v1/orders``, on a real 127.0.0.1 port.

It serves :attr:`FakeChatAgent.orders` newest first, filtered by ``date_from`` (their creation
date), paged by ``page``/``per_page`` (capped at ``max_per_page``), with seed 000's envelope and
``meta {current_page, per_page, total}``. It wants ``Authorization: Bearer <api_key>``, records every
request it gets, and answers the next requests with queued failures (:meth:`fail`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.fakes.loopback import serve

API_KEY = "sk_live_fake_chat_agent_key"


def make_order(number: int, *, created: datetime | None = None, status: str = "pending") -> dict[str, Any]:
    """A seed 000 Order object (id ``number``) created at ``created`` (default: a minute apart from now)."""
    at = created or datetime.now(UTC) - timedelta(minutes=number)
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    return {
        "id": number,
        "contact_id": 15,
        "customer_name": f"Customer {number}",
        "customer_phone": "+966501234567",
        "customer_email": f"c{number}@example.com",
        "status": status,
        "subtotal": 450.00,
        "total": 450.00,
        "currency": "SAR",
        "shipping_address": "123 King Fahd Road, Riyadh",
        "notes": None,
        "created_by": "ai_agent",
        "items": [
            {
                "id": number * 10,
                "product_id": 5,
                "product_name": "Premium T-Shirt",
                "product_sku": "TSH-001",
                "quantity": 3,
                "unit_price": 150.00,
                "total_price": 450.00,
            }
        ],
        "created_at": stamp,
        "updated_at": stamp,
    }


@dataclass
class Recorded:
    """One request the fake got."""

    query: dict[str, str]
    authorization: str | None
    status: int


@dataclass
class FakeChatAgent:
    """The fake remote; ``async with FakeChatAgent(orders=[...]) as fake`` serves at ``fake.base_url``."""

    orders: list[dict[str, Any]] = field(default_factory=list)
    api_key: str = API_KEY
    max_per_page: int = 100
    requests: list[Recorded] = field(default_factory=list)
    _failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    base_url: str = ""

    def fail(self, status: int, *, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` (and ``Retry-After`` when given)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self._failures.extend([(status, headers)] * times)

    async def __aenter__(self) -> FakeChatAgent:
        app = web.Application()
        app.router.add_get("/api/v1/orders", self._list_orders)
        self._runner, self.base_url = await serve(app)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _answer(self, request: web.Request, status: int, body: dict[str, Any], **headers: str) -> web.Response:
        self.requests.append(Recorded(dict(request.query), request.headers.get("Authorization"), status))
        return web.json_response(body, status=status, headers=headers or None)

    async def _list_orders(self, request: web.Request) -> web.Response:
        if self._failures:
            status, headers = self._failures.pop(0)
            return self._answer(request, status, {"success": False, "message": "try later"}, **headers)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._answer(request, 401, {"success": False, "message": "Unauthenticated."})
        page = int(request.query.get("page", "1"))
        per_page = min(int(request.query.get("per_page", "25")), self.max_per_page)
        date_from = request.query.get("date_from")
        matching = [o for o in self.orders if date_from is None or o["created_at"][:10] >= date_from]
        matching.sort(key=lambda o: (o["created_at"], str(o.get("id"))), reverse=True)
        start = (page - 1) * per_page
        return self._answer(
            request,
            200,
            {
                "success": True,
                "data": matching[start : start + per_page],
                "meta": {"current_page": page, "per_page": per_page, "total": len(matching)},
                "message": "Orders retrieved successfully.",
            },
        )

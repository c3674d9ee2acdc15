"""Salla pull client: the Merchant API v2 (``https://api.salla.dev/admin/v2``) as far as the hub needs it.

Settings: ``{"access_token"}`` (``Authorization: Bearer …``), optional ``api_base_url`` (replaces
``https://api.salla.dev``; paths stay ``/admin/v2/…``).

- Orders: ``GET /orders?page=&per_page=60`` (60 is the documented maximum; the answer's
  ``pagination {currentPage, totalPages, total}`` drives the cursor). The list holds summaries
  (no amounts, items without prices), so every order is read through ``GET /orders/{id}``. Salla
  documents no "updated since" filter (``from_date`` is the creation date) and no sort order, so
  every page is read and an order whose ``updated_at`` (when the answer has one) is older than
  ``since`` is skipped before its details are fetched. Each order returned carries
  ``_hub_fetched_at`` (when it was read): the version clock of an order without ``updated_at``.
- Webhooks: ``GET /webhooks``, ``POST /webhooks/subscribe`` (``{name, event, url, version: 2,
  secret}``: the connection's secret signs ``X-Salla-Signature``), ``DELETE /webhooks/unsubscribe?id=``.
- Limits: ``X-RateLimit-Limit``/``-Remaining``/``-Reset`` (epoch seconds) on every answer, 429 with
  ``Retry-After`` past them (``hub.platforms.rest_json`` waits for the reset before that happens).

Docs relied on: https://docs.salla.dev/api-5394146 (List Orders), https://docs.salla.dev/api-5394147
(Order Details), https://docs.salla.dev/doc-421124 (Pagination), https://docs.salla.dev/doc-421125
(Rate Limiting), https://docs.salla.dev/doc-421119 (Webhooks), https://docs.salla.dev/api-5394134
(Register Webhook), https://docs.salla.dev/5394137e0 (Deactivate Webhook).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from connectors import salla as connector
from connectors.base import ConnectorError, NormalizedOrder
from hub.platforms.chat_remote import PermanentRemoteError, TransientRemoteError
from hub.platforms.pull import InboundForm, OrdersPage, RemoteWebhook, Sleep
from hub.platforms.rest_json import RestJson, origin_errors, origin_of, text_setting

SOURCE = "salla"
DEFAULT_ORIGIN = "https://api.salla.dev"
PREFIX = "/admin/v2"
PER_PAGE = 60  # Salla's documented maximum for per_page
TOPICS = ("order.created", "order.updated", "order.status.updated", "order.cancelled", "order.refunded")
WEBHOOK_VERSION = 2
DETAIL_TRIES = 5  # per order details request, 429s included
FETCHED_AT = "_hub_fetched_at"  # added to each order read: when the client read it (ISO 8601, UTC)


def settings_errors(settings: Mapping[str, Any]) -> dict[str, str]:
    """{} for no credentials or a usable ``access_token``; else ``{field: why}``."""
    errors = origin_errors(settings)
    token = settings.get("access_token")
    if token is not None and text_setting(settings, "access_token") is None:
        errors["access_token"] = "must be a non-empty string"
    return errors


def has_credentials(settings: Mapping[str, Any]) -> bool:
    """Whether the connection can call Salla's API (an access token is set)."""
    return text_setting(settings, "access_token") is not None


def api_origin(settings: Mapping[str, Any]) -> str:
    """``api_base_url`` when set, else Salla's API host."""
    return origin_of(settings, DEFAULT_ORIGIN)


class Client:
    """Salla's Merchant API for one store (implements ``hub.platforms.pull.PlatformClient``)."""

    source = SOURCE
    topics = TOPICS

    def __init__(
        self,
        settings: Mapping[str, Any],
        *,
        session: aiohttp.ClientSession,
        secret: str,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        token = text_setting(settings, "access_token") or ""
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._api = RestJson(session, origin=api_origin(settings) + PREFIX, headers=headers, sleep=sleep)
        self._secret = secret
        self._sleep = sleep

    async def fetch_orders(self, *, since: datetime, cursor: str | None) -> OrdersPage:
        """From page ``cursor`` (a page number) on, the next orders changed since ``since``, read in full.

        Pages whose orders are all older than ``since`` are read through rather than answered empty:
        an empty page would end the caller's paging although later pages may hold changed orders.
        """
        page = _page_number(cursor)
        while True:
            params = {"page": str(page), "per_page": str(PER_PAGE)}
            answer = await self._api.request("GET", "/orders", params=params)
            orders = []
            for summary in _data_list(answer, "GET /orders"):
                if _older_than(summary, since):
                    continue
                order = await self._details(summary)
                if order is not None and not _older_than(order, since):
                    orders.append(order)
            current, last, total = _pagination(answer, page)
            if orders or current >= last:
                return OrdersPage(orders=orders, next_cursor=str(current + 1) if current < last else None, total=total)
            page = current + 1

    async def list_webhooks(self) -> list[RemoteWebhook]:
        """Every webhook the app holds on the store (all pages of ``GET /webhooks``)."""
        hooks: list[RemoteWebhook] = []
        page = 1
        while True:
            answer = await self._api.request("GET", "/webhooks", params={"page": str(page)})
            hooks.extend(_webhook(item) for item in _data_list(answer, "GET /webhooks"))
            current, last, _ = _pagination(answer, page)
            if current >= last:
                return hooks
            page = current + 1

    async def create_webhook(self, *, topic: str, address: str) -> RemoteWebhook:
        """Subscribe ``address`` to ``topic``, signed with the connection's secret."""
        body = {
            "name": f"Orderhub {topic}",
            "event": topic,
            "url": address,
            "version": WEBHOOK_VERSION,
            "secret": self._secret,
        }
        answer = await self._api.request("POST", "/webhooks/subscribe", json=body)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise PermanentRemoteError("POST /webhooks/subscribe: the answer has no 'data' object")
        return _webhook(data)

    async def delete_webhook(self, platform_id: str) -> None:
        """Unsubscribe one webhook by its Salla id (gone already is fine)."""
        await self._api.request("DELETE", "/webhooks/unsubscribe", params={"id": platform_id}, missing_ok=True)

    def normalize(self, order: Mapping[str, Any]) -> NormalizedOrder:
        """The order in the unified model (``connectors.salla.normalize_order``)."""
        return connector.normalize_order(dict(order), fetched_at=_fetched_at(order))

    async def _details(self, summary: dict[str, Any]) -> dict[str, Any] | None:
        order_id = summary.get("id")
        if isinstance(order_id, bool) or not isinstance(order_id, int | str) or not str(order_id).strip():
            return summary  # unreadable: the engine keeps it as a failed event with normalize's reason
        answer = await self._details_answer(str(order_id))
        if answer is None:
            return None  # deleted between the list and now
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise PermanentRemoteError(f"GET /orders/{order_id}: the answer has no 'data' object")
        # Salla's order has no updated_at to version it by: the moment it was read travels with it,
        # so whoever normalizes it later (another job, a replay) dates it the same way.
        return {**data, FETCHED_AT: datetime.now(UTC).isoformat()}

    async def _details_answer(self, order_id: str) -> Any:
        # A page costs one request per order: a 429 midway is waited out here (Retry-After) rather
        # than raised, or a page larger than the platform's window could never complete.
        for _ in range(DETAIL_TRIES - 1):
            try:
                return await self._api.request("GET", f"/orders/{order_id}", missing_ok=True)
            except TransientRemoteError as exc:
                if exc.retry_after is None:
                    raise
                await self._sleep(exc.retry_after)
        return await self._api.request("GET", f"/orders/{order_id}", missing_ok=True)


def _page_number(cursor: str | None) -> int:
    if cursor is None:
        return 1
    if not cursor.isdigit() or int(cursor) < 1:
        raise PermanentRemoteError(f"not a Salla page cursor: {cursor!r}")
    return int(cursor)


def _data_list(answer: Any, where: str) -> list[dict[str, Any]]:
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise PermanentRemoteError(f"{where}: the answer has no 'data' list of objects")
    return data


def _pagination(answer: dict[str, Any], page: int) -> tuple[int, int, int | None]:
    """(currentPage, totalPages, total); a list without ``pagination`` is a single page."""
    node = answer.get("pagination")
    if not isinstance(node, dict):
        return page, page, None
    current = _count(node.get("currentPage")) or page
    last = _count(node.get("totalPages"))
    return current, current if last is None else last, _count(node.get("total"))


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _fetched_at(order: Mapping[str, Any]) -> datetime | None:
    value = order.get(FETCHED_AT)
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _older_than(order: dict[str, Any], since: datetime) -> bool:
    if order.get("updated_at") in (None, "", []):
        return False
    try:
        return connector.salla_time(order["updated_at"], "updated_at") < since
    except ConnectorError:
        return False  # unreadable: kept, so normalize reports it


def _webhook(item: dict[str, Any]) -> RemoteWebhook:
    hook_id, event, url = item.get("id"), item.get("event"), item.get("url")
    if hook_id is None or not isinstance(event, str) or not isinstance(url, str):
        raise PermanentRemoteError(f"a Salla webhook without id, event or url: {str(item)[:200]}")
    return RemoteWebhook(topic=event, platform_id=str(hook_id), address=url)


def inbound_form(order: Mapping[str, Any]) -> InboundForm:
    """Salla's event envelope around ``order``: ``{"event": "order.updated", "created_at", "data"}``."""
    at = order.get(FETCHED_AT) or datetime.now(UTC).isoformat()
    body = {"event": "order.updated", "created_at": at, "data": order}
    return InboundForm("order.updated", {}, {}, orjson.dumps(body))

"""Zid pull client: Zid's manager API (``https://api.zid.sa/v1``) as far as the hub needs it.

Settings: ``{"authorization", "manager_token"}``, sent as ``Authorization: Bearer {authorization}``
and ``X-Manager-Token: {manager_token}`` with ``Accept-Language: en``; optional ``api_base_url``
(replaces ``https://api.zid.sa``; paths stay ``/v1/managers/…``).

- Orders: ``GET /managers/store/orders?page=&per_page=100&payload_type=default&date_from=&
  date_attribute=updated_at&order_by=created_at&sort_by=asc``: 100 is the documented maximum,
  ``payload_type=default`` includes the products, ``date_attribute=updated_at`` makes ``date_from``
  an "updated since" filter. The answer's ``orders`` list is the Order object the webhooks carry;
  ``total_order_count`` (else a short page) ends the paging.
- Webhooks: ``GET``/``POST /managers/webhooks`` (``{event, target_url, original_id, subscriber}``),
  ``DELETE /managers/webhooks/{id}``. Zid signs nothing: the address registered is the connection's
  inbound URL exactly as given, with its ``?token=``.
- Limits: a leaky bucket of 60 requests per app and store, answered with 429 when full; Zid documents
  no budget headers, so 429's ``Retry-After`` is honoured (and ``X-RateLimit-*`` if ever sent).

Docs relied on: https://docs.zid.sa/list-of-orders (List of Orders),
https://docs.zid.sa/project-613905/create-a-webhook (Create a Webhook),
https://docs.zid.sa/project-613905/api-9148614 (List of Webhooks), https://docs.zid.sa/doc-644369
(Rate Limiting).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from connectors import zid as connector
from connectors.base import NormalizedOrder
from hub.platforms.chat_remote import PermanentRemoteError
from hub.platforms.pull import InboundForm, OrdersPage, RemoteWebhook, Sleep
from hub.platforms.rest_json import RestJson, origin_errors, origin_of, text_setting

SOURCE = "zid"
DEFAULT_ORIGIN = "https://api.zid.sa"
PREFIX = "/v1"
PER_PAGE = 100  # Zid's documented maximum
TOPICS = ("order.create", "order.status.update", "order.payment_status.update")
SUBSCRIBER = "Orderhub"
CREDENTIALS = ("authorization", "manager_token")


def settings_errors(settings: Mapping[str, Any]) -> dict[str, str]:
    """{} for no credentials or both; a missing or blank one is named with why."""
    errors = origin_errors(settings)
    given = [name for name in CREDENTIALS if settings.get(name) is not None]
    for name in CREDENTIALS:
        if settings.get(name) is not None and text_setting(settings, name) is None:
            errors[name] = "must be a non-empty string"
        elif settings.get(name) is None and given:
            other = next(n for n in CREDENTIALS if n != name)
            errors[name] = f"required with {other}"
    return errors


def has_credentials(settings: Mapping[str, Any]) -> bool:
    """Whether the connection can call Zid's API (both tokens set)."""
    return all(text_setting(settings, name) is not None for name in CREDENTIALS)


def api_origin(settings: Mapping[str, Any]) -> str:
    """``api_base_url`` when set, else Zid's API host."""
    return origin_of(settings, DEFAULT_ORIGIN)


class Client:
    """Zid's manager API for one store (implements ``hub.platforms.pull.PlatformClient``)."""

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
        authorization = text_setting(settings, "authorization") or ""
        if not authorization.lower().startswith("bearer "):  # Zid's OAuth answer may already carry the scheme
            authorization = f"Bearer {authorization}"
        headers = {
            "Authorization": authorization,
            "X-Manager-Token": text_setting(settings, "manager_token") or "",
            "Accept-Language": "en",
            "Accept": "application/json",
        }
        self._api = RestJson(session, origin=api_origin(settings) + PREFIX, headers=headers, sleep=sleep)
        self._secret = secret  # unused: Zid signs nothing; the inbound URL carries the token

    async def fetch_orders(self, *, since: datetime, cursor: str | None) -> OrdersPage:
        """Page ``cursor`` (a page number) of the orders updated since ``since``, oldest created first."""
        page = _page_number(cursor)
        params = {
            "page": str(page),
            "per_page": str(PER_PAGE),
            "payload_type": "default",
            "date_from": zid_time(since),
            "date_attribute": "updated_at",
            "order_by": "created_at",
            "sort_by": "asc",
        }
        answer = await self._api.request("GET", "/managers/store/orders", params=params)
        orders = answer.get("orders") if isinstance(answer, dict) else None
        if not isinstance(orders, list) or not all(isinstance(order, dict) for order in orders):
            raise PermanentRemoteError("GET /managers/store/orders: the answer has no 'orders' list of objects")
        total = answer.get("total_order_count")
        total = total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None
        more = page * PER_PAGE < total if total is not None else len(orders) >= PER_PAGE
        return OrdersPage(orders=orders, next_cursor=str(page + 1) if more and orders else None, total=total)

    async def list_webhooks(self) -> list[RemoteWebhook]:
        """The webhooks the store holds for this app."""
        answer = await self._api.request("GET", "/managers/webhooks")
        return [_webhook(item) for item in _webhook_list(answer)]

    async def create_webhook(self, *, topic: str, address: str) -> RemoteWebhook:
        """Subscribe ``address`` (the inbound URL with its token) to ``topic``."""
        body = {"event": topic, "target_url": address, "original_id": 1, "subscriber": SUBSCRIBER}
        answer = await self._api.request("POST", "/managers/webhooks", json=body)
        item = answer.get("webhook", answer.get("data", answer)) if isinstance(answer, dict) else None
        if not isinstance(item, dict):
            raise PermanentRemoteError("POST /managers/webhooks: the answer is not a webhook object")
        return _webhook(item)

    async def delete_webhook(self, platform_id: str) -> None:
        """Delete one webhook by its Zid id (gone already is fine)."""
        await self._api.request("DELETE", f"/managers/webhooks/{platform_id}", missing_ok=True)

    def normalize(self, order: Mapping[str, Any]) -> NormalizedOrder:
        """The order in the unified model (``connectors.zid.normalize_order``, the webhooks' reader)."""
        return connector.normalize_order(dict(order))


def zid_time(moment: datetime) -> str:
    """``date_from`` as Zid's docs write it: ``2020-01-01T00:00:00.000+0000`` (UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _page_number(cursor: str | None) -> int:
    if cursor is None:
        return 1
    if not cursor.isdigit() or int(cursor) < 1:
        raise PermanentRemoteError(f"not a Zid page cursor: {cursor!r}")
    return int(cursor)


def _webhook_list(answer: Any) -> list[dict[str, Any]]:
    items = answer
    if isinstance(answer, dict):
        items = next((answer[key] for key in ("webhooks", "data", "list") if isinstance(answer.get(key), list)), None)
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise PermanentRemoteError("GET /managers/webhooks: the answer holds no list of webhooks")
    return items


def _webhook(item: dict[str, Any]) -> RemoteWebhook:
    hook_id, event, url = item.get("id"), item.get("event"), item.get("target_url")
    if hook_id is None or not isinstance(event, str) or not isinstance(url, str):
        raise PermanentRemoteError(f"a Zid webhook without id, event or target_url: {str(item)[:200]}")
    return RemoteWebhook(topic=event, platform_id=str(hook_id), address=url)


def inbound_form(order: Mapping[str, Any]) -> InboundForm:
    """Zid's webhook body is the order itself; its event name travels in the inbound URL's query."""
    topic = "order.status.update"
    return InboundForm(topic, {}, {"event": topic}, orjson.dumps(order))

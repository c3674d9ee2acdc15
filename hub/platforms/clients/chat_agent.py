"""The chat-agent pull as a :class:`hub.platforms.pull.PlatformClient` (same engine as the platforms).

The remote speaks the chat-commerce API's ``GET /api/v1/orders`` (``date_from`` by creation date,
``page``/``per_page``, ``meta.total``); ``hub.platforms.chat_client`` makes the request. It has no
webhook registration API: the hub subscribes nothing there (``topics`` is empty).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import aiohttp
import orjson

from connectors.base import NormalizedOrder
from connectors.chat_agent import normalize_order
from hub import ssrf
from hub.platforms.chat_client import ChatAgentClient
from hub.platforms.chat_remote import PermanentRemoteError
from hub.platforms.pull import InboundForm, OrdersPage, RemoteWebhook, Sleep

SOURCE = "chat_agent"
PER_PAGE = 100  # the chat-commerce API's maximum


def settings_errors(settings: Mapping[str, Any]) -> dict[str, str]:
    """``base_url`` and ``api_key`` come together; the URL must be one the SSRF guard accepts."""
    base_url, api_key = settings.get("base_url"), settings.get("api_key")
    if base_url is None and api_key is None:
        return {}
    errors: dict[str, str] = {}
    if base_url is None:
        errors["base_url"] = "required with api_key (pull sync needs both)"
    elif not isinstance(base_url, str):
        errors["base_url"] = "expected an http(s) URL"
    else:
        try:
            ssrf.validate_url(base_url)
        except ssrf.UnsafeUrlError as exc:
            errors["base_url"] = exc.reason
    if not isinstance(api_key, str) or not api_key.strip():
        errors["api_key"] = "required with base_url (the remote's Bearer key)"
    return errors


def has_credentials(settings: Mapping[str, Any]) -> bool:
    """True when the connection can be pulled."""
    return isinstance(settings.get("base_url"), str) and isinstance(settings.get("api_key"), str)


def api_origin(settings: Mapping[str, Any]) -> str:
    """Where the pull goes: the remote's base URL."""
    return str(settings["base_url"]).rstrip("/")


class Client:
    """Pages through the remote's order list by creation date."""

    source = SOURCE
    topics: tuple[str, ...] = ()

    def __init__(
        self, settings: Mapping[str, Any], *, session: aiohttp.ClientSession, secret: str, sleep: Sleep = asyncio.sleep
    ) -> None:
        self._remote = ChatAgentClient(session, base_url=api_origin(settings), api_key=str(settings["api_key"]))

    async def fetch_orders(self, *, since: datetime, cursor: str | None) -> OrdersPage:
        """Page ``cursor`` (1 when None); the next page while the remote says there are more."""
        page = int(cursor or "1")
        fetched = await self._remote.fetch_orders(date_from=since.date(), page=page, per_page=PER_PAGE)
        per_page = fetched.per_page or PER_PAGE
        more = len(fetched.orders) >= per_page and (fetched.total is None or page * per_page < fetched.total)
        return OrdersPage(orders=fetched.orders, next_cursor=str(page + 1) if more else None, total=fetched.total)

    async def list_webhooks(self) -> list[RemoteWebhook]:
        """The chat-commerce API has no webhook registration: nothing to list."""
        return []

    async def create_webhook(self, *, topic: str, address: str) -> RemoteWebhook:
        """Never called (``topics`` is empty)."""
        raise PermanentRemoteError("the chat-commerce API has no webhook registration")

    def normalize(self, order: Mapping[str, Any]) -> NormalizedOrder:
        """The chat agent connector's normalization."""
        return normalize_order(order)


def inbound_form(order: Mapping[str, Any]) -> InboundForm:
    """The hub's own envelope, as the chat agent's webhooks carry an order."""
    body = {"type": "order.updated", "data": {"order": order}}
    return InboundForm("order.updated", {}, {}, orjson.dumps(body))

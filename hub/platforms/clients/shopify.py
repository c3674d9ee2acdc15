"""Shopify pull client: the Admin REST API's order list and webhook subscriptions.

Written from Shopify's docs:

- orders: https://shopify.dev/docs/api/admin-rest/latest/resources/order (``GET orders.json``,
  ``status=any``, ``updated_at_min``, ``limit`` up to 250; the list has no documented sort, so the
  cursor pagination below, not the order of the orders, is what makes a pass complete);
- pagination: https://shopify.dev/docs/api/admin-rest/usage/pagination (the ``Link`` header's
  ``rel="next"`` URL carries ``page_info``; a request with ``page_info`` may add only ``limit`` and
  ``fields``);
- rate limits: https://shopify.dev/docs/api/admin-rest/usage/rate-limits (leaky bucket of 40
  requests leaking 2/s on the standard plan, ``X-Shopify-Shop-Api-Call-Limit: used/size`` on every
  answer, 429 with ``Retry-After`` when full);
- webhooks: https://shopify.dev/docs/api/admin-rest/latest/resources/webhook (``webhooks.json``;
  Shopify signs every delivery with the app's client secret, which is the connection's secret).

Auth is the ``X-Shopify-Access-Token`` header. Settings: ``shop_domain`` + ``access_token`` (+
``api_version``, ``api_base_url``); neither of the first two: a webhook-only connection.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson

from connectors.base import NormalizedOrder
from connectors.shopify import normalize_order
from hub import ssrf
from hub.platforms.chat_client import read_capped
from hub.platforms.chat_remote import AuthRevoked, PermanentRemoteError, TransientRemoteError, parse_retry_after
from hub.platforms.pull import InboundForm, OrdersPage, RemoteWebhook, Sleep
from hub.platforms.rest_json import origin_error

SOURCE = "shopify"
DEFAULT_API_VERSION = "2026-10"
PAGE_SIZE = 250  # the documented maximum of ``limit``
# orders/updated fires on every change (paid, fulfilled, cancelled, edited), so those topics would only
# duplicate it; orders/delete is the one change a pull cannot see (the order is gone from the list).
TOPICS = ("orders/create", "orders/updated", "orders/delete")
# Requests kept free in the bucket: other calls of the same app to the same shop share it.
HEADROOM = 2
# The documented plans drain a full bucket in 20 s (40 at 2/s, 80 at 4/s, 400 at 20/s).
DRAIN_SECONDS = 20.0

_SHOP = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+")
_VERSION = re.compile(r"\d{4}-(?:01|04|07|10)|unstable")
_CALL_LIMIT = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
_NEXT_LINK = re.compile(r"<([^>]*)>\s*;[^,]*rel=\"?next\"?")


class _Unprocessable(PermanentRemoteError):
    """A 422: Shopify refused the request's content (e.g. a subscription that already exists)."""


def settings_errors(settings: Mapping[str, Any]) -> dict[str, str]:
    """{} for a webhook-only connection or complete credentials; else ``{field: why}`` for each bad field."""
    errors: dict[str, str] = {}
    base = settings.get("api_base_url")
    if base is not None and (why := origin_error(base)):
        errors["api_base_url"] = why
    shop, token, version = settings.get("shop_domain"), settings.get("access_token"), settings.get("api_version")
    if token is None and shop is None:
        return errors
    if token is None:
        # A shop alone binds webhooks to it; pulling needs its token too.
        if version is not None:
            errors["access_token"] = "required with api_version"
        return errors
    if not isinstance(token, str) or not token.strip():
        errors["access_token"] = "expected the Admin API access token (a non-empty string)"
    if shop is None:
        errors["shop_domain"] = "required with access_token"
    elif not isinstance(shop, str) or not _SHOP.fullmatch(shop.strip().lower()):
        errors["shop_domain"] = "expected the shop's host name, e.g. my-shop.myshopify.com"
    elif base is None and not shop.strip().lower().endswith(".myshopify.com"):
        # The Admin API answers on the myshopify.com host; a custom domain only redirects there.
        errors["shop_domain"] = "expected the shop's myshopify.com host name (not its custom domain)"
    if version is not None and (not isinstance(version, str) or not _VERSION.fullmatch(version)):
        errors["api_version"] = "expected a Shopify API version such as 2026-10 (YYYY-01/04/07/10)"
    return errors


def has_credentials(settings: Mapping[str, Any]) -> bool:
    """True when the settings hold complete, well-formed credentials (the hub can pull and subscribe)."""
    return settings.get("access_token") is not None and not settings_errors(settings)


def api_origin(settings: Mapping[str, Any]) -> str:
    """``api_base_url`` when set, else ``https://{shop_domain}``."""
    base = settings.get("api_base_url")
    if isinstance(base, str) and base:
        return ssrf.validate_url(base).rstrip("/")
    return f"https://{str(settings['shop_domain']).strip().lower()}"


class Client:
    """The Admin REST API of one shop (implements ``hub.platforms.pull.PlatformClient``)."""

    source = SOURCE
    topics = TOPICS

    def __init__(
        self,
        settings: Mapping[str, Any],
        *,
        session: aiohttp.ClientSession,
        secret: str,
        sleep: Sleep = asyncio.sleep,
        timeout: float = 30.0,
    ) -> None:
        self._session = session
        self._secret = secret  # Shopify signs with the app secret; nothing to send at subscription
        self._sleep = sleep
        version = settings.get("api_version") or DEFAULT_API_VERSION
        self._base = f"{api_origin(settings)}/admin/api/{version}"
        self._headers = {"X-Shopify-Access-Token": str(settings["access_token"]).strip(), "Accept": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        # The bucket as the last answer stated it, and when; the leak is estimated in between.
        self._used = 0.0
        self._size = 40.0
        self._stated_at = time.monotonic()
        self._not_before = 0.0  # after a 429: no request before this monotonic time

    async def fetch_orders(self, *, since: datetime, cursor: str | None) -> OrdersPage:
        """Orders updated at or after ``since`` (every status), 250 a page, following the ``Link`` cursor."""
        if cursor is None:
            params = {
                "status": "any",
                "updated_at_min": since.astimezone(UTC).isoformat(timespec="seconds"),
                "limit": str(PAGE_SIZE),
            }
        else:  # Shopify refuses filters beside page_info: they are encoded in it
            params = {"page_info": cursor, "limit": str(PAGE_SIZE)}
        payload, headers = await self._call("GET", "/orders.json", params=params)
        orders = payload.get("orders")
        if not isinstance(orders, list) or not all(isinstance(o, dict) for o in orders):
            raise PermanentRemoteError("Shopify's orders.json answer has no 'orders' list of order objects")
        return OrdersPage(orders=orders, next_cursor=next_page_info(headers.get("Link")))

    async def list_webhooks(self) -> list[RemoteWebhook]:
        """Every webhook subscription of this app on this shop."""
        found: list[RemoteWebhook] = []
        params = {"limit": str(PAGE_SIZE)}
        while True:
            payload, headers = await self._call("GET", "/webhooks.json", params=params)
            hooks = payload.get("webhooks")
            if not isinstance(hooks, list):
                raise PermanentRemoteError("Shopify's webhooks.json answer has no 'webhooks' list")
            found.extend(_webhook(hook) for hook in hooks)
            page_info = next_page_info(headers.get("Link"))
            if page_info is None:
                return found
            params = {"limit": str(PAGE_SIZE), "page_info": page_info}

    async def create_webhook(self, *, topic: str, address: str) -> RemoteWebhook:
        """Subscribe ``address`` to ``topic`` (JSON); an existing identical subscription is returned as is."""
        body = {"webhook": {"topic": topic, "address": address, "format": "json"}}
        try:
            payload, _ = await self._call("POST", "/webhooks.json", json=body)
        except _Unprocessable:
            # 422 "address for this topic has already been taken": subscribing twice is not an error.
            for hook in await self.list_webhooks():
                if hook.topic == topic and hook.address == address:
                    return hook
            raise
        return _webhook(payload.get("webhook"))

    def normalize(self, order: Mapping[str, Any]) -> NormalizedOrder:
        """The REST order in the unified model (``connectors.shopify``)."""
        return normalize_order(order)

    async def _call(
        self, method: str, path: str, *, params: dict[str, str] | None = None, json: Any = None
    ) -> tuple[dict[str, Any], Mapping[str, str]]:
        """One request within the bucket; the JSON object answered and the headers, or a remote error."""
        await self._wait_for_room()
        url = self._base + path
        try:
            async with self._session.request(
                method,
                url,
                params=params,
                json=json,
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,  # the token goes to the configured origin only
            ) as resp:
                status, headers = resp.status, resp.headers.copy()
                body = await read_capped(resp)
        except ssrf.UnsafeUrlError as exc:
            raise PermanentRemoteError(f"Shopify origin refused: {exc.reason}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientRemoteError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        self._note_call_limit(headers.get("X-Shopify-Shop-Api-Call-Limit"))
        if status == 429:
            wait = parse_retry_after(headers.get("Retry-After"))
            if wait is None:  # no Retry-After: one request leaks out of a full bucket
                wait = DRAIN_SECONDS / self._size
            self._not_before = time.monotonic() + wait
            raise TransientRemoteError(f"Shopify throttled {method} {path}: {_reason(body)}", retry_after=wait)
        if status >= 500:
            raise TransientRemoteError(
                f"HTTP {status} from Shopify on {method} {path}",
                retry_after=parse_retry_after(headers.get("Retry-After")),
            )
        if status in (401, 403):
            raise AuthRevoked(_reason(body))
        if status == 422:
            raise _Unprocessable(f"HTTP 422 from Shopify on {method} {path}: {_reason(body)}")
        if not 200 <= status < 300:
            raise PermanentRemoteError(f"HTTP {status} from Shopify on {method} {path}: {_reason(body)}")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise PermanentRemoteError(f"Shopify's answer to {method} {path} is not JSON: {body[:200]!r}") from exc
        if not isinstance(payload, dict):
            raise PermanentRemoteError(f"Shopify's answer to {method} {path} is not a JSON object")
        return payload, headers

    def _note_call_limit(self, header: str | None) -> None:
        match = _CALL_LIMIT.fullmatch(header or "")
        if match and int(match[2]) > 0:
            self._used, self._size = float(match[1]), float(match[2])
            self._stated_at = time.monotonic()

    async def _wait_for_room(self) -> None:
        """Sleep only when the bucket is (nearly) full; with room to spare the request goes at once."""
        now = time.monotonic()
        leak = self._size / DRAIN_SECONDS
        level = max(0.0, self._used - leak * (now - self._stated_at))
        over = level + 1 - (self._size - HEADROOM)
        wait = max(over / leak if over > 0 else 0.0, self._not_before - now)
        if wait > 0:
            await self._sleep(wait)


def next_page_info(link: str | None) -> str | None:
    """The ``page_info`` of the ``rel="next"`` URL in a ``Link`` header; None on the last page."""
    match = _NEXT_LINK.search(link or "")
    if match is None:
        return None
    values = parse_qs(urlsplit(match[1]).query).get("page_info")
    if not values or not values[0]:
        raise PermanentRemoteError(f"Shopify's Link header names a next page without page_info: {link!r:.200}")
    return values[0]


def _webhook(value: Any) -> RemoteWebhook:
    if not isinstance(value, dict) or not isinstance(value.get("topic"), str) or value.get("id") is None:
        raise PermanentRemoteError(f"Shopify's webhook object is not as documented: {value!r:.200}")
    return RemoteWebhook(topic=value["topic"], platform_id=str(value["id"]), address=str(value.get("address") or ""))


def _reason(body: bytes) -> str:
    """Shopify's ``errors`` text (a string, or an object of field → messages), else the body's start."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:300].decode("utf-8", "replace") or "no reason given"
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if isinstance(errors, str):
        return errors
    if isinstance(errors, dict):
        return "; ".join(f"{key}: {value}" for key, value in errors.items())
    return body[:300].decode("utf-8", "replace")


def inbound_form(order: Mapping[str, Any]) -> InboundForm:
    """An ``orders/updated`` webhook carrying ``order`` (the topic travels in its header)."""
    topic = "orders/updated"
    return InboundForm(topic, {"x-shopify-topic": topic}, {}, orjson.dumps(order))

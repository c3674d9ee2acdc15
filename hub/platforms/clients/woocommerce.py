"""WooCommerce pull client: REST API v3 orders and webhooks, HTTP Basic with the consumer key and secret.

Written from WooCommerce's docs and the schema its REST controllers publish:

- orders: https://woocommerce.github.io/woocommerce-rest-api-docs/#list-all-orders (``GET
  /wp-json/wc/v3/orders``; ``page``/``per_page`` up to 100, ``X-WP-Total``/``X-WP-TotalPages``;
  ``modified_after`` + ``dates_are_gmt``, ``orderby`` (``id``, ``modified``, …), ``order``;
  ``status`` defaults to ``any``), as ``WC_REST_CRUD_Controller::get_collection_params`` defines them;
- webhooks: https://woocommerce.github.io/woocommerce-rest-api-docs/#webhooks (``name``, ``topic``,
  ``delivery_url``, ``secret``, ``status``; deliveries are signed with that secret);
- authentication: https://woocommerce.github.io/woocommerce-rest-api-docs/#authentication (Basic
  over HTTPS; plain HTTP only to a loopback test store here, as the credentials travel in clear).

Core WooCommerce documents no rate limit for this API; a host in front of it may answer 429, whose
``Retry-After`` is honoured. Settings: ``store_url`` + ``consumer_key`` + ``consumer_secret`` (+
``api_base_url``); no key and no secret: a webhook-only connection.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from connectors.base import NormalizedOrder
from connectors.woocommerce import normalize_order
from hub import ssrf
from hub.platforms.chat_client import read_capped
from hub.platforms.chat_remote import AuthRevoked, PermanentRemoteError, TransientRemoteError, parse_retry_after
from hub.platforms.pull import InboundForm, OrdersPage, RemoteWebhook, Sleep
from hub.platforms.rest_json import origin_error

SOURCE = "woocommerce"
PAGE_SIZE = 100  # the schema's maximum of ``per_page``
# order.deleted fires when an order is trashed: the one change a pull cannot see.
TOPICS = ("order.created", "order.updated", "order.deleted")
_CREDENTIALS = ("consumer_key", "consumer_secret")


def settings_errors(settings: Mapping[str, Any]) -> dict[str, str]:
    """{} for a webhook-only connection or complete credentials; else ``{field: why}`` for each bad field."""
    errors: dict[str, str] = {}
    base = settings.get("api_base_url")
    if base is not None and (why := origin_error(base)):
        errors["api_base_url"] = why
    store = settings.get("store_url")
    if store is not None and (why := _store_url_error(store)):
        errors["store_url"] = why
    if all(settings.get(key) is None for key in _CREDENTIALS):
        return errors
    for key in _CREDENTIALS:
        value = settings.get(key)
        if value is None:
            other = next(k for k in _CREDENTIALS if k != key)
            errors[key] = f"required with {other}"
        elif not isinstance(value, str) or not value.strip():
            errors[key] = "expected the REST API key's value (a non-empty string)"
    if store is None:
        errors["store_url"] = "required with consumer_key and consumer_secret"
    if not errors and not _may_send_basic(api_origin(settings)):
        where = "api_base_url" if base is not None else "store_url"
        errors[where] = (
            "must be https: the consumer key and secret travel in HTTP Basic (http only to a loopback store)"
        )
    return errors


def has_credentials(settings: Mapping[str, Any]) -> bool:
    """True when the settings hold complete, well-formed credentials (the hub can pull and subscribe)."""
    return settings.get("consumer_key") is not None and not settings_errors(settings)


def api_origin(settings: Mapping[str, Any]) -> str:
    """``api_base_url`` when set, else the origin of ``store_url``."""
    base = settings.get("api_base_url")
    url = base if isinstance(base, str) and base else str(settings["store_url"])
    parts = urlsplit(ssrf.validate_url(url))
    return f"{parts.scheme}://{parts.netloc}"


def _store_url_error(value: Any) -> str | None:
    if not isinstance(value, str):
        return "expected the store's http(s) URL, e.g. https://shop.example"
    try:
        ssrf.validate_url(value)
    except ssrf.UnsafeUrlError as exc:
        return exc.reason
    return None


def _may_send_basic(origin: str) -> bool:
    parts = urlsplit(origin)
    if parts.scheme == "https":
        return True
    host = (parts.hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Client:
    """The REST API v3 of one WooCommerce store (implements ``hub.platforms.pull.PlatformClient``)."""

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
        self._secret = secret  # registered as each webhook's secret, so deliveries verify with the connection
        self._sleep = sleep
        self._base = f"{api_origin(settings)}/wp-json/wc/v3"
        credentials = f"{str(settings['consumer_key']).strip()}:{str(settings['consumer_secret']).strip()}"
        self._headers = {
            "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode("ascii"),
            "Accept": "application/json",
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._not_before = 0.0  # after a 429: no request before this loop time

    async def fetch_orders(self, *, since: datetime, cursor: str | None) -> OrdersPage:
        """Orders modified at or after ``since`` (every status but trash), 100 a page, oldest id first.

        Sorted by id, not by modification: an order changed during a pass keeps its place (one that
        starts to match is at worst seen twice), so none slides across a page boundary and is skipped;
        the cursor is the page number.
        """
        page = _page_number(cursor)
        # modified_after is exclusive and counts whole seconds: one second earlier includes ``since`` itself.
        floor = since.astimezone(UTC).replace(tzinfo=None, microsecond=0) - timedelta(seconds=1)
        params = {
            "modified_after": floor.isoformat(timespec="seconds"),
            "dates_are_gmt": "true",
            "orderby": "id",
            "order": "asc",
            "per_page": str(PAGE_SIZE),
            "page": str(page),
        }
        payload, headers = await self._call("GET", "/orders", params=params)
        if not isinstance(payload, list) or not all(isinstance(o, dict) for o in payload):
            raise PermanentRemoteError("WooCommerce's /orders answer is not a JSON list of order objects")
        pages = _header_int(headers.get("X-WP-TotalPages"))
        more = page < pages if pages is not None else len(payload) == PAGE_SIZE
        return OrdersPage(
            orders=payload, next_cursor=str(page + 1) if more else None, total=_header_int(headers.get("X-WP-Total"))
        )

    async def list_webhooks(self) -> list[RemoteWebhook]:
        """The store's active webhooks (a paused or disabled one delivers nothing, so it does not count)."""
        found: list[RemoteWebhook] = []
        page = 1
        while True:
            params = {"per_page": str(PAGE_SIZE), "page": str(page)}
            payload, headers = await self._call("GET", "/webhooks", params=params)
            if not isinstance(payload, list):
                raise PermanentRemoteError("WooCommerce's /webhooks answer is not a JSON list")
            found.extend(
                _webhook(hook) for hook in payload if isinstance(hook, dict) and hook.get("status") == "active"
            )
            pages = _header_int(headers.get("X-WP-TotalPages")) or 1
            if page >= pages or not payload:
                return found
            page += 1

    async def create_webhook(self, *, topic: str, address: str) -> RemoteWebhook:
        """An active webhook for ``topic`` to ``address``, signed with the connection's secret."""
        body = {
            "name": f"Orderhub {topic}",
            "topic": topic,
            "delivery_url": address,
            "secret": self._secret,
            "status": "active",
        }
        payload, _ = await self._call("POST", "/webhooks", json=body)
        return _webhook(payload)

    def normalize(self, order: Mapping[str, Any]) -> NormalizedOrder:
        """The REST v3 order in the unified model (``connectors.woocommerce``)."""
        return normalize_order(order)

    async def _call(
        self, method: str, path: str, *, params: dict[str, str] | None = None, json: Any = None
    ) -> tuple[Any, Mapping[str, str]]:
        """One request; the JSON answered and the headers, or a remote error."""
        loop = asyncio.get_running_loop()
        if (wait := self._not_before - loop.time()) > 0:
            await self._sleep(wait)
        try:
            async with self._session.request(
                method,
                self._base + path,
                params=params,
                json=json,
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,  # the credentials go to the configured origin only
            ) as resp:
                status, headers = resp.status, resp.headers.copy()
                body = await read_capped(resp)
        except ssrf.UnsafeUrlError as exc:
            raise PermanentRemoteError(f"WooCommerce origin refused: {exc.reason}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientRemoteError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(headers.get("Retry-After"))
            if status == 429 and retry_after is not None:
                self._not_before = loop.time() + retry_after
            raise TransientRemoteError(f"HTTP {status} from WooCommerce on {method} {path}", retry_after=retry_after)
        if status in (401, 403):
            raise AuthRevoked(_reason(body))
        if not 200 <= status < 300:
            raise PermanentRemoteError(f"HTTP {status} from WooCommerce on {method} {path}: {_reason(body)}")
        try:
            return orjson.loads(body), headers
        except orjson.JSONDecodeError as exc:
            raise PermanentRemoteError(f"WooCommerce's answer to {method} {path} is not JSON: {body[:200]!r}") from exc


def _page_number(cursor: str | None) -> int:
    if cursor is None:
        return 1
    if not cursor.isascii() or not cursor.isdigit() or int(cursor) < 1:
        raise PermanentRemoteError(f"not a WooCommerce page cursor: {cursor!r:.40}")
    return int(cursor)


def _header_int(value: str | None) -> int | None:
    text = (value or "").strip()
    return int(text) if text.isascii() and text.isdigit() else None


def _webhook(value: Any) -> RemoteWebhook:
    if not isinstance(value, dict) or not isinstance(value.get("topic"), str) or value.get("id") is None:
        raise PermanentRemoteError(f"WooCommerce's webhook object is not as documented: {value!r:.200}")
    return RemoteWebhook(
        topic=value["topic"], platform_id=str(value["id"]), address=str(value.get("delivery_url") or "")
    )


def _reason(body: bytes) -> str:
    """WordPress's error ``message`` (``{"code", "message", "data": {"status"}}``), else the body's start."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:300].decode("utf-8", "replace") or "no reason given"
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        code = payload.get("code")
        return f"{payload['message']} ({code})" if isinstance(code, str) else payload["message"]
    return body[:300].decode("utf-8", "replace")


def inbound_form(order: Mapping[str, Any]) -> InboundForm:
    """An ``order.updated`` webhook carrying ``order`` (the topic travels in its header)."""
    topic = "order.updated"
    return InboundForm(topic, {"x-wc-webhook-topic": topic}, {}, orjson.dumps(order))

"""Which shop a platform's request comes from, and whether two shop names are the same shop.

Pure functions (no I/O). Where the platform names the shop, a connection is bound to one shop: Shopify's
``X-Shopify-Shop-Domain`` header, WooCommerce's ``X-WC-Webhook-Source`` header, Salla's ``merchant``
and Zid's ``store_id`` in the body. The bound shop comes from the connection's settings
(:data:`SETTINGS_KEYS`) or else from its first verified event (:data:`BOUND_KEY`). Shops are compared as
a domain or URL would be: case, scheme, a default port and trailing dots and slashes do not matter;
``www.`` does (another host may be another shop).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import msgspec

__all__ = ["BOUND_KEY", "SETTINGS_KEYS", "bound_shop", "same_shop", "shop_of_request"]

#: Settings key where the shop learnt from a connection's first verified event is kept.
BOUND_KEY = "bound_shop"
#: Settings a merchant may give at creation (no API credentials needed) that name the shop.
SETTINGS_KEYS: Mapping[str, tuple[str, ...]] = {
    "shopify": ("shop_domain",),
    "woocommerce": ("store_url",),
    "salla": ("merchant", "merchant_id"),
    "zid": ("store_id",),
}
_HEADERS = {"shopify": "x-shopify-shop-domain", "woocommerce": "x-wc-webhook-source"}
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str):
        text = str(value).strip()
        return text or None
    return None


class _SallaHead(msgspec.Struct):
    merchant: Any = None


class _ZidOrder(msgspec.Struct):
    store_id: Any = None


class _ZidHead(msgspec.Struct):
    store_id: Any = None
    order: msgspec.Raw = msgspec.Raw()  # any JSON value, kept as its bytes (empty when absent)


# Typed decoders read only the fields named, skipping the rest of the body without building it
# (the API checks the shop of every webhook; the worker parses the whole body later).
_SALLA = msgspec.json.Decoder(_SallaHead)
_ZID = msgspec.json.Decoder(_ZidHead)
_ZID_ORDER = msgspec.json.Decoder(_ZidOrder)


def shop_of_request(source: str, headers: Mapping[str, str], body: bytes) -> str | None:
    """The shop a request says it comes from, or None where the platform does not name one.

    ``headers`` must have lower-case names. A body that is not a JSON object names no shop.
    """
    header = _HEADERS.get(source)
    if header is not None:
        return _text(headers.get(header))
    try:
        if source == "salla":
            return _text(_SALLA.decode(body).merchant)
        if source != "zid":
            return None
        head = _ZID.decode(body)
        shop = _text(head.store_id)
        if shop is not None or not head.order:
            return shop
        return _text(_ZID_ORDER.decode(head.order).store_id)
    except (msgspec.DecodeError, msgspec.ValidationError):  # not an object (or ``order`` is not one)
        return None


def bound_shop(source: str, settings: Mapping[str, Any]) -> str | None:
    """The shop a connection is bound to: a naming setting, else the one its first event named."""
    for key in (*SETTINGS_KEYS.get(source, ()), BOUND_KEY):
        shop = _text(settings.get(key))
        if shop is not None:
            return shop
    return None


def _canonical(shop: str) -> str:
    text = shop.strip().lower()
    if text.isdigit():
        return text
    parts = urlsplit(text if "://" in text else f"//{text}")
    try:
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError:
        return text.rstrip("/")
    # The scheme is not part of the shop: a store moving to https is the same store.
    keep_port = port is not None and str(port) not in _DEFAULT_PORTS.values()
    authority = f"{host}:{port}" if keep_port else host
    return authority + parts.path.rstrip("/")


def same_shop(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` name the same shop (``Shop.myshopify.com`` = ``https://shop.myshopify.com/``)."""
    return _canonical(a) == _canonical(b)

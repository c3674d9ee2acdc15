"""Which sources can be pulled: source name → the module of its pull client.

Every module listed here exposes ``SOURCE``, ``settings_errors``, ``has_credentials``, ``api_origin``
and ``Client`` (see ``hub.platforms.pull``). A source not listed is webhook-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import aiohttp

from hub.platforms.clients import chat_agent, salla, shopify, woocommerce, zid
from hub.platforms.pull import InboundForm, PlatformClient, Sleep

MODULES: dict[str, ModuleType] = {m.SOURCE: m for m in (chat_agent, salla, shopify, woocommerce, zid)}


def module_for(source: str) -> ModuleType | None:
    """The pull module of ``source``, or None for a webhook-only source."""
    return MODULES.get(source)


def settings_errors(source: str, settings: Mapping[str, Any]) -> dict[str, str]:
    """``{field: why}`` for incomplete or malformed credentials; {} for none or complete ones."""
    module = module_for(source)
    return {} if module is None else dict(module.settings_errors(settings))


def can_pull(source: str, settings: Mapping[str, Any]) -> bool:
    """True when ``settings`` hold the source's complete credentials."""
    module = module_for(source)
    return module is not None and bool(module.has_credentials(settings)) and not module.settings_errors(settings)


def api_origin(source: str, settings: Mapping[str, Any]) -> str | None:
    """The origin the pull client sends to (for the SSRF check at creation)."""
    module = module_for(source)
    return None if module is None or not module.has_credentials(settings) else str(module.api_origin(settings))


def client_for(
    source: str, settings: Mapping[str, Any], *, session: aiohttp.ClientSession, secret: str, sleep: Sleep
) -> PlatformClient:
    """A client of ``source`` for these settings (callers check :func:`can_pull` first)."""
    module = module_for(source)
    if module is None:
        raise LookupError(f"{source} has no pull client")
    client: PlatformClient = module.Client(settings, session=session, secret=secret, sleep=sleep)
    return client


def inbound_form(source: str, order: Mapping[str, Any]) -> InboundForm:
    """``order`` as ``source``'s webhook would carry it (for a failed event that can be retried)."""
    module = module_for(source)
    if module is None:
        raise LookupError(f"{source} has no pull client")
    form: InboundForm = module.inbound_form(order)
    return form
